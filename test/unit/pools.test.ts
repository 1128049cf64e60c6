import { inspect as utilInspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AccessRefused,
  ChannelPool,
  Connection,
  ConnectionClosed,
  ConnectionPool,
  IllegalStateError,
  LimitExceeded,
  ProducerPool,
  getLimit,
  pools,
  reset,
  setLimit,
  type PoolStatus,
} from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const fast = { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.03 };
const opened: { close(): Promise<void> }[] = [];
let brokerSeq = 0;

/** A connection to a fresh memory broker; closed (with its pools) after the test. */
function fresh(options: ConstructorParameters<typeof Connection>[1] = {}): { conn: Connection; name: string } {
  const name = `pools-${++brokerSeq}`;
  getMemoryBroker(name);
  const conn = new Connection(`memory://${name}`, { retryPolicy: fast, ...options });
  opened.push(conn);
  return { conn, name };
}
function track<P extends { close(): Promise<void> }>(pool: P): P {
  opened.push(pool);
  return pool;
}
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));
async function until(predicate: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 400 && !predicate(); i++) await tick(5);
  if (!predicate()) throw new Error(`timed out waiting for ${what}`);
}
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
  await reset();
  setLimit(10);
  resetMemoryBrokers();
});

describe('ConnectionPool on memory://', () => {
  it('creates members on demand up to the limit, hands back the last released first (LIFO)', async () => {
    const { conn, name } = fresh();
    const pool = track(conn.Pool({ limit: 3 }));
    expect(pool).toBeInstanceOf(ConnectionPool);
    expect(pool.size).toBe(0);
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a).not.toBe(b);
    expect(a.state).toBe('connected');
    expect(getMemoryBroker(name).liveConnections).toBe(2);
    expect([pool.size, pool.inUse, pool.free]).toEqual([2, 2, 0]);
    pool.release(a);
    await b.release(); // the member's own release(): back to the pool, not closed
    expect(b.state).toBe('connected');
    expect([pool.size, pool.inUse, pool.free]).toEqual([2, 0, 2]);
    expect(await pool.acquire()).toBe(b);
    expect(await pool.acquire()).toBe(a);
    expect(getMemoryBroker(name).liveConnections).toBe(2);
  });

  it('block: false at the limit rejects with LimitExceeded at once', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    await pool.acquire();
    await expect(pool.acquire()).rejects.toBeInstanceOf(LimitExceeded);
    await expect(pool.acquire({ block: false, timeout: 10 })).rejects.toBeInstanceOf(LimitExceeded);
  });

  it('block: true waits in FIFO order; a timeout rejects with LimitExceeded, a served waiter is not rejected', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    const member = await pool.acquire();
    const order: string[] = [];
    const first = pool.acquire({ block: true, timeout: 5 }).then((c) => (order.push('first'), c));
    const doomed = pool.acquire({ block: true, timeout: 0.05 });
    const second = pool.acquire({ block: true }).then((c) => (order.push('second'), c));
    expect(pool.waiting).toBe(3);
    const started = Date.now();
    await expect(doomed).rejects.toBeInstanceOf(LimitExceeded);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
    expect(pool.waiting).toBe(2);
    pool.release(member);
    expect(await first).toBe(member);
    pool.release(member);
    expect(await second).toBe(member);
    expect(order).toEqual(['first', 'second']);
    await tick(20);
    expect(pool.waiting).toBe(0);
  });

  it('releasing twice or releasing a foreign resource is an IllegalStateError', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 2 }));
    const member = await pool.acquire();
    pool.release(member);
    expect(() => pool.release(member)).toThrow(IllegalStateError);
    expect(() => pool.release(member)).toThrow(/already released/);
    await expect(member.release()).rejects.toBeInstanceOf(IllegalStateError);
    expect(() => pool.release(conn)).toThrow(/does not belong/);
  });

  it('use() releases even when fn throws, and returns what fn returns', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    await expect(pool.use(async () => {
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(pool.inUse).toBe(0);
    expect(await pool.use((c) => c.state)).toBe('connected');
    // fn may release it itself: use() does not release it twice.
    await pool.use((c) => c.release());
    expect([pool.inUse, pool.free]).toEqual([0, 1]);
  });

  it('preload creates and connects that many members up front', async () => {
    const { conn, name } = fresh();
    const pool = track(conn.Pool({ limit: 5, preload: 3 }));
    await pool.ready();
    expect(getMemoryBroker(name).liveConnections).toBe(3);
    expect(pool.getSnapshot()).toMatchObject({ size: 3, free: 3, inUse: 0 });
    expect(pool.getSnapshot().members.map((m) => [m.state, m.resource])).toEqual([
      ['ready', 'connected'],
      ['ready', 'connected'],
      ['ready', 'connected'],
    ]);
  });

  it('replaces a member that died while free; an acquirer never gets a dead one', async () => {
    const { conn, name } = fresh();
    const pool = track(conn.Pool({ limit: 2, preload: 1 }));
    await pool.ready();
    const first = await pool.acquire();
    pool.release(first);
    await first.close(); // dies while free
    const next = await pool.acquire({ block: true, timeout: 2 });
    expect(next).not.toBe(first);
    expect(next.state).toBe('connected');
    await until(() => pool.getSnapshot().members.every((m) => m.state === 'ready'), 'replacement');
    expect(pool.getSnapshot().members.some((m) => m.restarts === 1)).toBe(true);
    expect(getMemoryBroker(name).liveConnections).toBe(pool.size);
  });

  it('a member that fails for good while lent is replaced; its later release is just forgotten', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    const lent = await pool.acquire();
    const waiter = pool.acquire({ block: true, timeout: 2 });
    await lent.close(); // the holder closed it instead of releasing it
    const replacement = await waiter;
    expect(replacement).not.toBe(lent);
    expect(replacement.state).toBe('connected');
    expect(() => pool.release(lent)).not.toThrow();
    expect(() => pool.release(lent)).toThrow(IllegalStateError);
  });

  it('after a dropped broker connection members heal; every waiter gets a live member', async () => {
    const { conn, name } = fresh();
    const pool = track(conn.Pool({ limit: 2, preload: 2 }));
    await pool.ready();
    getMemoryBroker(name).dropConnections();
    const got = await Promise.all([1, 2, 3, 4].map(() => pool.use(async (c) => {
      await c.ensureConnection(fast);
      return c.state;
    }, { timeout: 5 })));
    expect(got).toEqual(['connected', 'connected', 'connected', 'connected']);
    expect(getMemoryBroker(name).liveConnections).toBe(2);
  });

  it('an irrecoverable failure (refused credentials) rejects the acquirer instead of hanging', async () => {
    const { name } = fresh();
    getMemoryBroker(name).setCredentials({ userid: 'app', password: 'right' });
    const conn = new Connection(`memory://app:wrong@${name}`, { retryPolicy: fast });
    opened.push(conn);
    const pool = track(conn.Pool({ limit: 2 }));
    await expect(pool.acquire({ block: true })).rejects.toMatchObject({ name: 'AccessRefused', recoverable: false });
    await until(() => pool.size === 0, 'retired member');
    expect(AccessRefused).toBeDefined();
  });

  it('a non-blocking acquire hears of a failed creation instead of waiting', async () => {
    const { conn, name } = fresh();
    getMemoryBroker(name).refuseConnections = true;
    const pool = track(conn.Pool({ limit: 2 }));
    await expect(pool.acquire()).rejects.toMatchObject({ recoverable: true });
    getMemoryBroker(name).refuseConnections = false;
    const member = await pool.acquire({ block: true, timeout: 2 });
    expect(member.state).toBe('connected');
  });
});

