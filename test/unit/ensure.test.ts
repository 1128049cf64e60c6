/**
 * conn.ensure() as kombu 5.2's `Connection._ensured` behaves (checked against kombu on
 * memory:// with py-amqp's recoverable error classes): no sleep between calls on a healthy
 * connection, errback(error, 0) per failed call, revive + onRevive after each connection error
 * only, maxRetries counting failed calls.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChannelError, Connection, ConnectionClosed, ConnectionError, Producer, type Channel } from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const opened: Connection[] = [];
let seq = 0;
async function connected(): Promise<{ conn: Connection; name: string }> {
  const name = `ensure-${++seq}`;
  const conn = new Connection(`memory://${name}`, { retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.01 } });
  opened.push(conn);
  await conn.connect();
  return { conn, name };
}

/** Runs event-loop turns (never timers) until `promise` settles; its outcome, or 'pending'. */
async function settle<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown } | 'pending'> {
  let result: { value: T } | { error: unknown } | 'pending' = 'pending';
  promise.then((value) => (result = { value }), (error: unknown) => (result = { error }));
  for (let i = 0; i < 100 && result === 'pending'; i++) await new Promise((resolve) => setImmediate(resolve));
  return result;
}

/** An operation failing `failures` times with `make()`, then returning 'ok'. */
function flaky(failures: number, make: () => Error): { op: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    op: async () => {
      calls += 1;
      if (calls <= failures) throw make();
      return 'ok';
    },
    calls: () => calls,
  };
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(opened.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe('conn.ensure() on a healthy connection', () => {
  const slow = { intervalStart: 30, intervalStep: 30, intervalMax: 30 };

  it('retries channel errors at once: no sleep, errback(error, 0) each time, no revive', async () => {
    const { conn } = await connected();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }); // a sleep would never end
    const { op, calls } = flaky(3, () => new ChannelError('channel hiccup'));
    const intervals: number[] = [];
    const target = { revived: 0, revive: () => void (target.revived += 1) };
    const revived: Channel[] = [];
    const ensured = conn.ensure(target, op, { ...slow, errback: (_e, interval) => intervals.push(interval), onRevive: (ch) => revived.push(ch) });
    expect(await settle(ensured())).toEqual({ value: 'ok' });
    expect(calls()).toBe(4);
    expect(intervals).toEqual([0, 0, 0]);
    expect([target.revived, revived.length]).toEqual([0, 0]);
  });

  it('after connection errors revives obj on the default channel and calls onRevive each time, without sleeping', async () => {
    const { conn } = await connected();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { op, calls } = flaky(3, () => new ConnectionError('connection hiccup'));
    const intervals: number[] = [];
    const channels: Channel[] = [];
    const target = { revive: (ch: Channel) => void channels.push(ch) };
    const revived: Channel[] = [];
    const ensured = conn.ensure(target, op, { ...slow, errback: (_e, interval) => intervals.push(interval), onRevive: (ch) => revived.push(ch) });
    expect(await settle(ensured())).toEqual({ value: 'ok' });
    expect(calls()).toBe(4);
    expect(intervals).toEqual([0, 0, 0]);
    expect(channels).toEqual([conn.defaultChannel, conn.defaultChannel, conn.defaultChannel]);
    expect(revived).toHaveLength(3);
  });

  it('maxRetries counts failed calls, for connection and channel errors alike', async () => {
    const { conn } = await connected();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    for (const make of [() => new ConnectionError('c'), () => new ChannelError('ch')]) {
      const { op, calls } = flaky(5, make);
      const intervals: number[] = [];
      const outcome = await settle(conn.ensure(undefined, op, { ...slow, maxRetries: 2, errback: (_e, i) => intervals.push(i) })());
      expect(outcome).toEqual({ error: expect.any(Error) });
      expect([calls(), intervals]).toEqual([3, [0, 0]]);
    }
  });

  it('a retried publish goes out once the call succeeds, and the producer is revived on the default channel', async () => {
    const { conn } = await connected();
    const channel = await conn.channel();
    await channel.declareQueue({ name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    const producer = new Producer(channel);
    const { op } = flaky(1, () => new ConnectionError('lost'));
    const revived: Channel[] = [];
    await conn.ensure(producer, async () => { await op(); await producer.publish('hi', { routingKey: 'q' }); }, { onRevive: (ch) => revived.push(ch) })();
    expect(revived).toEqual([conn.defaultChannel]);
    expect(producer.channel).toBe(conn.defaultChannel);
    expect((await channel.get('q', { noAck: true }))?.message.body.toString()).toBe('hi');
  });
});

describe('conn.ensure() across a real outage', () => {
  it('waits for the reconnect; errback hears the call failure (0) and each failed connection attempt', async () => {
    const { conn, name } = await connected();
    const broker = getMemoryBroker(name);
    const intervals: number[] = [];
    let calls = 0;
    const ensured = conn.ensure(undefined, async () => {
      calls += 1;
      if (calls === 1) {
        broker.refuseConnections = true;
        broker.dropConnections();
        throw new ConnectionError('connection lost mid-operation');
      }
      return conn.state;
    }, {
      intervalStart: 0.01, intervalStep: 0, intervalMax: 0.01,
      errback: (_e, interval) => {
        intervals.push(interval);
        if (intervals.length === 3) broker.refuseConnections = false;
      },
    });
    await expect(ensured()).resolves.toBe('connected');
    expect(calls).toBe(2);
    expect(intervals[0]).toBe(0);
    expect(intervals.length).toBeGreaterThanOrEqual(3);
  });

  it('close() ends a call retrying for ever: it rejects with ConnectionClosed and leaves no timer', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const { conn } = await connected();
    let calls = 0;
    const forever = conn.ensure(undefined, async () => {
      calls += 1;
      throw new ConnectionError('broker hiccup');
    });
    const result = forever();
    result.catch(() => undefined);
    while (calls < 3) await new Promise((resolve) => setImmediate(resolve));
    await conn.close();
    await expect(result).rejects.toBeInstanceOf(ConnectionClosed);
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
