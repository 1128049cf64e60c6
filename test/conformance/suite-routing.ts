/**
 * Conformance: entities and routing (every exchange type, bindings, queue arguments).
 */
import { expect, it } from 'vitest';
import { Exchange, Producer, Queue, binding, type Channel, type Message } from '../../src/index.js';
import type { Context, ContextGetter } from './context.js';

const ACCEPT = ['json', 'text/plain'];

/** Bodies of the messages waiting in `queue` (acked), polling until `count` came, then checking it is empty. */
export async function bodiesOf(ctx: Context, queue: Queue, count: number): Promise<unknown[]> {
  const bodies: unknown[] = [];
  const deadline = Date.now() + (ctx.options.timeout ?? 5) * 1000;
  while (bodies.length < count) {
    const message = await queue.get({ noAck: true, accept: ACCEPT });
    if (message) bodies.push(message.payload);
    else if (Date.now() > deadline) break;
    else await ctx.settle(0.005);
  }
  await ctx.settle(0.02);
  const extra = await queue.get({ noAck: true, accept: ACCEPT });
  if (extra) bodies.push(extra.payload);
  return bodies;
}

/** The next message of `queue` (basic.get, polling), unacknowledged. */
export async function getOne(ctx: Context, queue: Queue, accept: string[] = ACCEPT): Promise<Message> {
  const deadline = Date.now() + (ctx.options.timeout ?? 5) * 1000;
  for (;;) {
    const message = await queue.get({ accept });
    if (message) return message;
    if (Date.now() > deadline) throw new Error(`No message in ${queue.name}.`);
    await ctx.settle(0.005);
  }
}

/** Binds and declares each queue on `channel`. */
export async function declared(channel: Channel, ...queues: Queue[]): Promise<Queue[]> {
  const bound = queues.map((q) => q.bind(channel));
  for (const q of bound) await q.declare();
  return bound;
}

