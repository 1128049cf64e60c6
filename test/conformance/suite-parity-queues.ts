/**
 * Conformance: RabbitMQ parity of queue arguments and delivery rules (the reference is a real
 * RabbitMQ 3.10 node): `x-max-length-bytes` with each `x-overflow`, a message whose TTL is 0,
 * `x-single-active-consumer`, and the arguments RabbitMQ refuses on declare (406).
 * Test names start with "parity:" so they can be picked out on a shared broker.
 */
import { expect, it } from 'vitest';
import { ChannelError, Consumer, Exchange, MessageNacked, Producer, Queue, type Channel, type Message } from '../../src/index.js';
import type { ContextGetter } from './context.js';
import { bodiesOf, declared } from './suite-routing.js';

/** Publishes raw bytes with a publisher confirm: 'ack', or 'nack' when the broker refused it. */
async function confirmed(channel: Channel, queue: string, body: string): Promise<'ack' | 'nack'> {
  try {
    await channel.publish(Buffer.from(body), {}, '', queue, { confirm: true });
    return 'ack';
  } catch (error) {
    if (error instanceof MessageNacked) return 'nack';
    throw error;
  }
}

const texts = (bodies: unknown[]): string[] => bodies.map((b) => (Buffer.isBuffer(b) ? b.toString() : String(b)));