describe('resizing', () => {
  it('shrinking while members are in use throws unless ignoreErrors (they retire on release) or force', async () => {
    const { conn, name } = fresh();
    const pool = track(conn.Pool({ limit: 3, preload: 3 }));
    await pool.ready();
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(() => pool.resize(1)).toThrow(IllegalStateError);
    expect(pool.limit).toBe(3);
    pool.resize(1, { ignoreErrors: true });
    expect(pool.limit).toBe(1);
    await until(() => getMemoryBroker(name).liveConnections === 2, 'free member retired');
    pool.release(a);
    await until(() => getMemoryBroker(name).liveConnections === 1, 'released member retired');
    expect(b.state).toBe('connected');
    pool.release(b);
    expect(pool.size).toBe(1);
    expect(await pool.acquire()).toBe(b);
    expect(() => pool.resize(0)).not.toThrow(); // growing (0 = no limit) never throws
    pool.resize(3);
    pool.resize(1, { force: true }); // b in use: every member is closed and made anew
    await until(() => b.state === 'closed', 'forced close');
    const c = await pool.acquire({ block: true, timeout: 2 });
    expect(c.state).toBe('connected');
  });

  it('growing the limit serves waiters at once', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    await pool.acquire();
    const waiting = pool.acquire({ block: true, timeout: 2 });
    await tick();
    pool.limit = 2;
    expect((await waiting).state).toBe('connected');
    expect(pool.size).toBe(2);
  });
});

