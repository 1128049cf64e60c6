/**
 * ProducerPool corners: one deadline for the whole acquire (a producer, then a connection),
 * and what a holder meets after the pool closed under it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Connection, ConnectionPool, IllegalStateError, LimitExceeded, ProducerPool, type Producer } from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const opened: { close(): Promise<void> }[] = [];
let seq = 0;

function pools(connectionLimit: number, producerLimit: number): { conn: Connection; connections: ConnectionPool; producers: ProducerPool; name: string } {
  const name = `producer-pool-${++seq}`;
  getMemoryBroker(name);
  const conn = new Connection(`memory://${name}`);
  const connections = conn.Pool({ limit: connectionLimit });
  const producers = new ProducerPool(connections, { limit: producerLimit });
  opened.push(conn, connections, producers);
  return { conn, connections, producers, name };
}

/** Where a promise stands, without waiting for it. */
function outcome<T>(promise: Promise<T>): { value?: T; error?: unknown; settled: boolean } {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then((value) => Object.assign(state, { value, settled: true }), (error: unknown) => Object.assign(state, { error, settled: true }));
  return state;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const item of opened.splice(0).reverse()) await item.close();
  resetMemoryBrokers();
});

describe('ProducerPool.acquire({ timeout })', () => {
  it('waits for a producer and then a connection within one deadline, not one timeout each', async () => {
    const { connections, producers } = pools(1, 1);
    const held = await producers.acquire(); // the only producer, on the only connection
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const late = outcome(producers.acquire({ block: true, timeout: 10 }));
    await vi.advanceTimersByTimeAsync(6_000);
    // Someone queued for the connection first: when the producer comes back at 6 s, its
    // connection goes to them, and the acquirer now waits for a connection.
    const rival = outcome(connections.acquire({ block: true }));
    producers.release(held);
    await vi.advanceTimersByTimeAsync(0);
    expect(rival.settled).toBe(true);
    expect(late.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(4_001); // past the 10 s deadline
    expect(late.settled).toBe(true);
    expect(late.error).toBeInstanceOf(LimitExceeded);
    expect(producers.inUse).toBe(0); // the producer it got went back
    expect(connections.waiting).toBe(0);
  });

  it('a deadline already spent when the producer comes still takes a free connection', async () => {
    const { connections, producers } = pools(2, 1);
    const held = await producers.acquire();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const waiting = producers.acquire({ block: true, timeout: 1 });
    await vi.advanceTimersByTimeAsync(999);
    producers.release(held);
    const producer: Producer = await waiting;
    expect(connections.inUse).toBe(1);
    producers.release(producer);
  });
});

describe('ProducerPool.close() while producers are lent', () => {
  it('a publish already under way completes; a publish after the close is refused with IllegalStateError', async () => {
    const { conn, connections, producers } = pools(1, 1);
    const channel = await conn.channel();
    await channel.declareQueue({ name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    const producer = await producers.acquire();
    const during = producer.publish({ n: 1 }, { routingKey: 'q' });
    await producers.close();
    await expect(during).resolves.toBeUndefined();
    await expect(producer.publish({ n: 2 }, { routingKey: 'q' })).rejects.toBeInstanceOf(IllegalStateError);
    await expect(producer.publish({ n: 3 }, { routingKey: 'q', retry: true })).rejects.toBeInstanceOf(IllegalStateError);
    expect(connections.inUse).toBe(0); // its connection went back once
    await expect(producer.release()).resolves.toBeUndefined(); // the holder's finally: no error
    expect(connections.inUse).toBe(0);
    const bodies: unknown[] = [];
    for (let m = await channel.get('q', { noAck: true }); m; m = await channel.get('q', { noAck: true })) bodies.push(JSON.parse(m.message.body.toString()));
    expect(bodies).toEqual([{ n: 1 }]);
  });

  it('a holder publishing after the connection pool closed too hears a typed error, never hangs', async () => {
    const { connections, producers } = pools(1, 1);
    const producer = await producers.acquire();
    await producers.close();
    await connections.close();
    await expect(producer.publish({ n: 1 }, { routingKey: 'q' })).rejects.toBeInstanceOf(IllegalStateError);
  });
});

