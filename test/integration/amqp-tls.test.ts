/**
 * amqps:// (and amqp:// with `ssl`) and the SASL login methods, through the public API,
 * against the real RabbitMQ. The broker has no TLS listener of its own: the helpers start two
 * on the running node with throwaway certificates and remove them afterwards, with every
 * other change they make (see test/helpers/rabbitmq-tls.ts and tls-certs.ts). What the
 * broker itself says about a connection (TLS or not, user, mechanism, peer certificate) comes
 * from `rabbitmqctl list_connections`, found by the connection's name.
 *
 * With `CI` set, an unreachable broker or a setup that cannot run fails the file.
 */
import { randomUUID } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AccessRefused, Connection, ConnectionError, Exchange, Queue } from '../../src/index.js';
import type { ConnectionOptions } from '../../src/index.js';
import { requireRabbitmq, sleep, unique, RABBITMQ_PORT } from '../helpers/rabbitmq.js';
import {
  brokerSideConnection, enableExternalAuth, probeRabbitmqTls, startTlsListeners, type TlsListeners,
} from '../helpers/rabbitmq-tls.js';
import { createTestCertificates, type TestCertificates } from '../helpers/tls-certs.js';

const FILE = 'amqp-tls.test';
const reachable = await requireRabbitmq(FILE);
const support = reachable ? await probeRabbitmqTls(FILE) : { tls: false, external: false };

/** CN of the client certificate that EXTERNAL logs in as (a broker user during those tests). */
const CLIENT = `kombu-ts-tls-${randomUUID().slice(0, 8)}`;
/** CN of a client certificate that names no broker user. */
const STRANGER = `kombu-ts-tls-nobody-${randomUUID().slice(0, 8)}`;
const PASSWORD = 'tls-test-secret';
/** Retries allowed, and fast: an error mapped as recoverable would show as a second attempt. */
const RETRYING = { maxRetries: 2, intervalStart: 0.05, intervalStep: 0, intervalMax: 0.05 };

