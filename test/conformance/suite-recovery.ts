/**
 * Conformance: through outages. Consumers recover after a dropped connection and after the
 * broker cancels them, publishes wait (bounded) while the broker is away or blocks the
 * connection, `retry` publishes survive, the declaration cache is cleared on reconnect, and
 * nothing leaks once connections are closed.
 */
import { expect, it } from 'vitest';
import { Consumer, Exchange, LimitExceeded, Producer, Queue, TimeoutError, maybeDeclare, type Connection } from '../../src/index.js';
import type { ContextGetter } from './context.js';

function reconnected(conn: Connection): Promise<void> {
  return new Promise((resolve) => conn.once('connected', () => resolve()));
}

function disconnected(conn: Connection): Promise<void> {
  return new Promise((resolve) => conn.once('disconnected', () => resolve()));
}

/** Starts an outage and resolves once `conn` has seen it; resolves with the restore function. */
async function outage(conn: Connection, start: () => Promise<() => Promise<void>>): Promise<() => Promise<void>> {
  const down = disconnected(conn);
  const restore = await start();
  await down;
  return restore;
}

export function recoveryTests(get: ContextGetter): void {
  const canDrop = get.options.dropConnections !== undefined;
  const canOutage = get.options.outage !== undefined;
  const canBlock = get.options.block !== undefined;

  it('a consumer whose queue is deleted is told (consumerCancelled) and resumes on the queue declared again', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const queue = new Queue(ctx.queueName('cancelled'), { durable: false });
    const got: unknown[] = [];
    await new Consumer(channel, [queue], { callbacks: [(b, m) => { got.push(b); m.ack(); }] }).consume();
    const cancelled = new Promise<{ consumerTag: string; queue: string }>((resolve) => channel.once('consumerCancelled', resolve));
    const other = await ctx.connection().channel();
    await other.deleteQueue(queue.name);
    expect((await cancelled).queue).toBe(queue.name);
    // The channel declares the queue again and resumes the consumer by itself; a message
    // published before that finds no queue, so publish until one arrives.
    const producer = new Producer(other, { routingKey: queue.name });
    const deadline = Date.now() + (ctx.options.timeout ?? 5) * 1000;
    while (!got.includes(7) && Date.now() < deadline) {
      await producer.publish(7);
      await ctx.settle(0.05);
    }
    expect(got).toContain(7);
    expect(conn.connected).toBe(true);
  });

  it.runIf(canBlock)('while the broker blocks the connection publishes wait (bounded by publishTimeout), then go out', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const queue = new Queue(ctx.queueName('blocked'), { durable: false });
    await queue.bind(channel).declare();
    const producer = new Producer(channel, { routingKey: queue.name });
    await producer.publish('before');
    const blocked = new Promise<{ reason: string }>((resolve) => conn.once('blocked', resolve));
    const unblock = await (ctx.options.block as () => Promise<() => Promise<void>>)();
    let pending: Promise<void> | undefined;
    let settled = false;
    try {
      // RabbitMQ blocks a connection when it publishes during the alarm, so this one may be
      // the publish that gets it blocked (it then waits in TCP, not in the channel).
      const first = producer.publish('first');
      first.catch(() => undefined);
      expect((await blocked).reason).toMatch(/memory/); // the broker's own reason (a memory alarm in both brokers' hooks)
      expect(conn.getSnapshot().blocked).toBe(true);
      pending = producer.publish('while blocked').then(() => void (settled = true));
      pending.catch(() => undefined);
      const late = await new Producer(channel, { routingKey: queue.name, publishTimeout: 0.2 }).publish('late').catch((e: unknown) => e);
      expect(late).toBeInstanceOf(TimeoutError);
      expect(settled).toBe(false);
      expect(channel.buffered).toBeGreaterThanOrEqual(1);
      pending = Promise.all([first, pending]).then(() => undefined);
    } finally {
      await unblock();
    }
    await pending;
    expect(settled).toBe(true);
    await expect.poll(async () => (await queue.bind(channel).queueDeclare({ passive: true })).messageCount).toBe(3);
  });

  it.runIf(canDrop)('a consumer keeps receiving after the connection is dropped (messages counted)', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const queue = new Queue(ctx.queueName('recover'), { durable: false });
    const seen = new Set<number>();
    let deliveries = 0;
    const consumer = new Consumer(conn, [queue], {
      prefetchCount: 100,
      callbacks: [
        (body, message) => {
          deliveries++;
          seen.add(body as number);
          message.ack();
        },
      ],
    });
    await consumer.consume();
    const producer = new Producer(conn, { routingKey: queue.name });
    for (let n = 0; n < 10; n++) await producer.publish(n);
    await ctx.until(() => seen.size === 10, 'the first 10 messages');
    const back = reconnected(conn);
    // Publishing through the drop: a publish caught by it fails with a recoverable error and
    // `retry` publishes it again (at least once); later ones wait for the reconnect.
    const retry = { retry: true, retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 } };
    const publishing = (async () => {
      for (let n = 10; n < 20; n++) await producer.publish(n, retry);
    })();
    await ctx.options.dropConnections?.();
    await publishing;
    await back;
    await ctx.until(() => seen.size === 20, 'all 20 messages after the reconnect');
    expect([...seen].sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    expect(deliveries).toBeGreaterThanOrEqual(20);
  });

  it.runIf(canDrop)('publish({ retry: true }) survives a dropped connection', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const queue = new Queue(ctx.queueName('retry'), { durable: false });
    const got: unknown[] = [];
    await new Consumer(conn, [queue], { callbacks: [(b, m) => { got.push(b); m.ack(); }] }).consume();
    const producer = conn.Producer({ routingKey: queue.name });
    // Published right after the drop: on a socket the client may not know yet that it is dead.
    await ctx.options.dropConnections?.();
    await producer.publish({ n: 1 }, { retry: true, retryPolicy: { maxRetries: 5, intervalStart: 0.05, intervalStep: 0.05 } });
    await ctx.until(() => got.length >= 1, 'the message published with retry');
    expect(got[0]).toEqual({ n: 1 });
  });

  it.runIf(canDrop)('maybeDeclare caches per connection and forgets on reconnect', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const exchange = new Exchange(ctx.exchangeName('cached'), { durable: false });
    const queue = new Queue(ctx.queueName('cached'), { exchange, routingKey: 'k', durable: false });
    expect(await maybeDeclare(exchange, channel)).toBe(true);
    expect(await maybeDeclare(exchange, channel)).toBe(false);
    expect(await maybeDeclare(queue, channel)).toBe(true);
    expect(await maybeDeclare(queue, channel)).toBe(false);
    expect(conn.declaredEntities.has(queue.ident)).toBe(true);
    const back = reconnected(conn);
    await ctx.options.dropConnections?.();
    await back;
    expect(conn.declaredEntities.size).toBe(0);
    expect(await maybeDeclare(exchange, channel)).toBe(true);
    expect(await maybeDeclare(queue, channel)).toBe(true);
  });

  it.runIf(canOutage)('while the broker is away publishes wait, then go out in order after the reconnect', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const exchange = new Exchange(ctx.exchangeName('buffered'), { durable: false });
    const queue = new Queue(ctx.queueName('buffered'), { exchange, routingKey: 'k', durable: false });
    const got: unknown[] = [];
    // At least once: an ack cut by the outage brings its message back (redelivered); count each once.
    await new Consumer(channel, [queue], { callbacks: [(b, m) => { if (!got.includes(b)) got.push(b); m.ack(); }] }).consume();
    const producer = new Producer(channel, { exchange, routingKey: 'k' });
    await producer.publish(0);
    await ctx.until(() => got.length === 1, 'the first message');
    const restore = await outage(conn, ctx.options.outage as () => Promise<() => Promise<void>>);
    let settled = 0;
    const pending = Promise.all([1, 2, 3].map((n) => producer.publish(n).then(() => void settled++)));
    pending.catch(() => undefined);
    try {
      await ctx.settle(0.2);
      expect(settled).toBe(0);
      expect(channel.buffered).toBe(3);
    } finally {
      const back = reconnected(conn);
      await restore();
      await back;
    }
    await pending;
    await ctx.until(() => got.length === 4, 'the buffered messages');
    expect(got).toEqual([0, 1, 2, 3]);
  });

  it.runIf(canOutage)('the publish buffer is bounded (LimitExceeded) and publishTimeout rejects with TimeoutError', async () => {
    const ctx = get();
    const conn = ctx.connection({ maxBufferedMessages: 2 });
    const channel = await conn.channel();
    const queue = new Queue(ctx.queueName('bounded'), { durable: false });
    await queue.bind(channel).declare();
    const producer = new Producer(channel, { routingKey: queue.name });
    const restore = await outage(conn, ctx.options.outage as () => Promise<() => Promise<void>>);
    const waiting = Promise.all([producer.publish(1), producer.publish(2)]);
    waiting.catch(() => undefined);
    try {
      const third = await producer.publish(3).catch((e: unknown) => e);
      expect(third).toBeInstanceOf(LimitExceeded);
      expect((third as Error).message).toMatch(/maxBufferedMessages/);
      const timed = new Producer(channel, { routingKey: queue.name, maxBufferedMessages: 10, publishTimeout: 0.1 });
      const late = await timed.publish(4).catch((e: unknown) => e);
      expect(late).toBeInstanceOf(TimeoutError);
      expect((late as Error).message).toMatch(/publishTimeout/);
    } finally {
      const back = reconnected(conn);
      await restore();
      await back;
    }
    await waiting;
    await expect.poll(async () => (await queue.bind(channel).queueDeclare({ passive: true })).messageCount).toBe(2);
  });

  it('closing connections leaves no timers or sockets behind', async () => {
    const ctx = get();
    const count = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r.startsWith('TCP')).length;
    const before = count();
    const conn = ctx.connection();
    const queue = new Queue(ctx.queueName('leaks'), { durable: false });
    const got: unknown[] = [];
    const consumer = conn.Consumer([queue], { prefetchCount: 5, callbacks: [(b, m) => { got.push(b); m.ack(); }] });
    await consumer.consume();
    await conn.Producer({ routingKey: queue.name, publishTimeout: 5 }).publish({ x: 1 });
    await ctx.until(() => got.length === 1);
    const simple = conn.SimpleQueue(ctx.entityName('leaks-simple'), { queueOpts: { durable: false }, exchangeOpts: { durable: false } });
    await expect(simple.get({ timeout: 0.01 })).rejects.toThrow();
    await simple.close();
    await consumer.cancel();
    await ctx.cleanup();
    await expect.poll(count, { timeout: 2000 }).toBeLessThanOrEqual(before);
  });
}
