/**
 * Lifecycle corners of Connection (memory://): what a caller sees when the
 * connection gives up, and calls that must settle instead of waiting forever.
 */
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, ConnectionClosed, ConnectionError, HeartbeatTimeout, IllegalStateError, Producer, TimeoutError, type KombuError } from '../../src/index.js';
import type { Transport } from '../../src/transports/transport.js';
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

describe('Connection lifecycle corners (memory://)', () => {
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

  it('a failed connection (nothing reconnects it) rejects channel calls and drains at once; publish({ retry }) heals it', async () => {
    const conn = connection('memory://gave-up', { autoReconnect: false });
    await conn.connect();
    const channel = conn.defaultChannel;
    await channel.whenOpen();
    const draining = conn.drainEvents();
    const failed = reached(conn, 'failed');
    getMemoryBroker('gave-up').dropConnections();
    await failed;
    await expect(draining).rejects.toBeInstanceOf(ConnectionError);
    await expect(conn.drainEvents()).rejects.toBeInstanceOf(ConnectionError);
    await expect(channel.publish(Buffer.from('x'), {}, '', 'q')).rejects.toBeInstanceOf(ConnectionError);
    await expect(channel.declareQueue({ name: 'q', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false }))
      .rejects.toBeInstanceOf(ConnectionError);
    // kombu's retry: the recoverable error heals through ensureConnection, which reconnects.
    await new Producer(conn).publish({ n: 1 }, { routingKey: 'q', retry: true, retryPolicy: { intervalStart: 0 } });
    expect(conn.state).toBe('connected');
  });

  it('ensureConnection({ maxRetries }) and connect() made during an automatic reconnect give up after their own retries', async () => {
    const conn = connection('memory://reconnecting');
    await conn.connect();
    const broker = getMemoryBroker('reconnecting');
    broker.refuseConnections = true;
    const lost = reached(conn, 'backoff');
    broker.dropConnections();
    await lost; // the automatic reconnect (retries forever) is under way
    const reported: number[] = [];
    const ensured = conn.ensureConnection({ maxRetries: 2, errback: (_e, interval) => reported.push(interval) });
    await expect(ensured).rejects.toBeInstanceOf(ConnectionError);
    expect(reported).toHaveLength(2);
    await expect(conn.connect()).rejects.toBeInstanceOf(ConnectionError);
    expect(conn.state).not.toBe('failed'); // the automatic reconnect goes on
    broker.refuseConnections = false;
    await conn.ensureConnection();
  });

  it('an ensureConnection({ timeout }) that gives up during an automatic reconnect does not stop that reconnect', async () => {
    const conn = connection('memory://keeps-healing');
    await conn.connect();
    const broker = getMemoryBroker('keeps-healing');
    broker.refuseConnections = true;
    const lost = reached(conn, 'backoff');
    broker.dropConnections();
    await lost;
    await expect(conn.ensureConnection({ timeout: 0.05 })).rejects.toBeInstanceOf(TimeoutError);
    const healed = reached(conn, 'connected');
    broker.refuseConnections = false;
    await healed; // by itself: nobody calls connect()
  });

  it("masks the password in the cause of a transport's error too (what console.error prints)", async () => {
    const leaky: Transport = {
      name: 'leaky', defaultPort: 1, connectionErrors: [ConnectionError], channelErrors: [], recoverableConnectionErrors: [ConnectionError],
      capabilities: { exchangeTypes: ['direct'], priorities: false, heartbeats: false, confirms: false },
      connect: async (params) => {
        throw new Error(`login refused for amqp://guest:${params.password ?? ''}@broker:1/ (password '${params.password ?? ''}')`);
      },
    };
    const conn = connection('amqp://guest:s3cr3t-pw@127.0.0.1:1//', { transport: leaky });
    const error = (await conn.ensureConnection({ maxRetries: 0 }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.message).not.toContain('s3cr3t-pw');
    expect(inspect(error)).not.toContain('s3cr3t-pw');
    expect(inspect(conn.lastError)).not.toContain('s3cr3t-pw');
  });

  it("a 'recovered' listener that throws does not close the recovered channel; its error goes to 'error'", async () => {
    const conn = connection('memory://listener-bug');
    const channel = await conn.channel();
    await channel.declareQueue({ name: 'kept', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    const errors: Error[] = [];
    channel.on('recovered', () => {
      throw new Error('listener bug');
    });
    channel.on('error', (error) => errors.push(error));
    const settled = new Promise<string>((resolve) => channel.on('state', ({ from, to }) => from === 'recovering' && resolve(to)));
    getMemoryBroker('listener-bug').dropConnections();
    expect(await settled).toBe('open');
    expect(errors.map((e) => String((e.cause as Error | undefined)?.message))).toEqual(['listener bug']);
    await channel.publish(Buffer.from('x'), {}, '', 'kept');
  });

  it("a 'consumerCancelled' listener that throws does not stop the consumer's resume", async () => {
    const conn = connection('memory://cancel-listener-bug');
    const channel = await conn.channel();
    const queue = { name: 'resumed', durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false };
    await channel.declareQueue(queue);
    await channel.consume('resumed', { consumerTag: '', noAck: true }, () => undefined);
    channel.on('consumerCancelled', () => {
      throw new Error('listener bug');
    });
    const failed = new Promise<Error>((resolve) => channel.on('error', resolve));
    const broker = getMemoryBroker('cancel-listener-bug');
    await (await connection('memory://cancel-listener-bug').channel()).deleteQueue('resumed');
    expect(String((await failed).cause)).toContain('listener bug');
    // The resume declares the queue again and consumes from it.
    while (broker.queueInfo('resumed')?.consumerCount !== 1) await new Promise((r) => setTimeout(r, 5));
  });

  /** A connection whose broker went away (and refuses it now), with a publish waiting for the reconnect. */
  async function publishWaitingForReconnect(name: string) {
    const conn = connection(`memory://${name}`);
    const channel = await conn.channel();
    const broker = getMemoryBroker(name);
    broker.refuseConnections = true;
    const lost = reached(conn, 'backoff');
    broker.dropConnections();
    await lost;
    return { conn, channel, waiting: channel.publish(Buffer.from('x'), {}, '', 'q') };
  }

  it('close() rejects the publishes waiting for a reconnect with ConnectionClosed, not the earlier (recoverable) loss', async () => {
    const { conn, waiting } = await publishWaitingForReconnect('closed-while-waiting');
    await conn.close();
    const error = await waiting.catch((e: unknown) => e as KombuError);
    expect(error).toBeInstanceOf(ConnectionClosed);
    expect((error as KombuError).recoverable).toBe(false);
  });

  it('channel.close() rejects the publishes waiting for the channel as closed, not with the earlier (recoverable) loss', async () => {
    const { channel, waiting } = await publishWaitingForReconnect('channel-closed-while-waiting');
    await channel.close();
    const error = await waiting.catch((e: unknown) => e as KombuError);
    expect(error).toBeInstanceOf(IllegalStateError);
    expect((error as KombuError).recoverable).toBe(false);
  });

  it("a 'state' listener that throws does not keep the connection from failing what waits; its error goes to 'error'", async () => {
    const conn = connection('memory://listener-bug', { autoReconnect: false });
    const channel = await conn.channel();
    const errors: KombuError[] = [];
    conn.on('error', (error) => errors.push(error));
    conn.on('state', ({ to }) => {
      if (to === 'failed') throw new Error('listener bug');
    });
    const broker = getMemoryBroker('listener-bug');
    broker.blockConnections(); // the publish waits (flow control)...
    const waiting = channel.publish(Buffer.from('x'), {}, '', 'q');
    broker.dropConnections(); // ...and the connection fails for good (no autoReconnect)
    const error = await waiting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(conn.state).toBe('failed');
    expect(errors.map((e) => String(e.cause))).toContain('Error: listener bug');
  });

  it('a connect attempt cut short by ensureConnection({ timeout }) leaves the TimeoutError as lastError', async () => {
    const conn = connection('memory://slow-connect');
    getMemoryBroker('slow-connect').connectDelay = 1;
    const timedOut = await conn.ensureConnection({ timeout: 0.05 }).catch((e: unknown) => e);
    expect(timedOut).toBeInstanceOf(TimeoutError);
    await reached(conn, 'failed');
    await new Promise((resolve) => setTimeout(resolve, 10)); // the aborted attempt settles
    expect(conn.lastError).toBe(timedOut);
  });
});