export function parityQueueTests(get: ContextGetter): void {
  it.runIf(get.supports('maxLength') && get.supports('deadLettering'))(
    'parity: x-max-length-bytes counts body bytes of ready messages, with drop-head, reject-publish and reject-publish-dlx',
    async () => {
      const ctx = get();
      const channel = await ctx.connection().channel();
      const dlx = new Exchange(ctx.exchangeName('bytes-dlx'), { type: 'fanout', durable: false });
      const limited = (prefix: string, overflow: string) =>
        new Queue(ctx.queueName(prefix), { durable: false, queueArguments: { 'x-max-length-bytes': 10, 'x-overflow': overflow, 'x-dead-letter-exchange': dlx.name } });
      const [dead, dropHead, reject, rejectDlx] = (await declared(
        channel,
        new Queue(ctx.queueName('bytes-dead'), { exchange: dlx, durable: false }),
        limited('bytes-drop-head', 'drop-head'),
        limited('bytes-reject', 'reject-publish'),
        limited('bytes-reject-dlx', 'reject-publish-dlx'),
      )) as Queue[];
      // 4 + 4 fit in 10 bytes; 4 more would not; 12 never fits; an empty body always fits.
      const bodies = ['aaaa', 'bbbb', 'cccc', 'dddddddddddd', ''];
      const send = async (queue: Queue | undefined) => {
        const answers: string[] = [];
        for (const body of bodies) answers.push(await confirmed(channel, queue?.name ?? '', body));
        return answers;
      };
      // drop-head: the oldest go, and a message larger than the limit on its own goes too.
      expect(await send(dropHead)).toEqual(['ack', 'ack', 'ack', 'ack', 'ack']);
      expect(texts(await bodiesOf(ctx, dropHead as Queue, 1))).toEqual(['']);
      expect(texts(await bodiesOf(ctx, dead as Queue, 4))).toEqual(['aaaa', 'bbbb', 'cccc', 'dddddddddddd']);
      // reject-publish: refused (nacked) when the message would take the queue past the limit.
      expect(await send(reject)).toEqual(['ack', 'ack', 'nack', 'nack', 'ack']);
      expect(texts(await bodiesOf(ctx, reject as Queue, 3))).toEqual(['aaaa', 'bbbb', '']);
      expect(await bodiesOf(ctx, dead as Queue, 0)).toEqual([]);
      // reject-publish-dlx: refused and dead-lettered.
      expect(await send(rejectDlx)).toEqual(['ack', 'ack', 'nack', 'nack', 'ack']);
      expect(texts(await bodiesOf(ctx, rejectDlx as Queue, 3))).toEqual(['aaaa', 'bbbb', '']);
      expect(texts(await bodiesOf(ctx, dead as Queue, 2))).toEqual(['cccc', 'dddddddddddd']);
    },
  );

  it.runIf(get.supports('messageTtl'))('parity: a message with a TTL of 0 goes to a consumer that can take it at once, and is dropped otherwise', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = (await declared(channel, new Queue(ctx.queueName('ttl-zero'), { durable: false }))) as Queue[];
    const producer = new Producer(channel, { routingKey: queue?.name ?? '' });
    // Nobody to take it: gone at once.
    await producer.publish(0, { expiration: 0 });
    expect(await bodiesOf(ctx, queue as Queue, 0)).toEqual([]);
    const seen: Message[] = [];
    const consumer = new Consumer(channel, [queue as Queue], { prefetchCount: 1, callbacks: [(_body, m) => void seen.push(m)] });
    await consumer.consume();
    await producer.publish(1, { expiration: 0 });
    await ctx.until(() => seen.length === 1, 'the TTL-0 message, delivered to the waiting consumer');
    // The consumer is full (prefetch 1, one unacked): the next TTL-0 message finds nobody.
    await producer.publish(2, { expiration: 0 });
    await producer.publish(3);
    seen[0]?.ack();
    await ctx.until(() => seen.length === 2, 'the next message');
    expect(seen.map((m) => m.payload)).toEqual([1, 3]);
    seen[1]?.ack();
  });

  it('parity: x-single-active-consumer: only the first consumer gets messages, the next takes over when it goes', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const [first, second] = [await conn.channel(), await conn.channel()];
    const [queue] = (await declared(first, new Queue(ctx.queueName('single-active'), { durable: false, queueArguments: { 'x-single-active-consumer': true } }))) as Queue[];
    const a: unknown[] = [];
    const b: unknown[] = [];
    const consumerA = new Consumer(first, [queue as Queue], { noAck: true, callbacks: [(body) => void a.push(body)] });
    await consumerA.consume();
    await new Consumer(second, [queue as Queue], { noAck: true, callbacks: [(body) => void b.push(body)] }).consume();
    const producer = new Producer(first, { routingKey: queue?.name ?? '' });
    for (const n of [1, 2, 3, 4]) await producer.publish(n);
    await ctx.until(() => a.length + b.length === 4, 'four deliveries');
    expect([a, b]).toEqual([[1, 2, 3, 4], []]);
    await consumerA.cancel();
    for (const n of [5, 6]) await producer.publish(n);
    await ctx.until(() => b.length === 2, 'the second consumer, now active');
    expect([a, b]).toEqual([[1, 2, 3, 4], [5, 6]]);
  });

  it('parity: queue arguments RabbitMQ refuses on declare (406): a dead-letter routing key without exchange, wrong types, bad byte limits', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const base = { durable: false, exclusive: false, autoDelete: false, passive: false };
    const refusals: [string, Record<string, unknown>][] = [
      ['no-dlx', { 'x-dead-letter-routing-key': 'dead' }],
      ['sac-type', { 'x-single-active-consumer': 'yes' }],
      ['dlx-type', { 'x-dead-letter-exchange': 5 }],
      ['bytes-negative', { 'x-max-length-bytes': -1 }],
      ['bytes-string', { 'x-max-length-bytes': '10' }],
    ];
    for (const [prefix, args] of refusals) {
      const channel = await conn.channel();
      const refused = channel.declareQueue({ ...base, name: ctx.queueName(prefix), arguments: args });
      await expect(refused, prefix).rejects.toBeInstanceOf(ChannelError);
      await expect(refused, prefix).rejects.toMatchObject({ code: 406 });
    }
    const channel = await conn.channel();
    const name = ctx.queueName('dlx-and-key');
    const ok = await channel.declareQueue({ ...base, name, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'dead', 'x-max-length-bytes': 0 } });
    expect(ok.queue).toBe(name);
  });
}
