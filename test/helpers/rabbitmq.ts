/**
 * Shared setup for the integration tests that talk to the real RabbitMQ (127.0.0.1:5672,
 * guest/guest).
 *
 * Another node: `KOMBU_TS_TEST_RABBITMQ_PORT=5680 RABBITMQ_NODENAME=heap@localhost` runs the
 * tests that use these helpers (the conformance suite among them) against a second node, so
 * two runs need not share a broker (`rabbitmqctl` reads RABBITMQ_NODENAME itself).
 *
 * Reachability policy: with `CI` set, an unreachable broker fails the test file (a skipped
 * suite in CI hides a broken pipeline); locally the suite is skipped with a message.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, afterEach, expect } from 'vitest';
import { KombuError } from '../../src/errors.js';
import { amqpTransport } from '../../src/transports/amqp.js';
import type { ConnectParams, TransportChannel, TransportConnection } from '../../src/transports/transport.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';

export const RABBITMQ_HOST = '127.0.0.1';
export const RABBITMQ_PORT = Number(process.env['KOMBU_TS_TEST_RABBITMQ_PORT'] ?? 5672);

/**
 * True when RabbitMQ accepts TCP connections; throws (failing the file) when it does not
 * and `CI` is set.
 *
 * @example
 * ```ts
 * const reachable = await requireRabbitmq('amqp-transport.test');
 * describe.skipIf(!reachable)('...', () => { ... });
 * ```
 */
export async function requireRabbitmq(file: string): Promise<boolean> {
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: RABBITMQ_HOST, port: RABBITMQ_PORT });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (!reachable) {
    const where = `${RABBITMQ_HOST}:${RABBITMQ_PORT}`;
    if (process.env['CI']) throw new Error(`[${file}] RabbitMQ is not reachable at ${where} and CI is set: failing, not skipping`);
    console.warn(`[${file}] RabbitMQ not reachable at ${where}: skipping (set CI to make this fail)`);
  }
  return reachable;
}

const run = promisify(execFile);

/** Runs `rabbitmqctl` with `args`. */
export const rabbitmqctl = (...args: string[]) => run('rabbitmqctl', args, { timeout: 20_000 });

/**
 * Raises a (broker-wide) memory alarm, so RabbitMQ blocks publishing connections; resolves
 * with the function that restores the broker's own watermark. Safe because test files run one
 * at a time; callers restore in a `finally`.
 */
export async function memoryAlarm(): Promise<() => Promise<void>> {
  const { stdout } = await rabbitmqctl('status');
  const read = /Memory high watermark setting: ([\d.e+-]+) of available memory/.exec(stdout)?.[1];
  if (read === undefined) throw new Error("Could not read the broker's relative memory watermark from `rabbitmqctl status`.");
  // A watermark this low is another run's alarm, not the broker's setting: restoring it would
  // leave the broker blocked for good, so RabbitMQ's default is restored instead.
  const watermark = Number(read) < 0.01 ? '0.4' : read;
  await rabbitmqctl('set_vm_memory_high_watermark', '0.0000001');
  return async () => {
    await rabbitmqctl('set_vm_memory_high_watermark', watermark);
  };
}

/** Connect parameters for the local broker, with `overrides`. */
export function params(overrides: Partial<ConnectParams> = {}): ConnectParams {
  return {
    hostname: RABBITMQ_HOST, port: RABBITMQ_PORT, userid: 'guest', password: 'guest', virtualHost: '/', ssl: false,
    connectTimeout: 5, heartbeat: 0, loginMethod: undefined, transportOptions: {},
    connectionName: `kombu-ts-test-${randomUUID()}`, ...overrides,
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const unique = (prefix: string) => `kombu-ts-test.${prefix}.${randomUUID()}`;
/** A signal that never aborts. */
export const never: AbortSignal = new AbortController().signal;

/** The first payload of `event` (eventemitter3's typed signatures do not fit a generic helper). */
export function once<T>(emitter: TransportConnection | TransportChannel, event: string): Promise<T> {
  const loose = emitter as unknown as { once(event: string, fn: (value: T) => void): unknown };
  return new Promise((resolve) => loose.once(event, resolve));
}

/** The KombuError `promise` rejects with (fails the test if it resolves or rejects otherwise). */
export async function rejection(promise: Promise<unknown>): Promise<KombuError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(KombuError);
    return error as KombuError;
  }
  throw new Error('expected a rejection');
}

/**
 * Per-file fixture: connections and proxies are closed after each test, queues and
 * exchanges deleted after the file.
 *
 * @example
 * ```ts
 * const { open, declareQueue } = amqpFixture();
 * it('...', async () => { const ch = await (await open()).createChannel(); await declareQueue(ch); });
 * ```
 */
export function amqpFixture() {
  const connections: TransportConnection[] = [];
  const proxies: FaultProxy[] = [];
  const queues: string[] = [];
  const exchanges: string[] = [];

  afterEach(async () => {
    for (const conn of connections.splice(0)) await conn.close();
    for (const p of proxies.splice(0)) await p.close();
  });

  afterAll(async () => {
    if (queues.length === 0 && exchanges.length === 0) return;
    const conn = await amqpTransport.connect(params(), never);
    for (const [names, remove] of [
      [queues, (ch: TransportChannel, name: string) => ch.deleteQueue(name)],
      [exchanges, (ch: TransportChannel, name: string) => ch.deleteExchange(name)],
    ] as const) {
      for (const name of names) {
        const ch = await conn.createChannel(); // a failed delete would close it
        await remove(ch, name).catch(() => {});
        await ch.close();
      }
    }
    await conn.close();
  });

  return {
    /** Connects to the broker (or through a proxy with `{ port }`); closed after the test. */
    async open(overrides: Partial<ConnectParams> = {}): Promise<TransportConnection> {
      const conn = await amqpTransport.connect(params(overrides), never);
      connections.push(conn);
      return conn;
    },
    /** A fault proxy in front of the broker; closed after the test. */
    async proxy(): Promise<FaultProxy> {
      const p = await startFaultProxy({ targetPort: RABBITMQ_PORT });
      proxies.push(p);
      return p;
    },
    /** Declares a uniquely named queue, deleted after the file. */
    async declareQueue(ch: TransportChannel, args: Record<string, unknown> = {}): Promise<string> {
      const name = unique('q');
      queues.push(name);
      await ch.declareQueue({ name, durable: false, exclusive: false, autoDelete: false, arguments: args, passive: false });
      return name;
    },
    /** Remembers an exchange to delete after the file. */
    trackExchange(name: string): void {
      exchanges.push(name);
    },
    /** Closes and forgets the connections opened so far in this test. */
    async closeAll(): Promise<void> {
      for (const conn of connections.splice(0)) await conn.close();
    },
  };
}