export function routingTests(get: ContextGetter): void {
  const supports = get.supports;

  it('default exchange: routes to the queue named by the routing key; the exchange is never declared', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('default'), { durable: false }));
    await new Exchange('').bind(channel).declare();
    const producer = new Producer(channel);
    await producer.publish({ n: 1 }, { routingKey: queue?.name ?? '' });
    expect(await bodiesOf(ctx, queue as Queue, 1)).toEqual([{ n: 1 }]);
  });

  it('direct: routes by exact routing key', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('direct'), { type: 'direct', durable: false });
    const [a, b] = await declared(
      channel,
      new Queue(ctx.queueName('direct-a'), { exchange, routingKey: 'a', durable: false }),
      new Queue(ctx.queueName('direct-b'), { exchange, routingKey: 'b', durable: false }),
    );
    const producer = new Producer(channel, { exchange });
    for (const key of ['a', 'b', 'a', 'c']) await producer.publish(`to ${key}`, { routingKey: key });
    expect(await bodiesOf(ctx, a as Queue, 2)).toEqual(['to a', 'to a']);
    expect(await bodiesOf(ctx, b as Queue, 1)).toEqual(['to b']);
  });

  it('topic: * matches one word, # zero or more', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('topic'), { type: 'topic', durable: false });
    const [star, hash, middle] = await declared(
      channel,
      new Queue(ctx.queueName('topic-star'), { exchange, routingKey: 'stock.*', durable: false }),
      new Queue(ctx.queueName('topic-hash'), { exchange, routingKey: 'stock.#', durable: false }),
      new Queue(ctx.queueName('topic-mid'), { exchange, routingKey: '*.*.nyse', durable: false }),
    );
    const producer = new Producer(channel, { exchange });
    for (const key of ['stock', 'stock.ibm', 'stock.ibm.nyse', 'bond.ibm', 'stock.ibm.nyse.x']) await producer.publish(key, { routingKey: key });
    expect(await bodiesOf(ctx, star as Queue, 1)).toEqual(['stock.ibm']);
    expect(await bodiesOf(ctx, hash as Queue, 4)).toEqual(['stock', 'stock.ibm', 'stock.ibm.nyse', 'stock.ibm.nyse.x']);
    expect(await bodiesOf(ctx, middle as Queue, 1)).toEqual(['stock.ibm.nyse']);
  });

  it('fanout: every bound queue gets every message, whatever the key', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('fanout'), { type: 'fanout', durable: false });
    const [a, b] = await declared(
      channel,
      new Queue(ctx.queueName('fan-a'), { exchange, durable: false }),
      new Queue(ctx.queueName('fan-b'), { exchange, routingKey: 'ignored', durable: false }),
    );
    const producer = new Producer(channel, { exchange });
    await producer.publish('one', { routingKey: 'x' });
    await producer.publish('two');
    expect(await bodiesOf(ctx, a as Queue, 2)).toEqual(['one', 'two']);
    expect(await bodiesOf(ctx, b as Queue, 2)).toEqual(['one', 'two']);
  });

  it.runIf(supports('headersExchange'))('headers: x-match all and any', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('headers'), { type: 'headers', durable: false });
    const [all, any] = await declared(
      channel,
      new Queue(ctx.queueName('hdr-all'), { exchange, durable: false, bindingArguments: { 'x-match': 'all', format: 'pdf', type: 'report' } }),
      new Queue(ctx.queueName('hdr-any'), { exchange, durable: false, bindingArguments: { 'x-match': 'any', format: 'pdf', type: 'report' } }),
    );
    const producer = new Producer(channel, { exchange });
    await producer.publish('both', { headers: { format: 'pdf', type: 'report' } });
    await producer.publish('format', { headers: { format: 'pdf', type: 'log' } });
    await producer.publish('none', { headers: { format: 'zip' } });
    expect(await bodiesOf(ctx, all as Queue, 1)).toEqual(['both']);
    expect(await bodiesOf(ctx, any as Queue, 2)).toEqual(['both', 'format']);
  });

  it('extra bindings, bindTo/unbindFrom and unbind()', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const logs = new Exchange(ctx.exchangeName('logs'), { type: 'direct', durable: false });
    const [queue] = await declared(
      channel,
      new Queue(ctx.queueName('bindings'), { durable: false, bindings: [binding(logs, { routingKey: 'error' }), binding(logs, { routingKey: 'warn' })] }),
    );
    const q = queue as Queue;
    const producer = new Producer(channel, { exchange: logs });
    await producer.publish('e1', { routingKey: 'error' });
    await producer.publish('w1', { routingKey: 'warn' });
    await producer.publish('i1', { routingKey: 'info' });
    expect(await bodiesOf(ctx, q, 2)).toEqual(['e1', 'w1']);
    await q.unbindFrom(logs, { routingKey: 'warn' });
    await q.bindTo(logs, { routingKey: 'info' });
    await producer.publish('w2', { routingKey: 'warn' });
    await producer.publish('i2', { routingKey: 'info' });
    expect(await bodiesOf(ctx, q, 1)).toEqual(['i2']);
  });

  it('queue.purge(), queue.delete({ ifEmpty }), exchange.delete()', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('purge'), { durable: false });
    const [queue] = await declared(channel, new Queue(ctx.queueName('purge'), { exchange, routingKey: 'k', durable: false }));
    const q = queue as Queue;
    const producer = new Producer(channel, { exchange, routingKey: 'k' });
    for (let i = 0; i < 3; i++) await producer.publish(i);
    await expect.poll(async () => (await q.queueDeclare({ passive: true })).messageCount).toBe(3);
    expect(await q.purge()).toBe(3);
    expect((await q.queueDeclare({ passive: true })).messageCount).toBe(0);
    expect(await q.delete({ ifEmpty: true })).toBe(0);
    await exchange.bind(channel).delete();
  });

  it.runIf(supports('priorities'))('maxPriority: higher priorities are delivered first', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('prio'), { durable: false, maxPriority: 9 }));
    const q = queue as Queue;
    expect(q.queueArguments['x-max-priority']).toBe(9);
    const producer = new Producer(channel, { routingKey: q.name });
    for (const priority of [1, 9, 5]) await producer.publish(priority, { priority });
    await expect.poll(async () => (await q.queueDeclare({ passive: true })).messageCount).toBe(3);
    expect(await bodiesOf(ctx, q, 3)).toEqual([9, 5, 1]);
  });

  it.runIf(supports('messageTtl'))('messageTtl (x-message-ttl) and per-message expiration drop old messages', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [ttl, plain] = await declared(
      channel,
      new Queue(ctx.queueName('ttl'), { durable: false, messageTtl: 0.1 }),
      new Queue(ctx.queueName('expiring'), { durable: false }),
    );
    expect(ttl?.queueArguments['x-message-ttl']).toBe(100);
    const producer = new Producer(channel);
    await producer.publish('old', { routingKey: ttl?.name ?? '' });
    await producer.publish('short', { routingKey: plain?.name ?? '', expiration: 0.1 });
    await producer.publish('long', { routingKey: plain?.name ?? '', expiration: 60 });
    await ctx.settle(0.3);
    expect(await bodiesOf(ctx, ttl as Queue, 0)).toEqual([]);
    expect(await bodiesOf(ctx, plain as Queue, 1)).toEqual(['long']);
  });

  it.runIf(supports('maxLength'))('maxLength (x-max-length) keeps the newest messages', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('maxlen'), { durable: false, maxLength: 2 }));
    const producer = new Producer(channel, { routingKey: queue?.name ?? '' });
    for (const n of [1, 2, 3]) await producer.publish(n);
    await ctx.settle(0.05);
    expect(await bodiesOf(ctx, queue as Queue, 2)).toEqual([2, 3]);
  });

  it.runIf(supports('deadLettering'))('reject without requeue dead-letters to x-dead-letter-exchange', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const dlx = new Exchange(ctx.exchangeName('dlx'), { type: 'fanout', durable: false });
    const [dead, work] = await declared(
      channel,
      new Queue(ctx.queueName('dead'), { exchange: dlx, durable: false }),
      new Queue(ctx.queueName('work'), { durable: false, queueArguments: { 'x-dead-letter-exchange': dlx.name } }),
    );
    await new Producer(channel).publish({ job: 1 }, { routingKey: work?.name ?? '' });
    const message = await getOne(ctx, work as Queue);
    expect(await bodiesOf(ctx, dead as Queue, 0)).toEqual([]);
    message.reject();
    expect(await bodiesOf(ctx, dead as Queue, 1)).toEqual([{ job: 1 }]);
  });
}
