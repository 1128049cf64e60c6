import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ChannelModel } from 'amqplib';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeartbeatTimeout, type KombuError } from '../../../src/errors.js';
import { AmqpConnection } from '../../../src/transports/amqp-connection.js';

/** A stand-in for amqplib's ChannelModel: an emitter whose `connection.stream` is a socket-like stream. */
function fakeModel(heartbeat: number) {
  const stream = new PassThrough();
  const model = Object.assign(new EventEmitter(), {
    connection: { stream, heartbeat },
    close: vi.fn(async () => {}),
  });
  // amqplib reports a destroyed socket as a connection close with the socket's error
  stream.on('error', (error) => model.emit('close', error));
  stream.on('readable', () => stream.read()); // amqplib reads in paused mode
  return { model, stream };
}

describe('AmqpConnection.heartbeatCheck', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'setImmediate', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function connection(heartbeat = 2) {
    const { model, stream } = fakeModel(heartbeat);
    const conn = new AmqpConnection(model as unknown as ChannelModel, {
      broker: { url: 'amqp://guest@h:5672/', userid: 'guest', vhost: '/' },
      closeTimeout: 1,
    });
    return { conn, stream };
  }

  it('passes while bytes keep arriving', async () => {
    const { conn, stream } = connection();
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(400);
      if (i % 4 === 0) stream.write(Buffer.from([8])); // a heartbeat frame every 1.6 s
      conn.heartbeatCheck(5);
    }
  });

  it('throws HeartbeatTimeout after more than one heartbeat of silence, once, and reports it through close', async () => {
    const { conn, stream } = connection();
    const closed = new Promise<KombuError | undefined>((resolve) => conn.once('close', resolve));
    const checks: unknown[] = [];
    for (let i = 0; i < 8; i++) {
      await vi.advanceTimersByTimeAsync(400);
      try {
        conn.heartbeatCheck(5);
        checks.push('ok');
      } catch (error) {
        checks.push(error);
      }
    }
    // 0.4 .. 2.0 s pass; 2.4 s throws; then the connection is gone and checks are no-ops
    expect(checks.slice(0, 5)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(checks[5]).toBeInstanceOf(HeartbeatTimeout);
    expect(checks.slice(6)).toEqual(['ok', 'ok']);
    expect(await closed).toBe(checks[5]);
    expect(stream.destroyed).toBe(true);
  });

  it('does not blame the broker for a blocked event loop', async () => {
    const { conn } = connection();
    await vi.advanceTimersByTimeAsync(400);
    conn.heartbeatCheck(5);
    // the loop was blocked for 3 s: the check comes late and bytes may be unread
    vi.advanceTimersByTime(3000);
    expect(() => conn.heartbeatCheck(5)).not.toThrow();
    // still silent at the next regular check: now it is the broker
    vi.advanceTimersByTime(400);
    expect(() => conn.heartbeatCheck(5)).toThrow(HeartbeatTimeout);
  });

  /** A connection whose broker agreed to `negotiated` s of heartbeat when `requested` were asked. */
  const withHeartbeat = (negotiated: number, requested: number): AmqpConnection =>
    new AmqpConnection(fakeModel(negotiated).model as unknown as ChannelModel, {
      broker: { url: 'amqp://guest@h:5672/', userid: 'guest', vhost: '/' },
      closeTimeout: 1,
      requestedHeartbeat: requested,
    });

  it('judges a heartbeat the broker lowered (20 s asked, 10 s negotiated) at 10 s, checked every 20/5 s', async () => {
    const conn = withHeartbeat(10, 20);
    const thrownAt: number[] = [];
    for (let i = 1; i <= 8; i++) {
      // the connection machine's checks: every 20 / 5 s, each timer a millisecond late as Node's are
      await vi.advanceTimersByTimeAsync(4001);
      try {
        conn.heartbeatCheck(5);
      } catch (error) {
        expect(error).toBeInstanceOf(HeartbeatTimeout);
        thrownAt.push(i * 4001);
      }
    }
    // silent for 12 s at the third check: past the negotiated 10 s
    expect(thrownAt).toEqual([12_003]);
  });

  it('judges a fractional heartbeat (1.5 s asked, 1 s negotiated) at 1.5 s', async () => {
    const conn = withHeartbeat(1, 1.5);
    const checks: string[] = [];
    for (let i = 0; i < 6; i++) {
      await vi.advanceTimersByTimeAsync(300);
      try {
        conn.heartbeatCheck(5);
        checks.push('ok');
      } catch {
        checks.push('timeout');
      }
    }
    // 0.3 .. 1.5 s pass, 1.8 s throws
    expect(checks).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'timeout']);
  });

  it('is a no-op with heartbeats off', async () => {
    const { conn } = connection(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(() => conn.heartbeatCheck(2)).not.toThrow();
  });
});
