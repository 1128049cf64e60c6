/**
 * Heartbeats as an operator configures them: fractional seconds, and `?heartbeat=` given on
 * one broker URL of several. The promise (issue 4, scaled): a stalled broker is noticed within
 * heartbeat * 1.25 of its last byte, and an idle but healthy link is never blamed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { requireRabbitmq, sleep, RABBITMQ_PORT } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-heartbeat.test');
const opened: Connection[] = [];
const proxies: FaultProxy[] = [];
const fast = { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 };

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** The socket under the live amqplib connection. */
const socketOf = (conn: Connection) => (conn.connection as { connection: { stream: NodeJS.ReadableStream } }).connection.stream;

/** Stalls `proxy` the moment the next bytes from the broker reach `conn`: the worst case, silence starts right after a byte. */
function stallAfterNextByte(conn: Connection, proxy: FaultProxy): Promise<number> {
  return new Promise((resolve) => {
    socketOf(conn).once('data', () => {
      proxy.stall();
      resolve(Date.now());
    });
  });
}

describe.skipIf(!reachable)('heartbeats on RabbitMQ', () => {
  it('heartbeat 1.5 s: no false alarm over three idle heartbeats, and a stall is noticed within 1.25 heartbeats', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    proxies.push(proxy);
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, { heartbeat: 1.5, heartbeatRate: 10, retryPolicy: fast });
    opened.push(conn);
    let lost = 0;
    conn.on('disconnected', () => (lost += 1));
    await conn.connect();
    await sleep(4500);
    expect(lost).toBe(0);
    const disconnected = new Promise<{ error: { name: string } | undefined }>((resolve) => conn.once('disconnected', resolve));
    const stalledAt = await stallAfterNextByte(conn, proxy);
    const event = await disconnected;
    expect(event.error?.name).toBe('HeartbeatTimeout');
    expect(Date.now() - stalledAt).toBeLessThanOrEqual(1875); // 1.5 s * 1.25
  });

  it('?heartbeat=2 on the second broker of "a;b": a stall there is noticed within 2.5 s', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    proxies.push(proxy);
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:1//;amqp://guest:guest@127.0.0.1:${proxy.port}//?heartbeat=2`, { retryPolicy: fast });
    opened.push(conn);
    await conn.connect();
    expect(conn.port).toBe(proxy.port);
    const disconnected = new Promise<{ error: { name: string } | undefined }>((resolve) => conn.once('disconnected', resolve));
    const stalledAt = await stallAfterNextByte(conn, proxy);
    const event = await disconnected;
    expect(event.error?.name).toBe('HeartbeatTimeout');
    expect(Date.now() - stalledAt).toBeLessThanOrEqual(2500); // the bound at heartbeat 2
  });
});