describe('observability', () => {
  it('subscribe() gets size, inUse, free, waiting and each member state; events too', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    const seen: PoolStatus[] = [];
    const memberEvents: string[] = [];
    const unsubscribe = pool.subscribe((s) => seen.push(s));
    pool.on('member', (e) => memberEvents.push(`${e.memberId}:${e.from}->${e.to}`));
    const member = await pool.acquire();
    const waiter = pool.acquire({ block: true });
    await tick();
    expect(pool.getSnapshot()).toMatchObject({ state: 'running', limit: 1, size: 1, inUse: 1, free: 0, waiting: 1 });
    expect(pool.getSnapshot()).toBe(pool.getSnapshot()); // stable between changes
    pool.release(member);
    await waiter;
    pool.release(member);
    await tick();
    expect(seen.at(-1)).toMatchObject({ size: 1, inUse: 0, free: 1, waiting: 0 });
    expect(seen.at(-1)?.members[0]).toMatchObject({ id: 'member-1', state: 'ready', resource: 'connected', inUse: false });
    expect(seen.some((s) => s.waiting === 1)).toBe(true);
    expect(memberEvents).toContain('member-1:creating->ready');
    unsubscribe();
    await pool.close();
    expect(pool.getSnapshot()).toMatchObject({ state: 'closed', size: 0 });
  });

  it('the inspect option sees the pool actor, its member actors and the member connections', async () => {
    const { conn } = fresh();
    const actors = new Set<string>();
    const pool = track(conn.Pool({
      limit: 2,
      preload: 1,
      inspect: (event) => {
        if (event.type === '@xstate.actor') actors.add(String((event.actorRef as { id?: string }).id ?? ''));
      },
    }));
    await pool.ready();
    expect(actors.has('member-1')).toBe(true);
    expect(actors.size).toBeGreaterThanOrEqual(3); // pool root, member-1, the member connection's actor...
    expect(pool.actor.getSnapshot().children['member-1']).toBeDefined();
  });
});

describe('close()', () => {
  it('rejects waiters, closes every member, refuses new acquires, and leaves no timer or connection', async () => {
    const { conn, name } = fresh();
    const before = timers();
    const pool = conn.Pool({ limit: 2, preload: 2 });
    await pool.ready();
    const a = await pool.acquire();
    await pool.acquire();
    const waiters = [pool.acquire({ block: true, timeout: 30 }), pool.acquire({ block: true })];
    await pool.close();
    for (const w of waiters) await expect(w).rejects.toBeInstanceOf(ConnectionClosed);
    expect(getMemoryBroker(name).liveConnections).toBe(0);
    expect(a.state).toBe('closed');
    expect(() => pool.release(a)).not.toThrow(); // a holder giving it back after close: no error
    await expect(pool.acquire()).rejects.toBeInstanceOf(IllegalStateError);
    expect(pool.actor.getSnapshot().status).toBe('done');
    expect(Object.keys(pool.actor.getSnapshot().children)).toEqual([]);
    await pool.close();
    await tick(20);
    expect(timers()).toBeLessThanOrEqual(before);
  });
});

