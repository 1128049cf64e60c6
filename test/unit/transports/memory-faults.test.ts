import { afterEach, describe, expect, it, vi } from 'vitest';
import { AccessRefused, ConnectTimeout, ConnectionError, HeartbeatTimeout, type KombuError } from '../../../src/errors.js';
import { MemoryBroker, getMemoryBroker, memoryTransport, resetMemoryBrokers } from '../../../src/transports/memory.js';
import type { RawMessage } from '../../../src/transports/transport.js';
import { connect, flush, openChannel, params, queue, send } from './memory-helpers.js';

afterEach(() => {
  vi.useRealTimers();
  resetMemoryBrokers();
});

describe('broker registry', () => {
  it('picks the broker by hostname and creates it on first use', async () => {
    const a = await connect({ hostname: 'a' });
    const b = await connect({ hostname: 'b' });
    expect(getMemoryBroker('a').liveConnections).toBe(1);
    expect(getMemoryBroker('b').liveConnections).toBe(1);
    expect(getMemoryBroker('a')).not.toBe(getMemoryBroker('b'));
    const ca = await a.createChannel();
    await ca.declareQueue(queue('only-in-a'));
    expect(getMemoryBroker('b').queueInfo('only-in-a')).toBeUndefined();
    await b.close();
    expect(getMemoryBroker('b').liveConnections).toBe(0);
  });

  it('uses a standalone broker given as transportOptions.broker', async () => {
    const broker = new MemoryBroker('private');
    await connect({ transportOptions: { broker } });
    expect(broker.liveConnections).toBe(1);
    expect(getMemoryBroker('unit').connectAttempts).toBe(0);
    broker.reset();
    expect(broker.liveConnections).toBe(0);
  });

  it('resetMemoryBrokers closes live connections with a recoverable 320 and forgets state', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const errors: (KombuError | undefined)[] = [];
    conn.on('close', (e) => errors.push(e));
    ch.on('close', (e) => errors.push(e));
    resetMemoryBrokers();
    expect(errors).toHaveLength(2);
    expect(errors[1]).toBeInstanceOf(ConnectionError);
    expect(errors[1]).toMatchObject({ code: 320, recoverable: true });
    expect(getMemoryBroker('unit').queueInfo('q')).toBeUndefined();
  });
});

