import { afterEach, describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import {
  AccessRefused,
  BrokerConnection,
  ConfigurationError,
  Connection,
  ConnectionClosed,
  ConnectionError,
  IllegalStateError,
  TimeoutError,
  type ConnectionStatus,
} from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const fast = { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.03 };
const open: Connection[] = [];
function connection(url: string, options: ConstructorParameters<typeof Connection>[1] = {}): Connection {
  const conn = new Connection(url, { retryPolicy: fast, ...options });
  open.push(conn);
  return conn;
}
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe('Connection on memory://', () => {
  it('connects, reports kombu descriptive members, and closes', async () => {
    const conn = connection('memory://desc');
    expect(conn.state).toBe('idle');
    await expect(conn.connect()).resolves.toBe(conn);
    expect(conn.connected).toBe(true);
    expect(conn.hostname).toBe('desc');
    expect(conn.transport?.name).toBe('memory');
    expect(conn.supportsHeartbeats).toBe(true);
    expect(conn.connection).toBeDefined();
    expect(conn.connectionErrors).toContain(ConnectionError);
    await conn.close();
    expect(conn.state).toBe('closed');
    expect(conn.connected).toBe(false);
    await conn.close(); // twice is fine
  });

  it('fails over across three brokers with one down, at once and in order', async () => {
    getMemoryBroker('a').refuseConnections = true;
    const conn = connection('memory://a;memory://b;memory://c');
    const events: string[] = [];
    conn.on('failover', ({ from, to }) => events.push(`failover ${from} -> ${to}`));
    conn.on('connected', ({ host }) => events.push(`connected ${host}`));
    conn.on('backoff', () => events.push('backoff'));
    await conn.connect();
    expect(events).toEqual(['failover memory://a/ -> memory://b/', 'connected memory://b/']);
    expect(conn.hostname).toBe('b');
    expect(conn.alt).toEqual(['memory://a/', 'memory://b/', 'memory://c/']);
  });

  it('backs off after each full round with the growing, capped sequence, then gives up after maxRetries', async () => {
    for (const name of ['x', 'y']) getMemoryBroker(name).refuseConnections = true;
    const conn = connection('memory://x;memory://y');
    const delays: number[] = [];
    const errback: [string, number][] = [];
    conn.on('backoff', ({ delay }) => delays.push(delay));
    const failure = conn.ensureConnection({
      maxRetries: 7,
      intervalStart: 0.01,
      intervalStep: 0.01,
      intervalMax: 0.025,
      errback: (error, interval) => errback.push([error.name, interval]),
    });
    await expect(failure).rejects.toBeInstanceOf(ConnectionError);
    expect(delays).toEqual([0.01, 0.02, 0.025]);
    // 8 attempts: each failure but the last is reported, 0 while failing over mid-round.
    expect(errback.map(([, i]) => i)).toEqual([0, 0.01, 0, 0.02, 0, 0.025, 0]);
    expect(getMemoryBroker('x').connectAttempts + getMemoryBroker('y').connectAttempts).toBe(8);
    expect(conn.state).toBe('failed');
  });

  it('maxRetries: 0 makes exactly one attempt', async () => {
    getMemoryBroker('once').refuseConnections = true;
    const conn = connection('memory://once');
    await expect(conn.ensureConnection({ maxRetries: 0 })).rejects.toBeInstanceOf(ConnectionError);
    expect(getMemoryBroker('once').connectAttempts).toBe(1);
  });

  it('fails fast on refused credentials: one attempt, AccessRefused, not recoverable', async () => {
    getMemoryBroker('auth').setCredentials({ userid: 'app', password: 'right' });
    const conn = connection('memory://app:wrong-secret@auth');
    const error = await conn.ensureConnection().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AccessRefused);
    expect((error as AccessRefused).recoverable).toBe(false);
    expect(getMemoryBroker('auth').connectAttempts).toBe(1);
    expect(conn.state).toBe('failed');
  });

  it('close() during backoff cancels it and leaves nothing running', async () => {
    getMemoryBroker('down').refuseConnections = true;
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const conn = connection('memory://down', { retryPolicy: { intervalStart: 60, intervalStep: 0, intervalMax: 60 } });
    const pending = conn.ensureConnection();
    await tick();
    expect(conn.state).toBe('backoff');
    await conn.close();
    await expect(pending).rejects.toBeInstanceOf(ConnectionClosed);
    expect(conn.state).toBe('closed');
    expect(conn.actor.getSnapshot().status).toBe('done');
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(before);
  });

  it('ensure() retries an operation across a dropped connection', async () => {
    const conn = connection('memory://ensure');
    await conn.connect();
    let calls = 0;
    const retried: number[] = [];
    const op = conn.ensure(undefined, async () => {
      calls += 1;
      if (calls === 1) {
        getMemoryBroker('ensure').dropConnections();
        throw new ConnectionError('connection lost mid-operation');
      }
      expect(conn.connected).toBe(true);
      return 'done';
    }, { maxRetries: 3, errback: (_e, interval) => retried.push(interval) });
    await expect(op()).resolves.toBe('done');
    expect(calls).toBe(2);
    expect(retried).toEqual([0]);
  });

  it('ensure() gives up after maxRetries and never retries irrecoverable errors', async () => {
    const conn = connection('memory://giveup');
    await conn.connect();
    let calls = 0;
    const failing = conn.ensure(undefined, async () => {
      calls += 1;
      throw new ConnectionError('still broken');
    }, { maxRetries: 2, intervalStart: 0, intervalStep: 0 });
    await expect(failing()).rejects.toThrow('still broken');
    expect(calls).toBe(3);
    calls = 0;
    const fatal = conn.ensure(undefined, async () => {
      calls += 1;
      throw new AccessRefused('no');
    });
    await expect(fatal()).rejects.toBeInstanceOf(AccessRefused);
    expect(calls).toBe(1);
  });

  it('autoretry() passes a channel and retries on a healed one', async () => {
    const conn = connection('memory://autoretry');
    await conn.connect();
    let calls = 0;
    const declare = conn.autoretry(async (channel, name: string) => {
      calls += 1;
      if (calls === 1) throw new ConnectionError('transient');
      return (await channel.declareQueue({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false })).queue;
    });
    await expect(declare('q1')).resolves.toBe('q1');
  });

  it('drainEvents() rejects with TimeoutError, and resolves on a delivery', async () => {
    const conn = connection('memory://drain');
    const channel = await conn.channel();
    await expect(conn.drainEvents({ timeout: 0.05 })).rejects.toBeInstanceOf(TimeoutError);
    await channel.declareQueue({ name: 'd', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    await channel.consume('d', { consumerTag: '', noAck: true }, () => undefined);
    const drained = conn.drainEvents({ timeout: 2 });
    await channel.publish(Buffer.from('x'), {}, '', 'd');
    await expect(drained).resolves.toBeUndefined();
  });

  it('emits state events in order through an outage, and channels recover', async () => {
    const conn = connection('memory://outage');
    const seen: string[] = [];
    conn.on('state', ({ from, to }) => seen.push(`${from}>${to}`));
    const channel = await conn.channel();
    getMemoryBroker('outage').dropConnections();
    await tick(50);
    expect(conn.state).toBe('connected');
    expect(seen).toEqual(['idle>connecting', 'connecting>connected', 'connected>connecting', 'connecting>connected']);
    await channel.whenOpen();
    expect(channel.epoch).toBe(2);
  });

  it('a missed heartbeat sends the connection back to connecting', async () => {
    const conn = connection('memory://hb', { heartbeat: 0.05, heartbeatRate: 2 });
    await conn.connect();
    const lost = new Promise((resolve) => conn.once('disconnected', resolve));
    getMemoryBroker('hb').stallConnections();
    const event = (await lost) as { error: { name: string } };
    expect(event.error.name).toBe('HeartbeatTimeout');
    getMemoryBroker('hb').resumeConnections();
  });

  it('never shows a password: events, errors, snapshots, URIs, inspection', async () => {
    const secret = 'S3cr3t-pa55';
    getMemoryBroker('pw').setCredentials({ userid: 'u', password: 'other' });
    const inspected: unknown[] = [];
    const conn = connection(`memory://u:${secret}@pw`, { inspect: (e) => inspected.push(e) });
    const seen: unknown[] = [];
    for (const name of ['state', 'connected', 'disconnected', 'backoff', 'failover', 'error'] as const) conn.on(name, (e: unknown) => seen.push(e));
    conn.subscribe((s) => seen.push(s));
    const error = await conn.connect().catch((e: unknown) => e as Error);
    const text = JSON.stringify([seen, conn.actor.getSnapshot().context, String(error), (error as Error).stack, conn.asUri(), conn.alt, inspected.map((e) => (e as { snapshot?: unknown; event?: unknown }).snapshot ?? (e as { event?: unknown }).event)]);
    expect(text).not.toContain(secret);
    expect(conn.asUri()).toBe('memory://u:**@pw/');
    expect(conn.asUri({ includePassword: true })).toBe(`memory://u:${secret}@pw/`);
    expect(inspected.length).toBeGreaterThan(0);
  });

  it('never shows a password when its channels, or what holds them, are inspected', async () => {
    const secret = 'S3cr3t-ch4n';
    const conn = connection(`memory://u:${secret}@pwch`);
    await conn.connect();
    const channel = await conn.channel();
    const producer = conn.Producer({ channel });
    expect(inspect(conn, { depth: 8 })).not.toContain(secret);
    expect(inspect(channel, { depth: 8 })).not.toContain(secret);
    expect(inspect(conn.defaultChannel, { depth: 8 })).not.toContain(secret);
    expect(inspect(producer, { depth: 8 })).not.toContain(secret);
    // The transport objects too: the connection's link listens to them, as their listeners' context.
    expect(inspect(conn.connection, { depth: 8 })).not.toContain(secret);
    expect(inspect(await channel.whenOpen(), { depth: 8 })).not.toContain(secret);
  });

  it('is a store: subscribe/getSnapshot with a stable snapshot, and an interop observable', async () => {
    const conn = connection('memory://store');
    const states: string[] = [];
    const unsubscribe = conn.subscribe((s: ConnectionStatus) => states.push(s.state));
    expect(conn.getSnapshot()).toBe(conn.getSnapshot());
    const observable = (conn as unknown as Record<symbol | string, () => { subscribe: typeof conn.subscribe }>)['@@observable']!();
    const completed = new Promise<void>((resolve) => observable.subscribe({ complete: resolve }));
    await conn.connect();
    unsubscribe.unsubscribe();
    await conn.close();
    await completed;
    expect(states).toEqual(['idle', 'connecting', 'connected']);
  });

  it('getSnapshot and subscribe work unbound and stay the same functions (useSyncExternalStore)', async () => {
    const conn = connection('memory://unbound');
    const { getSnapshot, subscribe } = conn;
    expect(conn.getSnapshot).toBe(getSnapshot);
    expect(conn.subscribe).toBe(subscribe);
    const seen: string[] = [];
    const off = subscribe((s: ConnectionStatus) => seen.push(s.state));
    await conn.connect();
    expect(getSnapshot().state).toBe('connected');
    off();
    await conn.close();
    expect(seen).toEqual(['idle', 'connecting', 'connected']);
  });

  it('a status first read after close is the final one, and its stream is already complete', async () => {
    const conn = connection('memory://late-store');
    await conn.connect();
    await conn.close();
    const events: string[] = [];
    conn.subscribe({ next: (s: ConnectionStatus) => events.push(s.state), complete: () => events.push('complete') });
    expect(events).toEqual(['closed', 'complete']);
    expect(conn.getSnapshot()).toMatchObject({ state: 'closed', connected: false });
  });

  it('refuses calls on a closed connection with a clear error', async () => {
    const conn = connection('memory://closed');
    await conn.close();
    await expect(conn.connect()).rejects.toBeInstanceOf(ConnectionClosed);
    await expect(conn.channel()).rejects.toThrow(/closed/);
    expect(() => conn.defaultChannel).toThrow(ConnectionClosed);
  });

  it('ensureConnection({ timeout }) rejects with TimeoutError and stops trying', async () => {
    getMemoryBroker('slow').refuseConnections = true;
    const conn = connection('memory://slow', { retryPolicy: { intervalStart: 0.01, intervalStep: 0, intervalMax: 0.01 } });
    await expect(conn.ensureConnection({ timeout: 0.1 })).rejects.toBeInstanceOf(TimeoutError);
    expect(conn.state).toBe('failed');
  });

  it('defaultChannel connects on first use and is reused', async () => {
    const conn = connection('memory://default');
    const channel = conn.defaultChannel;
    expect(conn.defaultChannel).toBe(channel);
    await channel.whenOpen();
    expect(conn.connected).toBe(true);
  });

  it('clone() copies the settings, password included, unconnected', async () => {
    const conn = connection('memory://u:pw@clone', { heartbeat: 3 });
    const copy = conn.clone();
    open.push(copy);
    expect(copy.asUri({ includePassword: true })).toBe('memory://u:pw@clone/');
    expect(copy.info().heartbeat).toBe(3);
    expect(copy.state).toBe('idle');
  });

  it("clone() and pool members keep the settings the URL's query gave (ssl, heartbeat, timeouts, transport options)", async () => {
    const conn = connection('amqp://u:pw@rabbit//?ssl=true&heartbeat=7&connect_timeout=2&login_method=AMQPLAIN&queue_name_prefix=dev-;amqp://v:pw2@backup/x?heartbeat=9');
    const settings = (c: Connection) => c.info();
    const copy = conn.clone();
    open.push(copy);
    expect(settings(copy)).toEqual(settings(conn));
    expect(copy.info()).toMatchObject({ ssl: true, port: 5671, heartbeat: 7, connectTimeout: 2, loginMethod: 'AMQPLAIN', transportOptions: { queueNamePrefix: 'dev-' } });
    // kombu's clone(**kwargs): the keywords win over what the URL said.
    const other = conn.clone({ heartbeat: 1, transportOptions: { extra: true } });
    open.push(other);
    expect(other.info()).toMatchObject({ ssl: true, heartbeat: 1, transportOptions: { queueNamePrefix: 'dev-', extra: true } });

    const mem = connection('memory://u:pw@pooled?heartbeat=3&connect_timeout=1.5&visibility_timeout=60');
    const pool = mem.Pool({ limit: 1 });
    const member = await pool.acquire();
    expect(member.info()).toMatchObject({ heartbeat: 3, connectTimeout: 1.5, transportOptions: { visibilityTimeout: 60 } });
    await member.release();
    await pool.close();
  });

  it('release() closes a connection outside any pool', async () => {
    const conn = connection('memory://release');
    await conn.connect();
    await conn.release();
    expect(conn.state).toBe('closed');
  });
});

describe('Connection construction', () => {
  it("keeps kombu's default: amqp on localhost with the RabbitMQ URI defaults", () => {
    const conn = new Connection();
    expect(conn.info()).toMatchObject({ transport: 'amqp', hostname: 'localhost', port: 5672, userid: 'guest', password: 'guest', virtualHost: '/' });
    expect(conn.asUri()).toBe('amqp://guest:**@localhost:5672//');
    expect(conn.host).toBe('localhost:5672');
    expect(BrokerConnection).toBe(Connection);
    void conn.close();
  });

  it('takes keyword options where the URL is silent, and the URL wins where it speaks', () => {
    // kombu drops the URL's missing parts (None) before they can override the keywords: port too.
    const conn = new Connection('amqp://app@rabbit/prod', { password: 'pw', port: 5673, heartbeat: 10, userid: 'ignored' });
    expect(conn.info()).toMatchObject({ userid: 'app', password: 'pw', hostname: 'rabbit', port: 5673, virtualHost: 'prod', heartbeat: 10 });
    void conn.close();
    const own = new Connection('amqp://app@rabbit:5674/prod', { port: 5673 });
    expect(own.port).toBe(5674);
    void own.close();
  });

  it("a blank heartbeat= or connect_timeout= in the URL is no value (kombu drops it): the options apply", () => {
    const conn = new Connection('memory://blank?heartbeat=&connect_timeout=', { heartbeat: 30, connectTimeout: 2 });
    expect(conn.info()).toMatchObject({ heartbeat: 30, connectTimeout: 2 });
    void conn.close();
  });

  it('a plain hostname uses the transport option', () => {
    const conn = new Connection('broker.local', { transport: 'redis', virtualHost: '2' });
    expect(conn.info()).toMatchObject({ transport: 'redis', hostname: 'broker.local', port: 6379, virtualHost: '2' });
    void conn.close();
  });

  it('rejects malformed input with typed errors', () => {
    expect(() => new Connection('amqq://localhost')).toThrow(ConfigurationError);
    expect(() => new Connection('amqq://localhost')).toThrow(/Did you mean 'amqp'/);
    expect(() => new Connection('amqp://localhost:99999')).toThrow(/port/);
    expect(() => new Connection('memory://x', { connectTimeout: -1 })).toThrow(ConfigurationError);
  });

  it('refuses bad option values with a ConfigurationError at construction, never a TypeError or RangeError later', () => {
    const bad: [unknown, ConstructorParameters<typeof Connection>[1], RegExp][] = [
      [42, {}, /must be a string, got number/],
      ['memory://x', { port: 99999 }, /port must be a whole number from 1 to 65535, got 99999/],
      ['memory://x', { port: -1 }, /port/],
      ['memory://x', { port: '5672' as never }, /port/],
      ['memory://x', { alternates: 'memory://y' as never }, /alternates must be an array/],
      ['memory://x', { failoverStrategy: 'random' as never }, /Unknown failoverStrategy 'random'/],
      ['memory://x?failover_strategy=random', {}, /Unknown failover_strategy 'random'/],
    ];
    for (const [url, options, message] of bad) {
      let error: unknown;
      try {
        void new Connection(url as string, options).close();
      } catch (e) {
        error = e;
      }
      expect(error, String(message)).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('refuses a heartbeatRate that would check in a busy loop (0) or never (NaN, negative, below 1)', () => {
    for (const heartbeatRate of [0, -1, Number.NaN, 0.5, Number.POSITIVE_INFINITY]) {
      expect(() => new Connection('memory://x', { heartbeat: 2, heartbeatRate }), String(heartbeatRate)).toThrow(ConfigurationError);
    }
    void new Connection('memory://x', { heartbeat: 2, heartbeatRate: 1 }).close();
  });

  it('reads a host given without a scheme as host[:port], and refuses user info there without echoing it', () => {
    for (const [host, hostname, port, uri] of [
      ['rabbit:5673', 'rabbit', 5673, 'amqp://guest:**@rabbit:5673//'],
      ['rabbit', 'rabbit', 5672, 'amqp://guest:**@rabbit:5672//'],
      ['::1', '::1', 5672, 'amqp://guest:**@[::1]:5672//'],
      ['[::1]:5673', '::1', 5673, 'amqp://guest:**@[::1]:5673//'],
    ] as const) {
      const conn = new Connection(host);
      expect(conn.info(), host).toMatchObject({ hostname, port });
      expect(conn.asUri()).toBe(uri);
      void conn.close();
    }
    const multi = new Connection('a:5680;b');
    expect(multi.alt).toEqual(['amqp://guest:**@a:5680//', 'amqp://guest:**@b:5672//']);
    void multi.close();
    for (const host of ['guest:s3cr3t-pw@rabbit:5672//', 'guest:s3cr3t-pw@rabbit']) {
      let error: unknown;
      try {
        void new Connection(host).close();
      } catch (e) {
        error = e;
      }
      expect(error, host).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).not.toContain('s3cr3t-pw');
    }
    expect(() => new Connection('rabbit:huge')).toThrow(/port 'huge'/);
  });

  it('a channel on a closing connection is refused with IllegalStateError', async () => {
    const conn = new Connection('memory://refuse');
    await conn.connect();
    const closing = conn.close();
    expect(() => conn.defaultChannel).toThrow(ConnectionClosed);
    await closing;
    expect(IllegalStateError).toBeDefined();
  });
});

/** Past Node's timer limit (2^31 - 1 ms, ~24.8 days): Node would fire such a timer after 1 ms. */
const MONTH = 30 * 24 * 3600;
const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
/** 'pending' when `promise` has not settled after a few ms (a timer of 1 ms would have fired). */
async function stillPending(promise: Promise<unknown>): Promise<'pending' | 'settled'> {
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  await tick(30);
  return settled ? 'settled' : 'pending';
}

describe('durations given by users (seconds)', () => {
  it('drainEvents({ timeout: Infinity }) waits for a delivery, as does a timeout past the timer limit', async () => {
    const conn = connection('memory://drain-forever');
    const channel = await conn.channel();
    await channel.declareQueue({ name: 'f', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    await channel.consume('f', { consumerTag: '', noAck: true }, () => undefined);
    for (const timeout of [MONTH, Infinity]) {
      const drained = conn.drainEvents({ timeout });
      expect(await stillPending(drained)).toBe('pending');
      await channel.publish(Buffer.from('x'), {}, '', 'f');
      await expect(drained).resolves.toBeUndefined();
    }
  });

  it('drainEvents() refuses NaN, negative and non-number timeouts with ConfigurationError, leaving no waiter or timer', async () => {
    const conn = connection('memory://drain-bad');
    const channel = await conn.channel();
    await channel.declareQueue({ name: 'b', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    await channel.consume('b', { consumerTag: '', noAck: true }, () => undefined);
    const before = timeouts();
    for (const timeout of [Number.NaN, -1, -Infinity, '5' as unknown as number]) {
      const error = await conn.drainEvents({ timeout }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/timeout/);
    }
    expect(timeouts()).toBeLessThanOrEqual(before);
    // No waiter was left to swallow the next delivery: it is counted for the next drain.
    await channel.publish(Buffer.from('x'), {}, '', 'b');
    await tick();
    await expect(conn.drainEvents({ timeout: 0 })).resolves.toBeUndefined();
    // 0 still means "do not wait": nothing more came.
    await expect(conn.drainEvents({ timeout: 0 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('ensureConnection({ timeout: Infinity }) retries without a time limit; a timeout past the timer limit does not fire at once', async () => {
    const broker = getMemoryBroker('ec-forever');
    broker.refuseConnections = true;
    for (const timeout of [MONTH, Infinity]) {
      const conn = connection('memory://ec-forever');
      const pending = conn.ensureConnection({ timeout, ...fast });
      expect(await stillPending(pending)).toBe('pending');
      broker.refuseConnections = false;
      await expect(pending).resolves.toBe(conn);
      await conn.close();
      broker.refuseConnections = true;
    }
  });

  it('ensureConnection() sleeps a backoff past the timer limit (not 1 ms)', async () => {
    const broker = getMemoryBroker('ec-long');
    broker.refuseConnections = true;
    const conn = connection('memory://ec-long');
    const pending = conn.ensureConnection({ intervalStart: MONTH, intervalStep: 0, intervalMax: MONTH });
    expect(await stillPending(pending)).toBe('pending');
    expect(conn.state).toBe('backoff');
    expect(broker.connectAttempts).toBe(1);
    const before = timeouts();
    await conn.close();
    await expect(pending).rejects.toBeInstanceOf(ConnectionClosed);
    expect(timeouts()).toBeLessThan(before);
  });

  it('ensure() sleeps a reconnect interval past the timer limit (not 1 ms), until close()', async () => {
    const month = { intervalStart: MONTH, intervalStep: 0, intervalMax: MONTH };
    const conn = connection('memory://ensure-long', { retryPolicy: month });
    await conn.connect();
    const broker = getMemoryBroker('ensure-long');
    let calls = 0;
    const op = conn.ensure(undefined, async () => {
      calls += 1;
      broker.refuseConnections = true;
      broker.dropConnections();
      throw new ConnectionError('lost');
    }, month);
    const pending = op();
    expect(await stillPending(pending)).toBe('pending');
    // One call, then the reconnect: a refused attempt, then a month's wait (not a busy loop).
    expect(calls).toBe(1);
    const attempts = broker.connectAttempts;
    expect(await stillPending(pending)).toBe('pending');
    expect(broker.connectAttempts).toBe(attempts);
    await conn.close();
    await expect(pending).rejects.toBeInstanceOf(ConnectionClosed);
  });

  it('connectTimeout: Infinity means no connect timeout; publishTimeout is checked like the other durations', async () => {
    const conn = connection('memory://ct-forever', { connectTimeout: Infinity, publishTimeout: Infinity });
    await expect(conn.connect()).resolves.toBe(conn);
    expect(conn.info().connectTimeout).toBe(Infinity);
    expect(conn.publishTimeout).toBe(Infinity);
    for (const publishTimeout of [Number.NaN, -1, '1' as unknown as number]) {
      expect(() => new Connection('memory://x', { publishTimeout })).toThrow(ConfigurationError);
      expect(() => new Connection('memory://x', { publishTimeout })).toThrow(/publishTimeout/);
    }
    expect(() => new Connection('memory://x', { connectTimeout: Number.NaN })).toThrow(ConfigurationError);
  });
});