describe('ChannelPool', () => {
  it('lends channels of one connection; ch.release() gives one back; a closed channel is replaced', async () => {
    const { conn } = fresh();
    const channels = track(conn.ChannelPool({ limit: 2, preload: 1 }));
    expect(channels).toBeInstanceOf(ChannelPool);
    await channels.ready();
    const ch = await channels.acquire();
    await ch.declareQueue({ name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    await ch.publish(Buffer.from('hi'), {}, '', 'q');
    expect((await ch.get('q', { noAck: true }))?.message.body.toString()).toBe('hi');
    await ch.release();
    expect(await channels.acquire()).toBe(ch);
    await ch.close(); // dies while lent
    const other = await channels.acquire({ block: true, timeout: 2 });
    expect(other).not.toBe(ch);
    expect(other.state).toBe('open');
    await channels.close();
    expect(conn.state).toBe('connected'); // the connection is not the pool's to close
  });
});

describe('ProducerPool', () => {
  it('lends producers bound to a pooled connection, and gives the connection back on release', async () => {
    const { conn } = fresh();
    const connections = track(conn.Pool({ limit: 1 }));
    const producers = track(new ProducerPool(connections, { limit: 2 }));
    const channel = await conn.channel();
    await channel.declareQueue({ name: 'tasks', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    const producer = await producers.acquire();
    expect(connections.inUse).toBe(1);
    await producer.publish({ n: 1 }, { routingKey: 'tasks' });
    producers.release(producer);
    expect(connections.inUse).toBe(0);
    await producers.use((p) => p.publish({ n: 2 }, { routingKey: 'tasks' }));
    const bodies: string[] = [];
    for (let m = await channel.get('tasks', { noAck: true }); m; m = await channel.get('tasks', { noAck: true })) bodies.push(m.message.body.toString());
    expect(bodies.map((b) => JSON.parse(b))).toEqual([{ n: 1 }, { n: 2 }]);
    // Two producers, one connection: the second producer waits for the connection.
    const p1 = await producers.acquire();
    const p2 = producers.acquire({ timeout: 0.05 });
    await expect(p2).rejects.toBeInstanceOf(LimitExceeded);
    expect(producers.inUse).toBe(1);
    await p1.release();
    expect(connections.inUse).toBe(0);
  });
});

describe('global pool groups', () => {
  it('one pool per connection identity, the global limit (10 by default), setLimit and reset', async () => {
    expect(getLimit()).toBe(10);
    const name = `pools-${++brokerSeq}`;
    const url = `memory://user:s3cret-pw@${name}`;
    const a = pools.connections.get(url);
    expect(pools.connections.get(url)).toBe(a);
    const conn = new Connection(url);
    opened.push(conn);
    expect(pools.connections.get(conn)).toBe(a);
    expect(pools.connections.get(`memory://user:other-pw@${name}`)).not.toBe(a);
    expect(a.limit).toBe(10);
    const producers = pools.producers.get(url);
    expect(producers.connections).toBe(a);
    // The password never shows: not in the group, not in the pool's status.
    const shown = utilInspect(pools.connections, { depth: 5 }) + JSON.stringify(a.getSnapshot()) + utilInspect(a.getSnapshot(), { depth: 5 });
    expect(shown).not.toContain('s3cret-pw');

    const member = await a.acquire();
    expect(() => setLimit(0)).not.toThrow(); // growing to no limit
    expect(() => setLimit(2)).not.toThrow(); // from no limit: not a shrink to kombu
    expect(a.limit).toBe(2);
    a.release(member);
    expect(setLimit(1)).toBe(1);
    expect(getLimit()).toBe(1);
    expect(a.limit).toBe(1);
    expect(producers.limit).toBe(1);
    await reset();
    expect(a.state).toBe('closed');
    expect(pools.connections.size).toBe(0);
    expect(pools.connections.get(url)).not.toBe(a);
  });
});

describe('a member that died while lent', () => {
  it("its own release() gives it back: inUse drops to 0 and the pool can shrink (ConnectionPool)", async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 2 }));
    const lent = await pool.acquire();
    await lent.close(); // dies while lent; the pool replaces it
    await until(() => pool.getSnapshot().members.some((m) => m.restarts === 1 && m.state === 'ready'), 'replacement');
    await lent.release(); // what a holder does in its finally
    expect(pool.inUse).toBe(0);
    expect(pool.getSnapshot().inUse).toBe(0);
    expect(() => pool.resize(1)).not.toThrow();
    await expect(lent.release()).resolves.toBeUndefined(); // a second release: no longer the pool's
  });

  it("its own release() gives it back (ChannelPool), also after the pool closed", async () => {
    const { conn } = fresh();
    const channels = track(conn.ChannelPool({ limit: 2 }));
    const ch = await channels.acquire();
    const other = await channels.acquire();
    await ch.close();
    await until(() => channels.getSnapshot().members.some((m) => m.restarts === 1), 'replacement');
    await ch.release();
    expect(channels.inUse).toBe(1);
    await channels.close();
    await other.release();
    expect(channels.inUse).toBe(0);
  });
});

describe('ChannelPool over a connection that is reconnecting', () => {
  it('close() does not wait for a member whose channel waits for the connection; that channel is closed once it opens', async () => {
    const { conn, name } = fresh();
    await conn.connect();
    const broker = getMemoryBroker(name);
    const channels = conn.ChannelPool({ limit: 2 });
    const acquiring = channels.acquire({ block: true, timeout: 0.05 });
    broker.refuseConnections = true;
    broker.dropConnections(); // the member's channel is opening: it now waits for a reconnect
    await expect(acquiring).rejects.toBeInstanceOf(LimitExceeded);
    expect(conn.state).not.toBe('connected');
    let closed = false;
    void channels.close().then(() => (closed = true));
    await until(() => closed, 'pool closed');
    expect(channels.getSnapshot()).toMatchObject({ state: 'closed', size: 0 });
    broker.refuseConnections = false;
    await conn.ensureConnection(fast);
    const raw = conn.connection as { channelCount: number };
    await until(() => raw.channelCount === 0, 'the abandoned channel closed');
  });
});

