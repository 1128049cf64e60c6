import { describe, expect, it } from 'vitest';
import {
  AccessRefused, ChannelError, ConnectionError, DriverMissingError, HeartbeatTimeout, KombuError,
} from '../../../src/errors.js';
import { type BrokerInfo, mapChannelError, mapConnectionError, mapOpenError, methodName } from '../../../src/transports/amqp-errors.js';
import { createAmqpTransport } from '../../../src/transports/amqp.js';
import type { ConnectParams } from '../../../src/transports/transport.js';

const broker: BrokerInfo = { url: 'amqp://guest@h:5672/x', userid: 'guest', vhost: '/x' };
const withFields = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields);

describe('mapOpenError', () => {
  it('a login refusal is AccessRefused 403', () => {
    const error = mapOpenError(
      new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused"'),
      broker,
    );
    expect(error).toBeInstanceOf(AccessRefused);
    expect(error).toMatchObject({ code: 403, recoverable: false });
    expect(error.message).toContain("user 'guest'");
    expect(error.message).toContain('ACCESS_REFUSED - Login was refused');
  });

  it('a close in reply to connection.open is an AccessRefused naming the vhost', () => {
    const error = mapOpenError(new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'), broker);
    expect(error).toBeInstanceOf(AccessRefused);
    expect(error).toMatchObject({ classId: 10, methodId: 40, recoverable: false });
    expect(error.message).toContain("RabbitMQ refused access to vhost '/x' for user 'guest'");
  });

  it('socket errors are recoverable ConnectionErrors with the errno code', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']) {
      const error = mapOpenError(withFields(`connect ${code}`, { code }), broker);
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error).not.toBeInstanceOf(AccessRefused);
      expect(error).toMatchObject({ code, recoverable: true });
    }
  });

  it('an abrupt close during the handshake stays recoverable', () => {
    const error = mapOpenError(new Error('Socket closed abruptly during opening handshake'), broker);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.recoverable).toBe(true);
  });

  it('certificate failures are not retried', () => {
    const error = mapOpenError(withFields('self signed', { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), broker);
    expect(error).toMatchObject({ recoverable: false });
  });

  it('KombuErrors pass through', () => {
    const own = new KombuError('mine');
    expect(mapOpenError(own, broker)).toBe(own);
  });
});

describe('mapConnectionError', () => {
  it('maps broker closes by reply code', () => {
    const forced = mapConnectionError(withFields('Connection closed: 320 (CONNECTION-FORCED) with message "CONNECTION_FORCED - bye"', { code: 320 }), broker);
    expect(forced).toBeInstanceOf(ConnectionError);
    expect(forced).toMatchObject({ code: 320, recoverable: true });
    expect(forced.message).toContain('CONNECTION_FORCED - bye');
    for (const code of [501, 502, 503, 504, 505, 506, 541]) {
      expect(mapConnectionError(withFields('x', { code }), broker)).toMatchObject({ code, recoverable: true });
    }
    expect(mapConnectionError(withFields('x', { code: 403 }), broker)).toBeInstanceOf(AccessRefused);
  });

  it("amqplib's heartbeat timeout is a HeartbeatTimeout", () => {
    const error = mapConnectionError(new Error('Heartbeat timeout'), broker);
    expect(error).toBeInstanceOf(HeartbeatTimeout);
    expect(error.recoverable).toBe(true);
  });

  it('a socket end is a recoverable ConnectionError', () => {
    expect(mapConnectionError(new Error('Unexpected close'), broker)).toMatchObject({ recoverable: true });
    expect(mapConnectionError(withFields('read ECONNRESET', { code: 'ECONNRESET' }), broker)).toMatchObject({ code: 'ECONNRESET' });
  });
});

describe('mapChannelError', () => {
  it('keeps code, classId and methodId, and recoverability follows py-amqp', () => {
    const error = mapChannelError(
      withFields('Operation failed: QueueDeclare; 404 (NOT-FOUND) with message "NOT_FOUND - no queue \'q\'"', { code: 404, classId: 50, methodId: 10 }),
      3,
    );
    expect(error).toBeInstanceOf(ChannelError);
    expect(error).toMatchObject({ code: 404, classId: 50, methodId: 10, recoverable: false });
    expect(error?.message).toContain('queue.declare');
    expect(error?.message).toContain("NOT_FOUND - no queue 'q'");
    expect(mapChannelError(withFields('x', { code: 406, classId: 50, methodId: 10 }), 1)?.recoverable).toBe(false);
    expect(mapChannelError(withFields('x', { code: 405, classId: 50, methodId: 10 }), 1)?.recoverable).toBe(true);
    expect(mapChannelError(withFields('x', { code: 403, classId: 40, methodId: 10 }), 1)?.recoverable).toBe(false);
  });

  it('returns undefined for errors without a reply code', () => {
    expect(mapChannelError(new Error('Channel ended, no reply will be forthcoming'), 1)).toBeUndefined();
  });

  it('names methods', () => {
    expect(methodName(60, 40)).toBe('basic.publish');
    expect(methodName(99, 1)).toBeUndefined();
  });
});

describe('amqp transport without amqplib', () => {
  it('connect() rejects with DriverMissingError', async () => {
    const transport = createAmqpTransport({
      name: 'amqp',
      defaultPort: 5672,
      tls: false,
      load: () => Promise.reject(Object.assign(new Error("Cannot find package 'amqplib'"), { code: 'ERR_MODULE_NOT_FOUND' })),
    });
    const params: ConnectParams = {
      hostname: 'h', port: undefined, userid: undefined, password: undefined, virtualHost: undefined, ssl: false,
      connectTimeout: 1, heartbeat: 0, loginMethod: undefined, transportOptions: {}, connectionName: 't',
    };
    const error = await transport.connect(params, new AbortController().signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriverMissingError);
    expect((error as Error).message).toBe('The amqp transport needs amqplib: npm install amqplib');
  });
});
