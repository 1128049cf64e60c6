/**
 * A channel's calls take effect in the order they are made (transport.ts), publishes included,
 * also while pipelining holds calls behind a basic.consume or basic.cancel whose late answer
 * is awaited (amqplib-pipelining.ts): a publish made behind a held queue.declare or queue.bind
 * must not reach the broker before it, or it finds no queue and is dropped (and confirmed).
 */
import { describe, expect, it } from 'vitest';
import { ChannelError } from '../../src/errors.js';
import { amqpFixture, rejection, requireRabbitmq, unique } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-pipelining-order.test');
const { open, declareQueue, trackExchange } = amqpFixture();

describe.skipIf(!reachable)('AMQP publishes keep their place behind held calls', () => {
  it('a publish made behind a queue.declare held by a basic.consume reaches the queue declared', async () => {
    const ch = await (await open()).createChannel();
    const consumed = await declareQueue(ch);
    const behind = unique('held-declare');
    // The consume goes first: the declare made after it is held until its consume-ok.
    const consuming = ch.consume(consumed, { consumerTag: '', noAck: true }, () => undefined);
    const declared = ch.declareQueue({ name: behind, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
    const published = ch.publish(Buffer.from('kept'), {}, '', behind, { confirm: true });
    await Promise.all([consuming, declared, published]);
    expect((await ch.get(behind, { noAck: true }))?.body.toString()).toBe('kept');
  });

  it('a publish made behind a queue.bind held by a basic.cancel is routed by that binding', async () => {
    const ch = await (await open()).createChannel();
    const exchange = unique('held-x');
    trackExchange(exchange);
    await ch.declareExchange({ name: exchange, type: 'direct', durable: false, autoDelete: false, arguments: {}, passive: false });
    const consumed = await declareQueue(ch);
    const target = await declareQueue(ch);
    const tag = await ch.consume(consumed, { consumerTag: '', noAck: true }, () => undefined);
    const cancelled = ch.cancel(tag);
    const bound = ch.bindQueue(target, exchange, 'rk');
    const published = ch.publish(Buffer.from('routed'), {}, exchange, 'rk', { confirm: true });
    await Promise.all([cancelled, bound, published]);
    expect((await ch.get(target, { noAck: true }))?.body.toString()).toBe('routed');
  });

  it('a publish held behind calls the channel ends under fails recoverably (it never left), not with the refusal of another call', async () => {
    const ch = await (await open()).createChannel();
    const refused = ch.consume(unique('held-missing'), { consumerTag: '', noAck: true }, () => undefined);
    const declared = ch.declareQueue({ name: unique('held-never'), durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
    const published = ch.publish(Buffer.from('again'), {}, '', 'anywhere', { confirm: true });
    expect(await rejection(refused)).toMatchObject({ code: 404, recoverable: false });
    expect(await rejection(declared)).toMatchObject({ recoverable: true });
    const error = await rejection(published);
    expect(error).toBeInstanceOf(ChannelError);
    expect(error.recoverable).toBe(true);
  });
});
