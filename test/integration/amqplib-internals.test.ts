/**
 * amqplib-internals.ts (handshake release, one-round-trip confirm channels) against the real
 * RabbitMQ: what amqplib keeps of its handshake is garbage once a connection is open; every
 * way a socket ends after open gives one close with a recoverable error and leaves no
 * listener behind; confirm channels opened after the first behave as amqplib's own.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, ConnectionError, MessageNacked, type KombuError } from '../../src/errors.js';
import type { AmqpConnection } from '../../src/transports/amqp-connection.js';
import { type AmqplibModule, amqpTransport, createAmqpTransport } from '../../src/transports/amqp.js';
import type { ConnectParams, TransportConnection } from '../../src/transports/transport.js';
import { collectGarbage } from '../helpers/gc.js';
import { RABBITMQ_HOST, RABBITMQ_PORT, requireRabbitmq } from '../helpers/rabbitmq.js';

const HOST = RABBITMQ_HOST;
const PORT = RABBITMQ_PORT;
const never = new AbortController().signal;

const reachable = await requireRabbitmq('amqplib-internals.test');

function params(overrides: Partial<ConnectParams> = {}): ConnectParams {
  return {
    hostname: HOST, port: PORT, userid: 'guest', password: 'guest', virtualHost: '/', ssl: false,
    connectTimeout: 5, heartbeat: 0, loginMethod: undefined, transportOptions: {},
    connectionName: `kombu-ts-test-${randomUUID()}`, ...overrides,
  };
}

type Stream = net.Socket;
const socketOf = (conn: TransportConnection): Stream => ((conn as AmqpConnection).raw.connection as unknown as { stream: Stream }).stream;

const closes = (conn: TransportConnection): KombuError[] => {
  const seen: (KombuError | undefined)[] = [];
  (conn as unknown as { on(e: string, f: (x: KombuError | undefined) => void): void }).on('close', (e) => seen.push(e));
  return seen as KombuError[];
};
const closed = (conn: TransportConnection): Promise<KombuError | undefined> =>
  new Promise((resolve) => (conn as unknown as { once(e: string, f: (x: KombuError | undefined) => void): void }).once('close', resolve));
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A relay to the broker whose client side the test can end (FIN) or reset (RST). */
async function relay(): Promise<{ port: number; client: () => net.Socket; close: () => Promise<void> }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: HOST, port: PORT });
    sockets.push(client, upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    client: () => sockets[0]!,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const opened: TransportConnection[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close().catch(() => undefined)));
});
async function open(overrides: Partial<ConnectParams> = {}): Promise<TransportConnection> {
  const conn = await amqpTransport.connect(params(overrides), never);
  opened.push(conn);
  return conn;
}

describe.skipIf(!reachable)('amqplib internals (RabbitMQ)', () => {
  it("an open connection keeps nothing of amqplib's opening handshake", async () => {
    // The SASL response is built by the credentials and lives in the handshake's scope only:
    // if it survives a collection, something still holds that scope.
    const real = (await import('amqplib')).default as unknown as AmqplibModule;
    let response: WeakRef<object> | undefined;
    const load = async (): Promise<AmqplibModule> => ({
      connect: real.connect,
      credentials: {
        ...real.credentials,
        plain(user: string, password: string) {
          const credentials = real.credentials.plain(user, password);
          return {
            ...credentials,
            response() {
              const bytes = credentials.response();
              response = new WeakRef(bytes);
              return bytes;
            },
          };
        },
      },
    });
    const transport = createAmqpTransport({ name: 'amqp', defaultPort: 5672, tls: false, load });
    const conn = await transport.connect(params(), never);
    try {
      await conn.createChannel();
      expect(response).toBeDefined();
      await collectGarbage();
      expect(response?.deref()).toBeUndefined();
    } finally {
      await conn.close();
    }
  });

  it('FIN, RST and a destroy with an error each give one recoverable close; no error is unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUncaught = (e: unknown): void => void unhandled.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      for (const how of ['fin', 'rst', 'destroy', 'error-then-end'] as const) {
        const r = await relay();
        try {
          const conn = await open({ port: r.port });
          const socket = socketOf(conn);
          expect(socket.listenerCount('end')).toBeGreaterThan(0);
          const all = closes(conn);
          const done = closed(conn);
          if (how === 'fin') {
            r.client().unpipe();
            r.client().end();
          } else if (how === 'rst') {
            r.client().resetAndDestroy();
          } else if (how === 'destroy') {
            socket.destroy(new Error('boom'));
          } else {
            socket.emit('error', new Error('first'));
            socket.emit('end');
          }
          const error = await done;
          await turns(5);
          expect(all, how).toHaveLength(1);
          expect(error, how).toBeInstanceOf(ConnectionError);
          expect(error?.recoverable, how).toBe(true);
        } finally {
          await r.close();
        }
      }
      expect(unhandled).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('a FIN during close() ends the close quietly', async () => {
    const r = await relay();
    try {
      const conn = await open({ port: r.port });
      const all = closes(conn);
      r.client().unpipe(); // the broker no longer hears us: no close-ok
      const closing = conn.close();
      r.client().end();
      await closing;
      await turns(5);
      expect(all).toEqual([undefined]);
    } finally {
      await r.close();
    }
  });

  it('channel_max reached: the next channel is refused with a ChannelError and the connection lives', async () => {
    const conn = await open({ transportOptions: { channelMax: 2 } });
    const a = await conn.createChannel(); // amqplib's createConfirmChannel (first) or the nowait path
    const b = await conn.createChannel();
    const refused = await conn.createChannel().then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(ChannelError);
    await a.close();
    const c = await conn.createChannel();
    const q = await c.declareQueue({ name: '', durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
    await c.publish(Buffer.from('x'), {}, '', q.queue, { confirm: true });
    expect(b.isOpen).toBe(true);
  });

  it('a connection closing while a channel opens rejects with a ConnectionError', async () => {
    const conn = await open();
    await conn.createChannel(); // learn the class
    const opening = conn.createChannel().then(() => undefined, (e: unknown) => e);
    const closing = conn.close();
    const error = await opening;
    await closing;
    expect(error).toBeInstanceOf(ConnectionError);
  });

  it('publishes right after open are confirmed, and reject-publish nacks arrive as MessageNacked', async () => {
    const conn = await open();
    const setup = await conn.createChannel();
    const name = `kombu-ts-test.reject-${randomUUID()}`;
    await setup.declareQueue({
      name, durable: false, exclusive: false, autoDelete: false, passive: false,
      arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' },
    });
    try {
      const ch = await conn.createChannel();
      const first = ch.publish(Buffer.from('1'), {}, '', name, { confirm: true });
      const second = ch.publish(Buffer.from('2'), {}, '', name, { confirm: true });
      await first;
      await expect(second).rejects.toBeInstanceOf(MessageNacked);
      expect(ch.isOpen).toBe(true);
    } finally {
      await setup.deleteQueue(name);
    }
  });
});
