/**
 * The amqp transport under faults, against the real RabbitMQ: stalls, cuts and refusals
 * through the fault proxy, forced closes and memory alarms through rabbitmqctl, connect
 * timeouts and aborts, and write backpressure.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  AccessRefused, ConnectionClosed, ConnectionError, ConnectTimeout, HeartbeatTimeout, type KombuError,
} from '../../src/errors.js';
import { amqpTransport } from '../../src/transports/amqp.js';
import {
  RABBITMQ_HOST as HOST, amqpFixture, memoryAlarm, never, once, params, rabbitmqctl, rejection, requireRabbitmq, sleep,
} from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-transport-faults.test');

describe.skipIf(!reachable)('amqp transport under faults (RabbitMQ)', () => {
  const { open, proxy, declareQueue } = amqpFixture();

  it("rabbitmqctl close_all_connections -> close event with a recoverable ConnectionError 320", async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const closed = once<KombuError | undefined>(conn, 'close');
    const channelClosed = once<KombuError | undefined>(ch, 'close');
    let closeEvents = 0;
    conn.on('close', () => closeEvents++);
    await rabbitmqctl('close_all_connections', 'test');
    const error = await closed;
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ code: 320, recoverable: true });
    const channelError = await channelClosed;
    expect(channelError).toBeInstanceOf(ConnectionError);
    expect(channelError?.code).toBe(320);
    await expect(conn.createChannel()).rejects.toBeInstanceOf(ConnectionError);
    await sleep(50);
    expect(closeEvents).toBe(1);
  });

  it('a stalled broker (heartbeat 2, checks every 0.4 s) -> HeartbeatTimeout within 2.5 s', async () => {
    const p = await proxy();
    const conn = await open({ port: p.port, heartbeat: 2 });
    const ch = await conn.createChannel();
    const closed = once<KombuError | undefined>(conn, 'close');
    // The connection machine's view: a check every heartbeat/rate = 0.4 s, on a timer.
    let detected: unknown;
    let detectedAt = 0;
    const checker = setInterval(() => {
      try {
        conn.heartbeatCheck(5);
      } catch (error) {
        detected ??= error;
        detectedAt ||= performance.now();
      }
    }, 400);
    try {
      // alive: 3 s of checks (idle, then some traffic) never blame the broker
      await sleep(2000);
      for (let i = 0; i < 5; i++) {
        await ch.qos(1);
        await sleep(200);
      }
      expect(detected).toBeUndefined();
      // worst case: stall just after bytes arrived (the reply to this qos)
      await ch.qos(1);
      p.stall();
      const stalledAt = performance.now();
      while (detected === undefined && performance.now() - stalledAt < 6000) await sleep(20);
      const elapsed = detectedAt - stalledAt;
      console.info(`[amqp-transport-faults.test] stall detected after ${elapsed.toFixed(0)} ms`);
      expect(detected).toBeInstanceOf(HeartbeatTimeout);
      expect(elapsed).toBeLessThan(2500);
      expect((detected as HeartbeatTimeout).recoverable).toBe(true);
      expect(await closed).toBe(detected);
      expect(() => conn.heartbeatCheck(5)).not.toThrow(); // reported once; the connection is gone
    } finally {
      clearInterval(checker);
    }
  });

  it('a refused port -> recoverable ConnectionError', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const error = await rejection(amqpTransport.connect(params({ port }), never));
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ code: 'ECONNREFUSED', recoverable: true });
  });

  it('a connection reset during the handshake -> recoverable ConnectionError', async () => {
    const p = await proxy();
    p.refuse();
    const error = await rejection(amqpTransport.connect(params({ port: p.port }), never));
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.recoverable).toBe(true);
    expect(error).not.toBeInstanceOf(AccessRefused);
  });

  it('a cut link -> close event with a recoverable ConnectionError', async () => {
    const p = await proxy();
    const conn = await open({ port: p.port });
    const ch = await conn.createChannel();
    const closed = once<KombuError | undefined>(conn, 'close');
    const pending = ch.get('whatever-queue', { noAck: true });
    p.cut();
    const error = await closed;
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error?.recoverable).toBe(true);
    const rejected = await rejection(pending);
    expect(rejected).toBeInstanceOf(ConnectionError);
  });

  it('connectTimeout against a silent broker -> ConnectTimeout, and the socket is closed', async () => {
    const p = await proxy();
    p.stall();
    const started = Date.now();
    const error = await rejection(amqpTransport.connect(params({ port: p.port, connectTimeout: 0.5 }), never));
    expect(error).toBeInstanceOf(ConnectTimeout);
    expect(error.recoverable).toBe(true);
    expect(Date.now() - started).toBeLessThan(1500);
    // a stalled proxy reads nothing, not even the FIN: once resumed it sees the client gone
    p.resume();
    await sleep(100);
    expect(p.connectionCount).toBe(0);
  });

  it('abort during connect -> rejects at once and closes the half-open socket', async () => {
    const p = await proxy();
    p.stall();
    const controller = new AbortController();
    const attempt = amqpTransport.connect(params({ port: p.port }), controller.signal);
    await sleep(100);
    expect(p.connectionCount).toBe(1);
    controller.abort();
    const error = await rejection(attempt);
    expect(error).toBeInstanceOf(ConnectionClosed);
    // a stalled proxy reads nothing, not even the FIN: once resumed it sees the client gone
    p.resume();
    await sleep(100);
    expect(p.connectionCount).toBe(0);
  });

  it('publishers wait for drain when the write buffer is full (backpressure)', async () => {
    const p = await proxy();
    const conn = await open({ port: p.port });
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    p.stall();
    // 20 MB: more than loopback's socket buffers absorb (~8 MB here), so the channel's own
    // write buffer fills and publishes must wait for its drain.
    const total = 5000;
    let done = 0;
    const body = Buffer.alloc(4096, 'x');
    const publisher = (async () => {
      for (let i = 0; i < total; i++) {
        await ch.publish(body, {}, '', queue, { confirm: false });
        done++;
      }
    })();
    await sleep(500);
    const held = done;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(total);
    await sleep(300);
    expect(done).toBe(held); // held at the drain, not buffering the rest
    p.resume();
    await publisher;
    expect(done).toBe(total);
    await ch.publish(Buffer.from('last'), {}, '', queue, { confirm: true });
    expect(await ch.purgeQueue(queue)).toBe(total + 1);
  });

  it('forwards connection.blocked and connection.unblocked (memory alarm)', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    const blocked = once<string>(conn, 'blocked');
    const unblocked = once<void>(conn, 'unblocked');
    const restore = await memoryAlarm();
    try {
      await ch.publish(Buffer.from('x'), {}, '', queue, { confirm: false });
      expect(typeof (await blocked)).toBe('string');
    } finally {
      await restore();
    }
    await unblocked;
  });
});
