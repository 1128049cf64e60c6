/**
 * AmqpChannel over a stand-in amqplib ConfirmChannel: ack coalescing (what reaches amqplib,
 * in which order) and the one-promise publish path. The real broker's view of the same is in
 * test/integration/amqp-transport.test.ts.
 */
import { EventEmitter } from 'node:events';
import type { ConfirmChannel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { ChannelError, MessageNacked } from '../../../src/errors.js';
import { AmqpChannel } from '../../../src/transports/amqp-channel.js';
import type { RawMessage } from '../../../src/transports/transport.js';

type Sent = ['ack', number, boolean] | ['reject', number, boolean] | ['recover'] | ['close'];

/** Records what the channel asks of amqplib; `deliver(tag)` plays a broker delivery. */
function fakeChannel() {
  const sent: Sent[] = [];
  const confirms: ((error: unknown) => void)[] = [];
  let onDelivery: ((message: unknown) => void) | undefined;
  let writable = true;
  const ch = Object.assign(new EventEmitter(), {
    ch: 1,
    ack: (message: { fields: { deliveryTag: number } }, multiple = false) => sent.push(['ack', message.fields.deliveryTag, multiple]),
    reject: (message: { fields: { deliveryTag: number } }, requeue = true) => sent.push(['reject', message.fields.deliveryTag, requeue]),
    recover: async () => {
      sent.push(['recover']);
      return {};
    },
    close: async () => {
      sent.push(['close']);
      ch.emit('close');
    },
    consume: async (_queue: string, callback: (message: unknown) => void, options: { consumerTag?: string }) => {
      onDelivery = callback;
      return { consumerTag: options.consumerTag ?? 'amq.ctag-1' };
    },
    publish: (_exchange: string, _key: string, _body: Buffer, _options: unknown, confirmed?: (error: unknown) => void) => {
      if (confirmed) confirms.push(confirmed);
      return writable;
    },
  });
  const deliver = (deliveryTag: number): void =>
    onDelivery?.({ content: Buffer.from('x'), fields: { deliveryTag, exchange: '', routingKey: 'q', redelivered: false }, properties: {} });
  const channel = new AmqpChannel(ch as unknown as ConfirmChannel, { closeTimeout: 1, channelClosed: () => undefined });
  return { channel, ch, sent, confirms, deliver, setWritable: (on: boolean) => (writable = on) };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function consuming(noAck = false) {
  const fake = fakeChannel();
  const received: RawMessage[] = [];
  await fake.channel.consume('q', { consumerTag: 'c', noAck }, (message) => received.push(message));
  return { ...fake, received };
}

describe('AmqpChannel ack coalescing', () => {
  it('sends a run of acks from the oldest unsettled delivery as one multiple ack, at the end of the tick', async () => {
    const { channel, sent, deliver } = await consuming();
    for (let tag = 1; tag <= 5; tag++) deliver(tag);
    for (let tag = 1; tag <= 5; tag++) channel.ack(tag);
    expect(sent).toEqual([]); // nothing yet: coalesced until the tick ends
    await tick();
    expect(sent).toEqual([['ack', 5, true]]);
  });

  it('never covers a delivery the application has not acked', async () => {
    const { channel, sent, deliver } = await consuming();
    for (let tag = 1; tag <= 6; tag++) deliver(tag);
    channel.ack(1);
    channel.ack(2);
    channel.ack(4); // 3 is still held by the application
    channel.ack(6);
    await tick();
    expect(sent).toEqual([['ack', 2, true], ['ack', 4, false], ['ack', 6, false]]);
    channel.ack(3);
    channel.ack(5);
    await tick();
    // 3 and 5 are now the only unsettled deliveries, and both acked: one multiple ack
    expect(sent.slice(3)).toEqual([['ack', 5, true]]);
  });

  it('a single ack goes as it is; acks out of order still coalesce when they close the run', async () => {
    const { channel, sent, deliver } = await consuming();
    deliver(1);
    channel.ack(1);
    await tick();
    expect(sent).toEqual([['ack', 1, false]]);
    deliver(2);
    deliver(3);
    channel.ack(3);
    channel.ack(2);
    await tick();
    expect(sent.slice(1)).toEqual([['ack', 3, true]]);
  });

  it('a reject sends the acks made before it first, in order', async () => {
    const { channel, sent, deliver } = await consuming();
    for (let tag = 1; tag <= 4; tag++) deliver(tag);
    channel.ack(1);
    channel.ack(2);
    channel.reject(3, true);
    channel.ack(4);
    expect(sent).toEqual([['ack', 2, true], ['reject', 3, true]]);
    await tick();
    expect(sent.slice(2)).toEqual([['ack', 4, false]]);
  });

  it('an explicit multiple ack flushes and settles everything up to its tag', async () => {
    const { channel, sent, deliver } = await consuming();
    for (let tag = 1; tag <= 4; tag++) deliver(tag);
    channel.ack(1);
    channel.ack(3, true);
    channel.ack(4);
    await tick();
    expect(sent).toEqual([['ack', 1, false], ['ack', 3, true], ['ack', 4, false]]);
  });

  it('close() sends waiting acks before closing the channel', async () => {
    const { channel, sent, deliver } = await consuming();
    deliver(1);
    deliver(2);
    channel.ack(1);
    channel.ack(2);
    await channel.close();
    expect(sent).toEqual([['ack', 2, true], ['close']]);
  });

  it('recover() sends waiting acks, then forgets the old tags', async () => {
    const { channel, sent, deliver } = await consuming();
    deliver(1);
    deliver(2);
    channel.ack(1);
    await channel.recover(true);
    expect(sent).toEqual([['ack', 1, false], ['recover']]);
    deliver(3); // redelivered under a new tag
    channel.ack(3);
    await tick();
    expect(sent.slice(2)).toEqual([['ack', 3, false]]);
  });

  it('a channel that died drops its waiting acks (the broker requeues those messages) without throwing', async () => {
    const { channel, ch, sent, deliver } = await consuming();
    deliver(1);
    channel.ack(1);
    ch.emit('error', Object.assign(new Error('PRECONDITION_FAILED'), { code: 406, classId: 60, methodId: 80 }));
    ch.emit('close');
    await tick();
    expect(sent).toEqual([]);
    expect(channel.isOpen).toBe(false);
    expect(() => channel.ack(1)).toThrow(ChannelError);
  });

  it('deliveries of a noAck consumer are not tracked: their acks are not coalesced', async () => {
    const { channel, sent, deliver } = await consuming(true);
    deliver(1);
    deliver(2);
    channel.ack(1);
    channel.ack(2);
    expect(sent).toEqual([['ack', 1, false], ['ack', 2, false]]);
  });
});

describe('AmqpChannel.publish', () => {
  it('resolves on the confirm, rejects a nack with MessageNacked', async () => {
    const { channel, confirms } = fakeChannel();
    const first = channel.publish(Buffer.from('a'), {}, '', 'q', { confirm: true });
    const second = channel.publish(Buffer.from('b'), {}, '', 'q', { confirm: true });
    expect(confirms).toHaveLength(2);
    confirms[0]!(null);
    confirms[1]!(new Error('message nacked'));
    await expect(first).resolves.toBeUndefined();
    await expect(second).rejects.toBeInstanceOf(MessageNacked);
  });

  it('waits for drain once the write buffer is full, then publishes', async () => {
    const { channel, ch, confirms, setWritable } = fakeChannel();
    setWritable(false);
    const first = channel.publish(Buffer.from('a'), {}, '', 'q', { confirm: false });
    setWritable(true);
    let secondDone = false;
    const second = channel.publish(Buffer.from('b'), {}, '', 'q', { confirm: true }).then(() => (secondDone = true));
    await tick();
    expect(confirms).toHaveLength(0); // the second waits for drain: not handed to amqplib yet
    ch.emit('drain');
    await first;
    await tick();
    expect(confirms).toHaveLength(1);
    confirms[0]!(null);
    await second;
    expect(secondDone).toBe(true);
  });

  it('a publish without confirm waiting for drain rejects if the channel closes first', async () => {
    const { channel, ch, setWritable } = fakeChannel();
    setWritable(false);
    const pending = channel.publish(Buffer.from('a'), {}, '', 'q', { confirm: false });
    ch.emit('error', Object.assign(new Error('NOT_FOUND'), { code: 404, classId: 60, methodId: 40 }));
    ch.emit('close');
    await expect(pending).rejects.toBeInstanceOf(ChannelError);
  });
});
