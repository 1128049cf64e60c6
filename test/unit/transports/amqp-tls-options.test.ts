/**
 * What the amqp transport hands amqplib for TLS and ports, with amqplib replaced by a fake
 * that records its arguments and refuses the connection.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError, Connection, ConnectionError, ConnectTimeout } from '../../../src/index.js';
import { type AmqplibModule, createAmqpTransport } from '../../../src/transports/amqp.js';
import type { ConnectParams, Transport } from '../../../src/transports/transport.js';

const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const PASSWORD = 'hunter2-secret';

interface Call {
  connect: Record<string, unknown>;
  socket: Record<string, unknown>;
}

function fakeAmqp(): { transport: (name: 'amqp' | 'amqps') => Transport; calls: Call[] } {
  const calls: Call[] = [];
  const amqp = {
    connect: async (connect: unknown, socket: unknown) => {
      calls.push({ connect: connect as Record<string, unknown>, socket: socket as Record<string, unknown> });
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    },
    credentials: { plain: () => ({}), amqplain: () => ({}), external: () => ({}) },
  } as unknown as AmqplibModule;
  const transport = (name: 'amqp' | 'amqps') => createAmqpTransport({
    name, defaultPort: name === 'amqp' ? 5672 : 5671, defaultTlsPort: 5671, tls: name === 'amqps', load: async () => amqp,
  });
  return { transport, calls };
}

const params = (overrides: Partial<ConnectParams>): ConnectParams => ({
  hostname: 'rabbit', port: undefined, userid: 'guest', password: PASSWORD, virtualHost: '/', ssl: false,
  connectTimeout: 1, heartbeat: 0, loginMethod: undefined, transportOptions: {}, connectionName: 't', ...overrides,
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kombu-ts-amqp-tls-'));
  await writeFile(path.join(dir, 'ca.pem'), CA);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const opened: Connection[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

describe('amqp transport: ports', () => {
  it('TLS without a port means 5671; an explicit port always wins', async () => {
    const { transport, calls } = fakeAmqp();
    const cases: [Transport, Partial<ConnectParams>, string, number][] = [
      [transport('amqp'), {}, 'amqp', 5672],
      [transport('amqp'), { ssl: true }, 'amqps', 5671],
      [transport('amqp'), { ssl: { rejectUnauthorized: false } }, 'amqps', 5671],
      [transport('amqp'), { ssl: true, port: 5672 }, 'amqps', 5672],
      [transport('amqps'), {}, 'amqps', 5671],
      [transport('amqps'), { port: 15671 }, 'amqps', 15671],
    ];
    for (const [t, overrides] of cases) await t.connect(params(overrides), new AbortController().signal).catch(() => {});
    expect(calls.map((c) => [c.connect['protocol'], c.connect['port']])).toEqual(cases.map(([, , protocol, port]) => [protocol, port]));
  });

  it('Connection: amqp:// with ssl and no port reports and uses 5671; the URL port, then the port option, win', async () => {
    const { transport, calls } = fakeAmqp();
    const cases: [string, ConstructorParameters<typeof Connection>[1], number][] = [
      ['amqp://rabbit//', {}, 5672],
      ['amqp://rabbit//', { ssl: true }, 5671],
      ['amqp://rabbit//?ssl=true', {}, 5671],
      [`amqp://rabbit//?ssl_ca_certs=${path.join(dir, 'ca.pem')}`, {}, 5671],
      ['amqp://rabbit//?ssl=false', { ssl: true }, 5672],
      ['amqp://rabbit:5672//', { ssl: true }, 5672],
      ['amqp://rabbit//', { ssl: { ca: CA }, port: 5673 }, 5673],
      ['amqp://rabbit:5674//', { ssl: true, port: 5673 }, 5674],
      ['amqps://rabbit//', {}, 5671],
      ['rabbit', { ssl: true }, 5671],
    ];
    for (const [url, options, port] of cases) {
      const conn = new Connection(url, { ...options, transport: transport('amqp') });
      opened.push(conn);
      expect(conn.port, `${url} ${JSON.stringify(options)}`).toBe(port);
      await conn.connect().catch(() => {});
    }
    expect(calls.map((c) => c.connect['port'])).toEqual(cases.map(([, , port]) => port));
  });
});

describe('amqp transport: TLS files', () => {
  it('reads ssl_ca_certs from the URL into tls.connect\'s ca (the file, not its path)', async () => {
    const { transport, calls } = fakeAmqp();
    const caFile = path.join(dir, 'ca.pem');
    const conn = new Connection(`amqps://guest:${PASSWORD}@rabbit//?ssl_ca_certs=${encodeURIComponent(caFile)}&ssl_cert_reqs=CERT_REQUIRED`, { transport: transport('amqps') });
    opened.push(conn);
    await conn.connect().catch(() => {});
    expect(calls).toHaveLength(1);
    const socket = calls[0]!.socket;
    expect(Buffer.isBuffer(socket['ca'])).toBe(true);
    expect(String(socket['ca'])).toBe(CA);
    expect(socket['rejectUnauthorized']).toBe(true);
    expect(socket).not.toHaveProperty('ca_certs');
    // info() shows the options as given.
    expect(conn.info().ssl).toEqual({ ca_certs: caFile, rejectUnauthorized: true });
  });

  it('a missing file fails the first attempt, irrecoverable, without reaching amqplib or retrying', async () => {
    const { transport, calls } = fakeAmqp();
    const missing = path.join(dir, 'nope', 'ca.pem');
    const conn = new Connection(`amqps://guest:${PASSWORD}@rabbit//`, { transport: transport('amqps'), ssl: { ca_certs: missing } });
    opened.push(conn);
    const attempts: number[] = [];
    conn.on('state', ({ to, attempt }) => to === 'connecting' && attempts.push(attempt));
    const error = await conn.ensureConnection({ maxRetries: 3, intervalStart: 0.01, intervalStep: 0, intervalMax: 0.01 })
      .then(() => new Error('connected'), (e: unknown) => e as Error);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ code: 'ENOENT', recoverable: false });
    expect(error.message).toBe(`Cannot read the file given as ssl.ca_certs (ssl_ca_certs in a URL) for amqps://guest@rabbit:5671/: '${missing}': no such file (ENOENT)`);
    expect(error.message).not.toContain(PASSWORD);
    expect(attempts).toEqual([1]);
    expect(calls).toHaveLength(0);
    expect(conn.state).toBe('failed');
  });

  it('connectTimeout bounds the reading too (a path that never delivers: a FIFO with no writer)', async () => {
    const { transport, calls } = fakeAmqp();
    const fifo = path.join(dir, 'stuck.pem');
    await new Promise<void>((resolve, reject) => execFile('mkfifo', [fifo], (e) => (e ? reject(e) : resolve())));
    try {
      const started = Date.now();
      const error = await transport('amqps').connect(params({ ssl: { ca_certs: fifo }, connectTimeout: 0.2 }), new AbortController().signal)
        .catch((e: unknown) => e as Error);
      expect(error).toBeInstanceOf(ConnectTimeout);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(calls).toHaveLength(0);
    } finally {
      await writeFile(fifo, ''); // lets the blocked read (a libuv worker) finish
    }
  });

  it('a kombu/Node spelling clash or a bad cert_reqs fails at construction', () => {
    expect(() => new Connection('amqps://rabbit//', { ssl: { ca_certs: '/ca.pem', ca: CA } })).toThrow(ConfigurationError);
    expect(() => new Connection('amqps://rabbit//', { ssl: { cert_reqs: 'CERT_MAYBE' as never } })).toThrow(/ssl.cert_reqs must be/);
    expect(() => new Connection('amqps://rabbit//?ssl_cert_reqs=maybe')).toThrow(ConfigurationError);
  });
});