describe('fault controls', () => {
  it('refuseConnections rejects with a recoverable ECONNREFUSED and counts attempts', async () => {
    const broker = getMemoryBroker('unit');
    broker.refuseConnections = true;
    const error = await connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ code: 'ECONNREFUSED', recoverable: true });
    expect(broker.connectAttempts).toBe(1);
    broker.refuseConnections = false;
    await connect();
    expect(broker.connectAttempts).toBe(2);
    expect(broker.liveConnections).toBe(1);
  });

  it('setCredentials refuses other credentials with a non-recoverable 403, without the password', async () => {
    getMemoryBroker('unit').setCredentials({ userid: 'app', password: 's3cret' });
    const error = await connect({ userid: 'app', password: 'wrong' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AccessRefused);
    expect(error).toMatchObject({ code: 403, recoverable: false });
    expect((error as Error).message).not.toContain('wrong');
    await expect(connect({ userid: 'app', password: 's3cret' })).resolves.toBeDefined();
    getMemoryBroker('unit').setCredentials(undefined);
    await expect(connect({ userid: 'anyone' })).resolves.toBeDefined();
  });

  it('dropConnections closes connections and channels with 320 CONNECTION_FORCED', async () => {
    const broker = getMemoryBroker('unit');
    const { conn, ch } = await openChannel();
    const other = await connect();
    const events: [string, KombuError | undefined][] = [];
    conn.on('close', (e) => events.push(['conn', e]));
    ch.on('close', (e) => events.push(['ch', e]));
    other.on('close', (e) => events.push(['other', e]));
    broker.dropConnections();
    expect(events.map(([who]) => who)).toEqual(['ch', 'conn', 'other']);
    for (const [, error] of events) expect(error).toMatchObject({ name: 'ConnectionError', code: 320, recoverable: true });
    expect(broker.liveConnections).toBe(0);
    await expect(ch.get('q', { noAck: true })).rejects.toMatchObject({ name: 'ConnectionError', code: 320 });
    await conn.close();
    expect(events).toHaveLength(3);
  });

  it('stallConnections makes heartbeatCheck throw and pauses deliveries until resumed', async () => {
    const broker = getMemoryBroker('unit');
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const got: RawMessage[] = [];
    await ch.consume('q', { consumerTag: 'c', noAck: true }, (m) => got.push(m));
    expect(() => conn.heartbeatCheck(2)).not.toThrow();
    broker.stallConnections();
    expect(broker.stalled).toBe(true);
    expect(() => conn.heartbeatCheck(2)).toThrow(HeartbeatTimeout);
    await send(ch, 'held', '', 'q');
    await flush();
    expect(got).toHaveLength(0);
    broker.resumeConnections();
    expect(() => conn.heartbeatCheck(2)).not.toThrow();
    await flush();
    expect(got.map((m) => m.body.toString())).toEqual(['held']);
  });

  it('blockConnections emits blocked and holds publishes until unblocked', async () => {
    const broker = getMemoryBroker('unit');
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const events: string[] = [];
    conn.on('blocked', (reason) => events.push(`blocked:${reason}`));
    conn.on('unblocked', () => events.push('unblocked'));
    broker.blockConnections('low on memory');
    let published = false;
    const pending = send(ch, 'x', '', 'q').then(() => (published = true));
    await flush();
    expect(published).toBe(false);
    broker.unblockConnections();
    await pending;
    expect(events).toEqual(['blocked:low on memory', 'unblocked']);
    expect(broker.queueInfo('q')?.messageCount).toBe(1);
  });

  it('connectDelay waits on a timer, and abort rejects at once leaving no timer', async () => {
    vi.useFakeTimers();
    const broker = getMemoryBroker('unit');
    broker.connectDelay = 2;
    const done = memoryTransport.connect(params(), new AbortController().signal);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    await expect(done).resolves.toBeDefined();
    expect(vi.getTimerCount()).toBe(0);

    const controller = new AbortController();
    const aborted = memoryTransport.connect(params(), controller.signal);
    expect(vi.getTimerCount()).toBe(1);
    const reason = new ConnectionError('closed while connecting');
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
    expect(broker.liveConnections).toBe(1);

    const early = new AbortController();
    early.abort();
    await expect(memoryTransport.connect(params(), early.signal)).rejects.toThrow();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('connectDelay beyond connectTimeout fails with ConnectTimeout', async () => {
    vi.useFakeTimers();
    getMemoryBroker('unit').connectDelay = 10;
    const attempt = memoryTransport.connect(params({ connectTimeout: 1 }), new AbortController().signal);
    const caught = attempt.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await caught).toBeInstanceOf(ConnectTimeout);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a reset rejects pending connects and clears their timers', async () => {
    vi.useFakeTimers();
    getMemoryBroker('unit').connectDelay = 5;
    const attempt = memoryTransport.connect(params(), new AbortController().signal);
    resetMemoryBrokers();
    await expect(attempt).rejects.toMatchObject({ name: 'ConnectionError', code: 320 });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('leaves no timers behind after traffic, close and reset', async () => {
    vi.useFakeTimers();
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q', { arguments: { 'x-message-ttl': 50 } }));
    await ch.consume('q', { consumerTag: 'c', noAck: false }, (m) => ch.ack(m.deliveryInfo.deliveryTag));
    for (let i = 0; i < 1500; i++) await send(ch, String(i), '', 'q');
    await vi.runAllTimersAsync();
    await flush();
    expect(getMemoryBroker('unit').queueInfo('q')?.messageCount).toBe(0);
    await conn.close();
    resetMemoryBrokers();
    expect(vi.getTimerCount()).toBe(0);
  });
});
