/**
 * Conformance: RabbitMQ parity. Broker behaviours a test on `memory://` must see exactly as
 * production sees them on RabbitMQ (the reference): per-consumer prefetch, where requeued
 * messages go, queue-argument semantics (TTL with dead-lettering, overflow), redeclare rules.
 * Test names start with "parity:" so they can be picked out on a shared broker.
 */
import { expect, it } from 'vitest';
import { ChannelError, Consumer, Exchange, MessageNacked, Producer, Queue, type Message } from '../../src/index.js';
import type { ContextGetter } from './context.js';
import { bodiesOf, declared, getOne } from './suite-routing.js';

export function parityTests(get: ContextGetter): void {
  it('parity: prefetchCount is per consumer (qos global=false), fixed when the consumer starts', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const a = new Queue(ctx.queueName('prefetch-a'), { durable: false });
    const b = new Queue(ctx.queueName('prefetch-b'), { durable: false });
    const seen: Message[] = [];
    // One Consumer over two queues is two AMQP consumers: each may hold one unacked message.
    const consumer = new Consumer(channel, [a, b], { prefetchCount: 1, callbacks: [(_body, m) => void seen.push(m)] });
    await consumer.consume();
    const producer = new Producer(channel);
    for (const n of [1, 2, 3]) {
      await producer.publish(10 + n, { routingKey: a.name });
      await producer.publish(20 + n, { routingKey: b.name });
    }
    await ctx.until(() => seen.length === 2, 'one delivery from each queue');
    await ctx.settle(0.1);
    expect(seen.map((m) => m.payload).sort()).toEqual([11, 21]);
    // A qos changed later applies to consumers started later, not to the running ones.
    await consumer.qos({ prefetchCount: 2 });
    await ctx.settle(0.1);
    expect(seen).toHaveLength(2);
    for (const m of seen.splice(0)) m.ack();
    await ctx.until(() => seen.length === 2, 'the next one from each queue');
    await ctx.settle(0.1);
    expect(seen.map((m) => m.payload).sort()).toEqual([12, 22]);
    for (const m of seen.splice(0)) m.ack();
    await ctx.until(() => seen.length === 2, 'the last ones');
    for (const m of seen.splice(0)) m.ack();
  });

  it.runIf(get.supports('messageTtl') && get.supports('deadLettering'))(
    'parity: expired messages are dead-lettered on time, with nobody reading their queue (TTL + DLX delayed retry)',
    async () => {
      const ctx = get();
      const channel = await ctx.connection().channel();
      const dlx = new Exchange(ctx.exchangeName('retry-dlx'), { type: 'fanout', durable: false });
      const [ready, delayQueue, perMessage] = await declared(
        channel,
        new Queue(ctx.queueName('retry-ready'), { exchange: dlx, durable: false }),
        new Queue(ctx.queueName('retry-delay'), { durable: false, messageTtl: 0.05, queueArguments: { 'x-dead-letter-exchange': dlx.name } }),
        new Queue(ctx.queueName('retry-expiring'), { durable: false, queueArguments: { 'x-dead-letter-exchange': dlx.name } }),
      );
      const producer = new Producer(channel);
      await producer.publish({ job: 1 }, { routingKey: delayQueue?.name ?? '' });
      await producer.publish({ job: 2 }, { routingKey: perMessage?.name ?? '', expiration: 0.05 });
      // Only the dead-letter target is read: the delay queues are never touched again.
      const bodies = await bodiesOf(ctx, ready as Queue, 2);
      expect(bodies).toHaveLength(2);
      expect(bodies).toEqual(expect.arrayContaining([{ job: 1 }, { job: 2 }]));
    },
  );

  it.runIf(get.supports('maxLength') && get.supports('deadLettering'))(
    "parity: x-overflow 'reject-publish' keeps the queue and nacks the publish; 'reject-publish-dlx' dead-letters the refused message",
    async () => {
      const ctx = get();
      const channel = await ctx.connection().channel();
      const dlx = new Exchange(ctx.exchangeName('overflow-dlx'), { type: 'fanout', durable: false });
      const [dead, rejecting, rejectingDlx] = await declared(
        channel,
        new Queue(ctx.queueName('overflow-dead'), { exchange: dlx, durable: false }),
        new Queue(ctx.queueName('overflow-reject'), { durable: false, maxLength: 2, queueArguments: { 'x-overflow': 'reject-publish', 'x-dead-letter-exchange': dlx.name } }),
        new Queue(ctx.queueName('overflow-reject-dlx'), { durable: false, maxLength: 1, queueArguments: { 'x-overflow': 'reject-publish-dlx', 'x-dead-letter-exchange': dlx.name } }),
      );
      const producer = new Producer(channel, { routingKey: rejecting?.name ?? '' });
      await producer.publish(1);
      await producer.publish(2);
      await expect(producer.publish(3)).rejects.toBeInstanceOf(MessageNacked);
      expect(await bodiesOf(ctx, rejecting as Queue, 2)).toEqual([1, 2]);
      expect(await bodiesOf(ctx, dead as Queue, 0)).toEqual([]);

      await producer.publish(4, { routingKey: rejectingDlx?.name ?? '' });
      await expect(producer.publish(5, { routingKey: rejectingDlx?.name ?? '' })).rejects.toBeInstanceOf(MessageNacked);
      expect(await bodiesOf(ctx, rejectingDlx as Queue, 1)).toEqual([4]);
      expect(await bodiesOf(ctx, dead as Queue, 1)).toEqual([5]);
    },
  );

  it('parity: a requeued message goes back to its original place in the queue, not to the head', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('requeue-order'), { durable: false }));
    const q = queue as Queue;
    const producer = new Producer(channel, { routingKey: q.name });
    for (const n of [1, 2, 3, 4]) await producer.publish(n);
    const [one, two, three] = [await getOne(ctx, q), await getOne(ctx, q), await getOne(ctx, q)];
    one.requeue();
    three.requeue();
    two.requeue();
    const again: Message[] = [];
    for (let i = 0; i < 4; i++) again.push(await getOne(ctx, q));
    expect(again.map((m) => [m.payload, m.redelivered])).toEqual([[1, true], [2, true], [3, true], [4, false]]);
    for (const m of again) m.ack();
  });

  it('parity: redeclaring compares only the arguments the broker knows (406 on x-message-ttl, not on an argument of your own)', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const name = ctx.queueName('redeclare');
    const base = { name, durable: false, exclusive: false, autoDelete: false, passive: false };
    const channel = await conn.channel();
    await channel.declareQueue({ ...base, arguments: { 'x-message-ttl': 60_000, 'x-app-owner': 'billing' } });
    await channel.declareQueue({ ...base, arguments: { 'x-message-ttl': 60_000, 'x-app-owner': 'shipping' } });
    await channel.declareQueue({ ...base, arguments: { 'x-message-ttl': 60_000 } });
    const exchange = ctx.exchangeName('redeclare');
    await channel.declareExchange({ name: exchange, type: 'direct', durable: false, autoDelete: false, arguments: { 'x-app-owner': 'billing' }, passive: false });
    await channel.declareExchange({ name: exchange, type: 'direct', durable: false, autoDelete: false, arguments: {}, passive: false });
    const other = await conn.channel();
    const refused = other.declareQueue({ ...base, arguments: { 'x-message-ttl': 30_000 } });
    await expect(refused).rejects.toBeInstanceOf(ChannelError);
    await expect(refused).rejects.toMatchObject({ code: 406 });
  });

  it('parity: unbinding from a queue or an exchange that is not there succeeds, and the channel stays open', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('unbind-missing'), { durable: false }));
    await channel.unbindQueue(ctx.queueName('no-such-queue'), 'amq.direct', 'rk');
    await channel.unbindQueue(queue?.name ?? '', ctx.exchangeName('no-such-exchange'), 'rk');
    expect(channel.state).toBe('open');
    expect((await channel.declareQueue({ name: queue?.name ?? '', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: true })).queue).toBe(queue?.name);
  });

  it('parity: a Date in the headers arrives as a Date (an AMQP timestamp, to the second), nested ones too', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('header-dates'), { durable: false }));
    const sent = new Date('2026-12-01T12:34:56.789Z');
    await new Producer(channel).publish({}, { routingKey: queue?.name ?? '', headers: { sent, nested: { at: sent }, list: [sent, 1] } });
    const headers = (await getOne(ctx, queue as Queue)).headers as { sent: unknown; nested: { at: unknown }; list: unknown[] };
    const whole = new Date('2026-12-01T12:34:56.000Z');
    for (const value of [headers.sent, headers.nested.at, headers.list[0]]) {
      expect(value).toBeInstanceOf(Date);
      expect(value).toEqual(whole);
    }
    expect(headers.list[1]).toBe(1);
  });

  it.runIf(get.supports('deadLettering'))("parity: a dead-lettered message's x-death time is a Date", async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const dlx = new Exchange(ctx.exchangeName('death-time-dlx'), { type: 'fanout', durable: false });
    const [dead, work] = await declared(
      channel,
      new Queue(ctx.queueName('death-time-dead'), { exchange: dlx, durable: false }),
      new Queue(ctx.queueName('death-time-work'), { durable: false, queueArguments: { 'x-dead-letter-exchange': dlx.name } }),
    );
    const before = Math.floor(Date.now() / 1000) * 1000;
    await new Producer(channel).publish({ job: 1 }, { routingKey: work?.name ?? '' });
    (await getOne(ctx, work as Queue)).reject();
    const deaths = (await getOne(ctx, dead as Queue)).headers['x-death'] as { time: unknown; reason: string }[];
    expect(deaths[0]?.reason).toBe('rejected');
    expect(deaths[0]?.time).toBeInstanceOf(Date);
    expect((deaths[0]?.time as Date).getTime()).toBeGreaterThanOrEqual(before);
  });

  it.runIf(get.supports('headersExchange'))('parity: headers exchange: a binding value of null (AMQP void) matches the header with any value', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('headers-void'), { type: 'headers', durable: false });
    const [queue] = await declared(channel, new Queue(ctx.queueName('headers-void'), { exchange, durable: false, bindingArguments: { 'x-match': 'all', region: null } }));
    const producer = new Producer(channel, { exchange });
    await producer.publish(1, { headers: { region: 'eu' } });
    await producer.publish(2, { headers: { other: 'eu' } });
    await producer.publish(3, { headers: { region: null } });
    expect(await bodiesOf(ctx, queue as Queue, 2)).toEqual([1, 3]);
  });
}
