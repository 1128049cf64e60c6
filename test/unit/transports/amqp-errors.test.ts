import { describe, expect, it } from 'vitest';
import {
  AccessRefused, ChannelError, ConfigurationError, ConnectionError, DriverMissingError, HeartbeatTimeout, KombuError,
} from '../../../src/errors.js';
import { type BrokerInfo, mapChannelError, mapConnectionError, mapOpenError, methodName, overtaken, refusedPublishExchange } from '../../../src/transports/amqp-errors.js';
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

  it('an untrusted broker certificate is an irrecoverable ConnectionError naming the cause and the fix', () => {
    const tlsBroker: BrokerInfo = { url: 'amqps://guest@h:5671/', userid: 'guest', vhost: '/' };
    const error = mapOpenError(withFields('self-signed certificate in certificate chain', { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), tlsBroker);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).not.toBeInstanceOf(AccessRefused);
    expect(error).toMatchObject({ code: 'SELF_SIGNED_CERT_IN_CHAIN', recoverable: false });
    expect(error.message).toBe(
      "TLS handshake with amqps://guest@h:5671/ failed (SELF_SIGNED_CERT_IN_CHAIN): self-signed certificate in certificate chain;" +
        " pass the CA that signed the broker's certificate in ssl.ca (PEM) or ssl.ca_certs (a file path)",
    );
    const misnamed = mapOpenError(withFields("Hostname/IP does not match certificate's altnames: Host: x.", {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID', reason: 'Host: x.',
    }), tlsBroker);
    expect(misnamed).toMatchObject({ recoverable: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(misnamed.message).toContain("Hostname/IP does not match certificate's altnames: Host: x.; connect by a name the certificate lists");
    for (const code of ['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'HOSTNAME_MISMATCH']) {
      expect(mapOpenError(withFields('x', { code }), tlsBroker)).toMatchObject({ code, recoverable: false });
    }
  });

  it("the broker's TLS alerts and a port without TLS are not retried; OpenSSL's reason replaces its noise", () => {
    const openssl = (code: string, reason: string) =>
      withFields(`80ECC2EEE17F0000:error:0A00045C:SSL routines:ssl3_read_bytes:${reason}:../deps/openssl/ssl/rec_layer_s3.c:1601:\n`, {
        code, reason, library: 'SSL routines',
      });
    const required = mapOpenError(openssl('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'tlsv13 alert certificate required'), broker);
    expect(required).toMatchObject({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', recoverable: false });
    expect(required.message).toBe(
      'TLS handshake with amqp://guest@h:5672/x failed (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED): tlsv13 alert certificate required;' +
        ' the broker refused our client certificate (ssl.cert, ssl.key)',
    );
    for (const code of ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION']) {
      expect(mapOpenError(openssl(code, 'alert'), broker)).toMatchObject({ code, recoverable: false });
    }
    const plainPort = mapOpenError(openssl('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'), broker);
    expect(plainPort).toMatchObject({ recoverable: false });
    expect(plainPort.message).toContain('wrong version number; the port does not speak TLS');
    expect(plainPort.message).not.toContain('ssl3_read_bytes');
    // A TLS socket reset mid-handshake is still a network failure: retried.
    expect(mapOpenError(withFields('Client network socket disconnected before secure TLS connection was established', { code: 'ECONNRESET' }), broker))
      .toMatchObject({ recoverable: true });
  });

  it('invalid options (Type/RangeErrors with a code, unreadable PEM) are not retried', () => {
    const badType = Object.assign(new TypeError('The "options.ca" property must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
    expect(mapOpenError(badType, broker)).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', recoverable: false });
    expect(mapOpenError(badType, broker).message).toBe('Invalid connection option for amqp://guest@h:5672/x: The "options.ca" property must be of type string');
    const badPort = Object.assign(new RangeError('Port should be >= 0 and < 65536'), { code: 'ERR_SOCKET_BAD_PORT' });
    expect(mapOpenError(badPort, broker)).toMatchObject({ code: 'ERR_SOCKET_BAD_PORT', recoverable: false });
    const pem = mapOpenError(withFields('error:0480006C:PEM routines::no start line', { code: 'ERR_OSSL_PEM_NO_START_LINE', reason: 'no start line' }), broker);
    expect(pem).toMatchObject({ code: 'ERR_OSSL_PEM_NO_START_LINE', recoverable: false });
    expect(pem.message).toContain('cannot read a key or certificate in ssl.ca, ssl.cert or ssl.key (ERR_OSSL_PEM_NO_START_LINE: no start line)');
  });

  it('an EXTERNAL login refusal names the client certificate, not a user id', () => {
    const external: BrokerInfo = { url: 'amqps://h:5671/', userid: 'guest', vhost: '/', loginMethod: 'EXTERNAL' };
    const refused = mapOpenError(
      new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL."'),
      external,
    );
    expect(refused).toBeInstanceOf(AccessRefused);
    expect(refused.message).toBe(
      "RabbitMQ refused the login of the client certificate's user (EXTERNAL) on amqps://h:5671/ (403 ACCESS_REFUSED):" +
        ' ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL.',
    );
    const missing = mapOpenError(new Error('SASL mechanism EXTERNAL is not provided by the server'), external);
    expect(missing).toBeInstanceOf(AccessRefused);
    expect(missing.message).toBe('SASL mechanism EXTERNAL is not provided by the server (amqps://h:5671/); choose another loginMethod');
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

describe('amqp transport options', () => {
  it('a negative closeTimeout or a fractional frameMax is a ConfigurationError before any socket opens', async () => {
    let loaded = 0;
    const transport = createAmqpTransport({
      name: 'amqp', defaultPort: 5672, tls: false,
      load: () => {
        loaded++;
        return Promise.reject(new Error('not to be reached'));
      },
    });
    const params = (transportOptions: Record<string, unknown>): ConnectParams => ({
      hostname: 'h', port: undefined, userid: undefined, password: undefined, virtualHost: undefined, ssl: false,
      connectTimeout: 1, heartbeat: 0, loginMethod: undefined, transportOptions, connectionName: 't',
    });
    for (const options of [{ closeTimeout: -1 }, { closeTimeout: 'soon' }, { frameMax: 4096.5 }, { channelMax: -2 }]) {
      const error = await transport.connect(params(options), new AbortController().signal).catch((e: unknown) => e);
      expect(error, JSON.stringify(options)).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toContain(`transportOptions.${Object.keys(options)[0]}`);
    }
    expect(loaded).toBe(0);
  });
});

describe('refusedPublishExchange', () => {
  const closed = (code: number, text: string, classId = 60, methodId = 40) =>
    mapChannelError(Object.assign(new Error(`Channel closed by server: ${code} (X) with message "${text}"`), { code, classId, methodId }), 1)!;

  it('names the exchange a refused basic.publish names; the default exchange is ""', () => {
    expect(refusedPublishExchange(closed(404, "NOT_FOUND - no exchange 'a.b' in vhost '/'"))).toBe('a.b');
    expect(refusedPublishExchange(closed(403, "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'u'"))).toBe('');
  });

  it('names none for other methods or texts', () => {
    expect(refusedPublishExchange(closed(404, "NOT_FOUND - no exchange 'a' in vhost '/'", 50, 20))).toBeUndefined();
    expect(refusedPublishExchange(closed(406, 'PRECONDITION_FAILED - invalid expiration'))).toBeUndefined();
  });
});

describe('overtaken', () => {
  const closed = (classId?: number, methodId?: number) =>
    mapChannelError(Object.assign(new Error('Channel closed by server: 404 (NOT-FOUND)'), { code: 404, classId, methodId }), 1)!;

  it('makes a call failed by the refusal of another method a recoverable ChannelError that names that refusal', () => {
    const error = overtaken(closed(60, 40), 'declare queue', 3);
    expect(error).toBeInstanceOf(ChannelError);
    expect(error?.recoverable).toBe(true);
    expect(error?.message).toMatch(/^Cannot declare queue on channel 3: the broker closed it over another call \(.*basic\.publish/);
    expect(error?.cause).toMatchObject({ code: 404, classId: 60, methodId: 40, recoverable: false });
  });

  it("leaves a call's own refusal, a refusal naming no method, and unknown operations alone", () => {
    expect(overtaken(closed(50, 10), 'declare queue', 1)).toBeUndefined();
    expect(overtaken(closed(60, 20), 'consume', 1)).toBeUndefined();
    expect(overtaken(closed(), 'declare queue', 1)).toBeUndefined();
    expect(overtaken(closed(60, 40), 'publish', 1)).toBeUndefined();
  });

  it('a call that did not get the close itself was overtaken, even by a refusal of its own method (two declares sent together)', () => {
    expect(overtaken(closed(50, 10), 'declare queue', 2, false)).toMatchObject({ recoverable: true });
    expect(overtaken(closed(), 'declare queue', 2, false)).toBeUndefined();
  });
});