describe('ChannelPool over a connection that failed for good', () => {
  it('never lends a channel of the failed connection; it heals once the broker is back', async () => {
    const { conn, name } = fresh({ retryPolicy: { ...fast, maxRetries: 1 } });
    const channels = track(conn.ChannelPool({ limit: 2, preload: 1 }));
    await channels.ready();
    const broker = getMemoryBroker(name);
    broker.refuseConnections = true;
    broker.dropConnections();
    await until(() => conn.state === 'failed', 'connection failed');
    // Still down: the acquirer hears why instead of getting a channel that can never open.
    await expect(channels.acquire()).rejects.toMatchObject({ recoverable: true });
    broker.refuseConnections = false;
    const ch = await channels.acquire({ block: true, timeout: 5 });
    expect(ch.state).toBe('open');
    await ch.declareQueue({ name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    await ch.publish(Buffer.from('hi'), {}, '', 'q');
    expect(conn.state).toBe('connected');
    await ch.release();
  });
});

describe('global pool groups while a reset is under way', () => {
  it('a pool got right after setLimit(..., { resetAfter }) or during reset() is a new, working one', async () => {
    const name = `pools-${++brokerSeq}`;
    getMemoryBroker(name);
    const url = `memory://${name}`;
    const before = pools.producers.get(url);
    await before.use((p) => p.publish({ n: 0 }, { routingKey: 'nowhere' }));
    setLimit(5, { resetAfter: true });
    const producers = pools.producers.get(url);
    expect(producers).not.toBe(before);
    await until(() => before.state === 'closed', 'old pools closed');
    expect(producers.connections.state).toBe('running');
    await expect(producers.use((p) => p.publish({ n: 1 }, { routingKey: 'nowhere' }), { timeout: 2 })).resolves.toBeUndefined();
    const resetting = reset();
    const during = pools.connections.get(url);
    await resetting;
    expect(during.state).toBe('running');
    await expect(during.use((c) => c.state, { timeout: 2 })).resolves.toBe('connected');
  });
});

describe('ProducerPool.close()', () => {
  it('rejects an acquirer still waiting for a connection, which then never takes one', async () => {
    const { conn } = fresh();
    const connections = track(conn.Pool({ limit: 1 }));
    const producers = track(new ProducerPool(connections, { limit: 2 }));
    const held = await connections.acquire();
    const pending = producers.acquire({ block: true });
    await until(() => connections.waiting === 1, 'the producer waiting for a connection');
    let outcome: unknown;
    pending.then(() => (outcome = 'resolved'), (error: unknown) => (outcome = error));
    await producers.close();
    await until(() => outcome !== undefined, 'the acquirer to hear of the close');
    expect(outcome).toBeInstanceOf(ConnectionClosed);
    connections.release(held);
    await until(() => connections.waiting === 0, 'the connection waiter served');
    await until(() => connections.inUse === 0, 'the connection given back');
    expect(connections.free).toBe(1);
  });
});

describe('acquire() timeouts given by users (seconds)', () => {
  /** Past Node's timer limit (2^31 - 1 ms, ~24.8 days): Node would fire such a timer after 1 ms. */
  const MONTH = 30 * 24 * 3600;

  it('timeout: Infinity waits without a limit, as does a timeout past the timer limit; a release serves them', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    const member = await pool.acquire();
    for (const timeout of [MONTH, Infinity]) {
      let outcome = 'pending';
      const waiting = pool.acquire({ block: true, timeout }).then(
        (c) => ((outcome = 'served'), c),
        (e: unknown) => ((outcome = String(e)), undefined),
      );
      await tick(30);
      expect(outcome).toBe('pending');
      expect(pool.waiting).toBe(1);
      pool.release(member);
      expect(await waiting).toBe(member);
    }
  });

  it('NaN, negative or non-number timeouts are refused at once; no waiter is left behind', async () => {
    const { conn } = fresh();
    const pool = track(conn.Pool({ limit: 1 }));
    const member = await pool.acquire();
    for (const timeout of [Number.NaN, -1, '1' as unknown as number]) {
      await expect(pool.acquire({ block: true, timeout })).rejects.toThrow(/timeout must be a number of seconds/);
    }
    expect(pool.waiting).toBe(0);
    // 0 still means "do not wait for a member": LimitExceeded at once.
    await expect(pool.acquire({ block: true, timeout: 0 })).rejects.toBeInstanceOf(LimitExceeded);
    pool.release(member);
  });
});