const opened: Connection[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

function connection(url: string, options: ConnectionOptions = {}): Connection {
  const conn = new Connection(url, { connectionName: `kombu-ts-tls-test-${randomUUID()}`, ...options });
  opened.push(conn);
  return conn;
}

/** The socket under a connected Connection (amqplib's ChannelModel keeps it as `connection.stream`). */
function socketOf(conn: Connection): TLSSocket {
  const stream = (conn.connection as { connection: { stream: unknown } }).connection.stream;
  expect(stream).toBeInstanceOf(TLSSocket);
  return stream as TLSSocket;
}

/** Connects with retries allowed; the error it fails with, and the attempts made. */
async function failure(conn: Connection): Promise<{ error: Error; attempts: number[]; ms: number }> {
  const attempts: number[] = [];
  conn.on('state', ({ to, attempt }) => to === 'connecting' && attempts.push(attempt));
  const started = Date.now();
  const error = await conn.ensureConnection(RETRYING).then(() => new Error('connected'), (e: unknown) => e as Error);
  return { error, attempts, ms: Date.now() - started };
}

/** A TLS failure: one attempt, irrecoverable, Node's code, no password, the broker named. */
async function expectTlsFailure(conn: Connection, code: string, text: string): Promise<void> {
  const { error, attempts, ms } = await failure(conn);
  expect(error).toBeInstanceOf(ConnectionError);
  expect(error).not.toBeInstanceOf(AccessRefused);
  expect(error).toMatchObject({ code, recoverable: false });
  expect(error.message).toContain(text);
  expect(error.message).toContain(`127.0.0.1:${conn.port}`);
  expect(error.message).not.toContain(PASSWORD);
  expect(attempts).toEqual([1]);
  expect(conn.state).toBe('failed');
  expect(ms).toBeLessThan(2000);
}

describe.skipIf(!support.tls)('amqps:// on RabbitMQ (a TLS listener started for the test)', () => {
  let certs: TestCertificates;
  let listeners: TlsListeners;
  /** The TLS listener's URL; failures happen before the login, so they carry a password to look for. */
  const tlsUrl = (password = 'guest') => `amqps://guest:${password}@127.0.0.1:${listeners.port}//`;

  beforeAll(async () => {
    certs = await createTestCertificates({ clients: [CLIENT, STRANGER] });
    listeners = await startTlsListeners(certs);
  });
  afterAll(async () => {
    try {
      await listeners?.stop();
    } finally {
      await certs?.remove();
    }
  });

  it('connects with the test CA, publishes with confirms and consumes over TLS (Producer, Consumer, SimpleQueue)', async () => {
    const name = `kombu-ts-tls-test-${randomUUID()}`;
    const conn = connection(tlsUrl(), { ssl: { ca: [certs.caPem] }, connectionName: name });
    await conn.connect();
    expect(conn.connected).toBe(true);
    expect(conn.transport?.name).toBe('amqps');
    expect(conn.info()).toMatchObject({ transport: 'amqps', port: listeners.port, ssl: { ca: [certs.caPem] } });
    const socket = socketOf(conn);
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerCertificate().subject.CN).toBe('localhost');
    expect(await brokerSideConnection(name)).toMatchObject({
      user: 'guest', auth_mechanism: 'PLAIN', ssl: true, ssl_protocol: expect.stringMatching(/^tlsv1\.[23]$/),
    });

    const exchange = new Exchange(unique('tls-x'), { type: 'direct', durable: false, autoDelete: true });
    const queue = new Queue(unique('tls-q'), { exchange, routingKey: 'rk', durable: false, autoDelete: true });
    await conn.Producer({ exchange, serializer: 'json' }).publish({ n: 1 }, { routingKey: 'rk', declare: [queue] });
    let consumer!: ReturnType<Connection['Consumer']>;
    const body = await new Promise<unknown>((resolve) => {
      consumer = conn.Consumer([queue], { callbacks: [(b, message) => { message.ack(); resolve(b); }] });
      void consumer.consume();
    });
    expect(body).toEqual({ n: 1 });
    await consumer.cancel();

    const simple = conn.SimpleQueue(unique('tls-simple'), {
      queueOpts: { durable: false, autoDelete: true }, exchangeOpts: { durable: false, autoDelete: true },
    });
    await simple.put({ id: 7 });
    const message = await simple.get({ timeout: 5 });
    expect(message.payload).toEqual({ id: 7 });
    message.ack();
    await simple.close();
  });

  it('amqp:// with ssl options uses TLS too; servername picks the name checked against the certificate', async () => {
    const conn = connection(`amqp://guest:guest@127.0.0.1:${listeners.port}//`, { ssl: { ca: [certs.caPem], servername: 'localhost' } });
    await conn.connect();
    expect(conn.transport?.name).toBe('amqp');
    const socket = socketOf(conn);
    expect(socket.authorized).toBe(true);
    expect(socket.servername).toBe('localhost');
  });

  it('an untrusted broker certificate fails in one attempt, irrecoverable, naming the cause', async () => {
    // ssl: true trusts Node's default CAs only; the test CA is self-signed.
    await expectTlsFailure(connection(tlsUrl(PASSWORD), { ssl: true }), 'SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain');
    await expectTlsFailure(connection(tlsUrl(PASSWORD), { ssl: { ca: [certs.otherCaPem] } }), 'SELF_SIGNED_CERT_IN_CHAIN', 'ssl.ca');
  });

  it('a name the certificate does not list fails in one attempt; rejectUnauthorized: false connects anyway', async () => {
    await expectTlsFailure(
      connection(tlsUrl(PASSWORD), { ssl: { ca: [certs.caPem], servername: 'rabbit.example' } }),
      'ERR_TLS_CERT_ALTNAME_INVALID', "Host: rabbit.example. is not in the cert's altnames: IP Address:127.0.0.1, DNS:localhost",
    );
    const conn = connection(tlsUrl(), { ssl: { rejectUnauthorized: false, servername: 'rabbit.example' } });
    await conn.connect();
    expect(socketOf(conn).authorized).toBe(false);
    await conn.channel();
  });

  it('amqps:// to the plain AMQP port fails in one attempt: the port does not speak TLS', async () => {
    await expectTlsFailure(
      connection(`amqps://guest:${PASSWORD}@127.0.0.1:${RABBITMQ_PORT}//`, { ssl: { ca: [certs.caPem] } }),
      'ERR_SSL_WRONG_VERSION_NUMBER', 'the port does not speak TLS',
    );
  });

  it('a listener requiring client certificates: refused without one (once), PLAIN login with one', async () => {
    const url = (password: string) => `amqps://guest:${password}@127.0.0.1:${listeners.mtlsPort}//`;
    await expectTlsFailure(connection(url(PASSWORD), { ssl: { ca: [certs.caPem] } }), 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'client certificate');
    const client = certs.clients.get(CLIENT)!;
    const name = `kombu-ts-tls-test-${randomUUID()}`;
    await connection(url('guest'), { ssl: { ca: [certs.caPem], cert: client.cert, key: client.key }, connectionName: name }).connect();
    expect(await brokerSideConnection(name)).toMatchObject({ user: 'guest', auth_mechanism: 'PLAIN', ssl: true, peer_cert_subject: `CN=${CLIENT}` });
  });

  it("kombu's file options are read from disk: ssl_ca_certs (and ssl_certfile, ssl_keyfile) in the URL, or the ssl dict", async () => {
    const file = (p: string) => encodeURIComponent(p);
    const conn = connection(`${tlsUrl()}?ssl_ca_certs=${file(certs.caFile)}`);
    await conn.connect();
    expect(conn.info().ssl).toEqual({ ca_certs: certs.caFile });
    expect(socketOf(conn).authorized).toBe(true);

    const client = certs.clients.get(CLIENT)!;
    const mtls = `amqps://guest:guest@127.0.0.1:${listeners.mtlsPort}//`;
    for (const [url, ssl] of [
      [`${mtls}?ssl_ca_certs=${file(certs.caFile)}&ssl_certfile=${file(client.certFile)}&ssl_keyfile=${file(client.keyFile)}&ssl_cert_reqs=CERT_REQUIRED`, undefined],
      [mtls, { ca_certs: certs.caFile, certfile: client.certFile, keyfile: client.keyFile, cert_reqs: 'CERT_REQUIRED' }],
    ] as const) {
      const name = `kombu-ts-tls-test-${randomUUID()}`;
      await connection(url, { connectionName: name, ...(ssl ? { ssl } : {}) }).connect();
      expect(await brokerSideConnection(name)).toMatchObject({ user: 'guest', ssl: true, peer_cert_subject: `CN=${CLIENT}` });
    }
  });

  it('a TLS file that cannot be read fails in one attempt, irrecoverable, naming the option and the path', async () => {
    const missing = `${certs.dir}/no-such-ca.pem`;
    await expectTlsFailure(
      connection(`${tlsUrl(PASSWORD)}?ssl_ca_certs=${encodeURIComponent(missing)}`), 'ENOENT',
      `Cannot read the file given as ssl.ca_certs (ssl_ca_certs in a URL) for amqps://guest@127.0.0.1:${listeners.port}/: '${missing}': no such file (ENOENT)`,
    );
  });

  it('close() leaves no socket or timer of ours behind', async () => {
    const count = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout').length;
    const before = count();
    const conn = connection(tlsUrl(), { ssl: { ca: [certs.caPem] }, heartbeat: 5 });
    const channel = await conn.channel();
    await channel.qos(10);
    expect(count()).toBeGreaterThan(before);
    await conn.close();
    await sleep(50);
    expect(count()).toBeLessThanOrEqual(before);
  });

  describe.skipIf(!support.external)('loginMethod EXTERNAL (the client certificate names the user)', () => {
    let external: { restore(): Promise<void> } | undefined;
    beforeAll(async () => {
      external = await enableExternalAuth(CLIENT);
    });
    afterAll(async () => {
      await external?.restore();
    });

    it("logs in as the certificate's CN, with no password", async () => {
      const client = certs.clients.get(CLIENT)!;
      const name = `kombu-ts-tls-test-${randomUUID()}`;
      const conn = connection(`amqps://127.0.0.1:${listeners.mtlsPort}//`, {
        loginMethod: 'EXTERNAL', ssl: { ca: [certs.caPem], cert: client.cert, key: client.key }, connectionName: name,
      });
      const channel = await conn.channel();
      expect(await brokerSideConnection(name)).toMatchObject({ user: CLIENT, auth_mechanism: 'EXTERNAL', ssl: true, peer_cert_subject: `CN=${CLIENT}` });
      const queue = unique('tls-external');
      await channel.declareQueue({ name: queue, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
      await channel.publish(Buffer.from('as the cert'), {}, '', queue, { confirm: true });
      expect((await channel.get(queue, { noAck: true }))?.message.body.toString()).toBe('as the cert');
    });

    it('a certificate naming no broker user, or no certificate, is AccessRefused in one attempt', async () => {
      const stranger = certs.clients.get(STRANGER)!;
      for (const [port, ssl] of [
        [listeners.mtlsPort, { ca: [certs.caPem], cert: stranger.cert, key: stranger.key }],
        [listeners.port, { ca: [certs.caPem] }],
      ] as const) {
        const conn = connection(`amqps://127.0.0.1:${port}//`, { loginMethod: 'EXTERNAL', ssl });
        const { error, attempts } = await failure(conn);
        expect(error).toBeInstanceOf(AccessRefused);
        expect(error).toMatchObject({ code: 403, recoverable: false });
        expect(error.message).toContain(`RabbitMQ refused the login of the client certificate's user (EXTERNAL) on amqps://127.0.0.1:${port}/`);
        expect(attempts).toEqual([1]);
      }
    });
  });
});

describe.skipIf(!reachable)('loginMethod on the plain AMQP port', () => {
  it('AMQPLAIN logs in (option and URL query)', async () => {
    for (const [url, options] of [
      [`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`, { loginMethod: 'AMQPLAIN' }],
      [`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//?login_method=AMQPLAIN`, {}],
    ] as const) {
      const name = `kombu-ts-tls-test-${randomUUID()}`;
      const conn = connection(url, { ...options, connectionName: name });
      await conn.channel();
      expect(await brokerSideConnection(name)).toMatchObject({ user: 'guest', auth_mechanism: 'AMQPLAIN', ssl: false });
    }
  });

  it('EXTERNAL where the broker does not offer it: AccessRefused in one attempt, naming loginMethod', async () => {
    const { error, attempts, ms } = await failure(connection(`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`, { loginMethod: 'EXTERNAL' }));
    expect(error).toBeInstanceOf(AccessRefused);
    expect(error).toMatchObject({ recoverable: false });
    expect(error.message).toBe(`SASL mechanism EXTERNAL is not provided by the server (amqp://127.0.0.1:${RABBITMQ_PORT}/); choose another loginMethod`);
    expect(attempts).toEqual([1]);
    expect(ms).toBeLessThan(2000);
  });
});
