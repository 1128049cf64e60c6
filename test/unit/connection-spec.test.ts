/**
 * kombu's Connection spec (kombu-connection-spec.txt), entry by entry where kombu-ts had a gap:
 * the defaults, members and argument forms a kombu user calls, checked on memory://.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, ConfigurationError, Connection, ConnectionError, IllegalStateError, Producer, pools, reset } from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const open: Connection[] = [];
function connection(url: string, options: ConstructorParameters<typeof Connection>[1] = {}): Connection {
  const conn = new Connection(url, { retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.03 }, ...options });
  open.push(conn);
  return conn;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe("kombu's Connection spec", () => {
  it('connect_timeout defaults to 5 seconds, as kombu (an explicit one still wins)', () => {
    expect(connection('memory://ct').info().connectTimeout).toBe(5);
    expect(connection('amqp://guest:guest@rabbit//').info().connectTimeout).toBe(5);
    expect(connection('memory://ct', { connectTimeout: 2 }).info().connectTimeout).toBe(2);
    expect(connection('memory://ct?connect_timeout=3').info().connectTimeout).toBe(3);
  });

  it('heartbeatCheck(rate) refuses a rate that is not a number >= 1 with ConfigurationError, connected or not', async () => {
    const conn = connection('memory://hb', { heartbeat: 10 });
    for (const rate of [NaN, 0, -1, 0.5, Infinity, '2']) {
      expect(() => conn.heartbeatCheck(rate as number)).toThrow(ConfigurationError);
    }
    await conn.connect();
    for (const rate of [NaN, 0, -1, 0.5, Infinity, '2']) {
      expect(() => conn.heartbeatCheck(rate as number)).toThrow(/rate must be a number >= 1/);
    }
    expect(conn.connected).toBe(true);
    expect(() => conn.heartbeatCheck()).not.toThrow();
    expect(() => conn.heartbeatCheck(2.5)).not.toThrow();
  });

  it('has channelErrors and recoverableChannelErrors beside the connection ones, before and after connecting', async () => {
    const conn = connection('memory://errs');
    expect(conn.channelErrors).toContain(ChannelError);
    expect(conn.recoverableChannelErrors).toContain(ChannelError);
    expect(conn.channelErrors).not.toContain(ConnectionError);
    await conn.connect();
    expect(conn.channelErrors).toEqual(conn.transport?.channelErrors);
    expect(conn.recoverableChannelErrors).toContain(ChannelError);
    // What kombu users write: `except conn.connection_errors + conn.channel_errors`.
    const caught = [...conn.connectionErrors, ...conn.channelErrors];
    expect(caught.some((cls) => new ChannelError('x') instanceof cls)).toBe(true);
  });

  it('completesCycle(retries) is true when retries ends a full round over the brokers, as kombu', () => {
    const three = connection('memory://a;memory://b;memory://c');
    expect([0, 1, 2, 3, 4, 5].map((r) => three.completesCycle(r))).toEqual([false, false, true, false, false, true]);
    const one = connection('memory://solo');
    expect([0, 1, 2].map((r) => one.completesCycle(r))).toEqual([true, true, true]);
  });

  it("getHeartbeatInterval() gives the connection's heartbeat while connected, IllegalStateError before", async () => {
    const conn = connection('memory://hbi', { heartbeat: 10 });
    expect(() => conn.getHeartbeatInterval()).toThrow(IllegalStateError);
    await conn.connect();
    expect(conn.getHeartbeatInterval()).toBe(10);
    const off = connection('memory://hbi-off');
    await off.connect();
    expect(off.getHeartbeatInterval()).toBe(0);
  });

  it("ensure(obj, 'method') takes the method's name, as the spec has it, and looks it up on each call", async () => {
    getMemoryBroker('named');
    const conn = connection('memory://named');
    await conn.connect();
    const calls: string[] = [];
    let fail = true;
    const obj = {
      tag: 'first',
      publish(body: string): string {
        calls.push(`${this.tag}:${body}`);
        if (fail) {
          fail = false;
          throw new ChannelError('channel gone');
        }
        return `sent ${body}`;
      },
    };
    const publish = conn.ensure(obj, 'publish', { maxRetries: 2 });
    await expect(publish('hi')).resolves.toBe('sent hi');
    expect(calls).toEqual(['first:hi', 'first:hi']);
  });

  it('ensure() refuses a name that is no method of obj, or a fn that is no function, with ConfigurationError at once', () => {
    const conn = connection('memory://named-bad');
    expect(() => conn.ensure({ publish: 1 }, 'publish' as never)).toThrow(ConfigurationError);
    expect(() => conn.ensure({}, 'nope' as never)).toThrow(/'nope' is not a method/);
    expect(() => conn.ensure({}, undefined as never)).toThrow(ConfigurationError);
  });

  it("`await using` is kombu's `with conn:` — it closes a connection, and gives a pooled one back", async () => {
    const conn = connection('memory://with');
    {
      await using c = await conn.connect();
      expect(c.connected).toBe(true);
    }
    expect(conn.state).toBe('closed');

    const pool = connection('memory://with-pool').Pool({ limit: 1 });
    try {
      let first: Connection | undefined;
      {
        await using c = await pool.acquire();
        first = c;
        expect(pool.getSnapshot().inUse).toBe(1);
      }
      expect(pool.getSnapshot().inUse).toBe(0);
      const again = await pool.acquire();
      expect(again).toBe(first);
      expect(again.connected).toBe(true);
      await again.release();
    } finally {
      await pool.close();
    }
  });

  it("`await using` on the spec's pool examples: a producer from pools.producers goes back to its pool", async () => {
    try {
      const producers = pools.producers.get('memory://with-producers');
      let first: Producer | undefined;
      {
        await using producer = await producers.acquire();
        first = producer;
        expect(producers.getSnapshot().inUse).toBe(1);
        await producer.publish({ msg: 'hello' }, { routingKey: 'test' });
      }
      expect(producers.getSnapshot().inUse).toBe(0);
      const again = await producers.acquire();
      expect(again).toBe(first);
      producers.release(again);
    } finally {
      await reset();
    }
  });

  it('ensureConnection() and ensure() refuse an errback, callback or onRevive that is no function with ConfigurationError', async () => {
    const conn = connection('memory://callbacks');
    await expect(conn.ensureConnection({ errback: 5 as never })).rejects.toThrow(/errback must be a function, got number/);
    await expect(conn.ensureConnection({ callback: 'x' as never })).rejects.toBeInstanceOf(ConfigurationError);
    expect(conn.state).toBe('idle');
    const obj = { run: () => 1 };
    expect(() => conn.ensure(obj, obj.run, { errback: {} as never })).toThrow(ConfigurationError);
    expect(() => conn.ensure(obj, obj.run, { onRevive: true as never })).toThrow(/onRevive must be a function/);
  });
});
