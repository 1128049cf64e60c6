/**
 * Lifecycle corners of Connection found in review (memory://): what a caller sees when the
 * connection gives up, and calls that must settle instead of waiting forever.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, HeartbeatTimeout, type KombuError } from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const fast = { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.02 };
const open: Connection[] = [];
function connection(url: string, options: ConstructorParameters<typeof Connection>[1] = {}): Connection {
  const conn = new Connection(url, { retryPolicy: fast, ...options });
  open.push(conn);
  return conn;
}
const reached = (conn: Connection, state: string): Promise<void> =>
  new Promise((resolve) => {
    if (conn.state === state) return resolve();
    const unsubscribe = conn.subscribe((status) => status.state === state && (queueMicrotask(() => unsubscribe()), resolve()));
  });

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe('Connection review (memory://)', () => {
  it('a missed heartbeat without autoReconnect fails the waiting publishes with the HeartbeatTimeout and reports it', async () => {
    const conn = connection('memory://hb-fail', { heartbeat: 0.1, autoReconnect: false });
    const errors: KombuError[] = [];
    conn.on('error', (error) => errors.push(error));
    await conn.connect();
    const channel = conn.defaultChannel;
    await channel.whenOpen();
    const broker = getMemoryBroker('hb-fail');
    broker.blockConnections(); // the publish waits (flow control)...
    const waiting = channel.publish(Buffer.from('x'), {}, '', 'q');
    const failed = reached(conn, 'failed');
    broker.stallConnections(); // ...when the broker goes silent
    await failed;
    await expect(waiting).rejects.toBeInstanceOf(HeartbeatTimeout);
    expect(conn.lastError).toBeInstanceOf(HeartbeatTimeout);
    expect(errors.map((e) => e.name)).toEqual(['HeartbeatTimeout']);
  });
});
