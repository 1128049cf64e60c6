/**
 * The AMQP 0-9-1 transport (RabbitMQ), over amqplib.
 *
 * amqplib is an optional dependency: it is imported when the first connection opens, and
 * its absence is a DriverMissingError, not a crash at import time. amqplib's own reconnection
 * ("recovery") is never enabled: the connection machine owns every reconnect.
 *
 * Opening a connection: the options go to amqplib as an object, never as a URL, so user
 * names, passwords and vhosts with reserved characters pass untouched. One AbortSignal per
 * attempt is fired by both `connectTimeout` and the caller's `signal`, and it destroys the
 * half-open socket (see `withClientSocket`) instead of leaving it to finish the handshake.
 */
import type * as Amqplib from 'amqplib';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import {
  ChannelError, ConfigurationError, ConnectionClosed, ConnectionError, ConnectTimeout, DriverMissingError, KombuError,
} from '../errors.js';
import { afterSeconds, checkCount, checkSeconds } from '../seconds.js';
import { AmqpConnection } from './amqp-connection.js';
import { type BrokerInfo, mapOpenError } from './amqp-errors.js';
import { loadTlsOptions } from './tls-options.js';
import type { ConnectParams, TlsOptions, Transport } from './transport.js';

export { AmqpChannel } from './amqp-channel.js';
export { AmqpConnection } from './amqp-connection.js';

/** The parts of amqplib the transport uses. */
export type AmqplibModule = Pick<typeof Amqplib, 'connect' | 'credentials'>;

export interface AmqpTransportOptions {
  /** `amqp` or `amqps`. */
  name: string;
  defaultPort: number;
  /** The port when TLS is on and none is given (default `defaultPort`); py-amqp's is 5671. */
  defaultTlsPort?: number;
  /** Always use TLS (amqps), whatever `ssl` says. */
  tls: boolean;
  /** Loads amqplib; tests replace it. */
  load?: () => Promise<AmqplibModule>;
}

/** Seconds `close()` waits for close-ok before destroying the socket (transportOptions.closeTimeout). */
const DEFAULT_CLOSE_TIMEOUT = 5;

let amqplib: AmqplibModule | undefined;

/**
 * Imports amqplib once. Later calls return the module without a dynamic `import()`, which
 * costs a trip through the ESM loader (and its hooks, under a loader such as tsx) on every
 * reconnect: about 1-3 ms measured here, a third of a reconnect to a local broker.
 */
async function loadAmqplib(): Promise<AmqplibModule> {
  if (amqplib) return amqplib;
  const mod = (await import('amqplib')) as unknown as AmqplibModule & { default?: AmqplibModule };
  amqplib = mod.default ?? mod;
  return amqplib;
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

function hostPort(hostname: string, port: number): string {
  return `${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`;
}

function credentialsFor(amqp: AmqplibModule, loginMethod: string | undefined, userid: string, password: string) {
  switch ((loginMethod ?? 'PLAIN').toUpperCase()) {
    case 'PLAIN':
      return amqp.credentials.plain(userid, password);
    case 'AMQPLAIN':
      return amqp.credentials.amqplain(userid, password);
    case 'EXTERNAL':
      return amqp.credentials.external();
    default:
      throw new ConfigurationError(`Unsupported loginMethod '${loginMethod}': use PLAIN, AMQPLAIN or EXTERNAL`);
  }
}

function numberOption(options: Readonly<Record<string, unknown>>, key: string): number | undefined {
  const value = options[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The numeric transport options, checked before anything is opened: a wrong one is a ConfigurationError, not a quirk at close time. */
function checkTransportOptions(transportOptions: Readonly<Record<string, unknown>>): void {
  checkSeconds(transportOptions['closeTimeout'], 'transportOptions.closeTimeout');
  for (const key of ['frameMax', 'channelMax']) {
    const value = transportOptions[key];
    if (value !== undefined) checkCount(typeof value === 'number' ? value : NaN, `transportOptions.${key}`);
  }
}

/**
 * Runs `open` (which must create its TCP socket synchronously, as amqplib's connect does) and
 * returns its result with the socket it created, taken from Node's `net.client.socket`
 * diagnostics channel: the handle that lets an aborted attempt destroy its half-open socket.
 *
 * Why not `net.connect({ signal })`: Node ties a signal to a socket with `stream.finished()`
 * listeners that stay for the socket's whole life, about 2.7 KiB per connection, kept only to
 * abort a handshake that lasts milliseconds. (TLS sockets are not published on the channel;
 * amqps keeps the signal.)
 */
function withClientSocket<T>(open: () => T): [T, Socket | undefined] {
  let socket: Socket | undefined;
  const take = (message: unknown): void => {
    socket ??= (message as { socket: Socket }).socket;
  };
  subscribe('net.client.socket', take);
  try {
    return [open(), socket];
  } finally {
    unsubscribe('net.client.socket', take);
  }
}

/** `promise`, or a rejection with `signal`'s reason if it aborts first. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

async function connect(options: AmqpTransportOptions, params: ConnectParams, signal: AbortSignal): Promise<AmqpConnection> {
  checkTransportOptions(params.transportOptions);
  let amqp: AmqplibModule;
  try {
    amqp = options.load ? await options.load() : (amqplib ?? (await loadAmqplib()));
  } catch (error) {
    if (isModuleNotFound(error)) {
      throw new DriverMissingError('The amqp transport needs amqplib: npm install amqplib', { cause: error });
    }
    throw error;
  }

  const useTls = options.tls || params.ssl !== false;
  // An explicit port always wins; without one, TLS means 5671 (py-amqp's default for ssl).
  const port = params.port ?? (useTls ? options.defaultTlsPort ?? options.defaultPort : options.defaultPort);
  const userid = params.userid ?? 'guest';
  const vhost = params.virtualHost || '/';
  const scheme = useTls ? 'amqps' : 'amqp';
  // EXTERNAL logs in as whoever the client certificate names: no user id in messages then.
  const external = params.loginMethod?.toUpperCase() === 'EXTERNAL';
  const broker: BrokerInfo = {
    // Joined into one flat string: it lives as long as the connection (a template literal
    // would keep a tree of cons strings).
    url: [scheme, '://', external ? '' : `${encodeURIComponent(userid)}@`, hostPort(params.hostname, port), '/', vhost === '/' ? '' : encodeURIComponent(vhost)].join(''),
    userid,
    vhost,
    ...(params.loginMethod === undefined ? {} : { loginMethod: params.loginMethod }),
  };
  const aborted = (): KombuError =>
    signal.reason instanceof KombuError ? signal.reason : new ConnectionClosed(`The connection attempt to ${broker.url} was aborted`, { cause: signal.reason });
  if (signal.aborted) throw aborted();

  const transportOptions = params.transportOptions;
  // AMQP negotiates whole seconds: a fraction rounds down (never to 0, which means off), so
  // that the broker's heartbeats (every half interval) come well within the fraction asked
  // for, which AmqpConnection then watches. Rounding up would let a 1.5 s heartbeat go 2 s
  // unchecked, past the promised 1.25 heartbeats.
  const heartbeat = params.heartbeat > 0 ? Math.max(1, Math.floor(params.heartbeat)) : 0;
  const frameMax = numberOption(transportOptions, 'frameMax');
  const channelMax = numberOption(transportOptions, 'channelMax');
  const connectOptions: Amqplib.Options.Connect = {
    protocol: scheme,
    hostname: params.hostname,
    port,
    // amqplib percent-decodes the vhost it is given; encode '%' so it arrives as written.
    vhost: vhost.replace(/%/g, '%25'),
    heartbeat,
    ...(frameMax === undefined ? {} : { frameMax }),
    ...(channelMax === undefined ? {} : { channelMax }),
  };

  const extraProperties = transportOptions['clientProperties'];
  const socketOptions: Amqplib.SocketOptions = {
    noDelay: true,
    credentials: credentialsFor(amqp, params.loginMethod, userid, params.password ?? 'guest'),
    clientProperties: {
      ...(typeof extraProperties === 'object' && extraProperties !== null ? extraProperties : {}),
      product: 'kombu-ts',
      connection_name: params.connectionName,
    },
  };

  // One signal for the socket: the caller's abort and connectTimeout both fire it.
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(aborted());
  signal.addEventListener('abort', onAbort, { once: true });
  // 0 and Infinity: no limit; past Node's timer limit (~24.8 days) it is still that long.
  const timer = params.connectTimeout > 0 ? afterSeconds(params.connectTimeout, () => {
    controller.abort(new ConnectTimeout(`Timed out after ${params.connectTimeout} s connecting to ${broker.url}`));
  }) : undefined;

  let attempt: ReturnType<AmqplibModule['connect']> | undefined;
  try {
    // kombu's file options (ca_certs, certfile, keyfile) are read on every attempt, within
    // connectTimeout: a certificate rotated on disk is used by the next reconnect.
    const ssl = useTls && typeof params.ssl === 'object' ? params.ssl : undefined;
    const tlsOptions = ssl ? await raceAbort(loadTlsOptions(ssl, { where: broker.url, signal: controller.signal }), controller.signal) : {};
    if (useTls) {
      // tls.TLSSocket destroys itself when `signal` aborts.
      attempt = amqp.connect(connectOptions, { ...tlsOptions, ...socketOptions, signal: controller.signal } as Amqplib.SocketOptions);
    } else {
      let socket: Socket | undefined;
      [attempt, socket] = withClientSocket(() => amqp.connect(connectOptions, socketOptions));
      const destroy = (): void => void socket?.destroy();
      controller.signal.addEventListener('abort', destroy, { once: true });
      attempt.finally(() => controller.signal.removeEventListener('abort', destroy)).catch(() => {});
    }
    const model = await raceAbort(attempt, controller.signal);
    if (controller.signal.aborted) {
      await model.close().catch(() => {});
      throw controller.signal.reason;
    }
    const closeTimeout = numberOption(transportOptions, 'closeTimeout') ?? DEFAULT_CLOSE_TIMEOUT;
    return new AmqpConnection(model, { broker, closeTimeout, requestedHeartbeat: params.heartbeat });
  } catch (error) {
    // Lost the race to an abort: close whatever amqplib still manages to open.
    attempt?.then((model) => model.close().catch(() => {}), () => {});
    if (controller.signal.aborted && controller.signal.reason instanceof KombuError) throw controller.signal.reason;
    throw mapOpenError(error, broker);
  } finally {
    timer?.cancel();
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Makes an AMQP transport. `amqpTransport` and `amqpsTransport` are the two everybody uses;
 * this factory exists for custom names and for tests (a replaced `load`).
 *
 * @example
 * ```ts
 * const transport = createAmqpTransport({ name: 'amqp', defaultPort: 5672, tls: false });
 * const conn = await transport.connect(params, AbortSignal.timeout(10_000));
 * ```
 */
export function createAmqpTransport(options: AmqpTransportOptions): Transport {
  return {
    name: options.name,
    defaultPort: options.defaultPort,
    ...(options.defaultTlsPort === undefined ? {} : { defaultTlsPort: options.defaultTlsPort }),
    capabilities: {
      exchangeTypes: ['direct', 'topic', 'fanout', 'headers'],
      priorities: true,
      heartbeats: true,
      confirms: true,
    },
    connectionErrors: [ConnectionError],
    channelErrors: [ChannelError],
    // Class-level, as kombu has it; AccessRefused and ConnectionClosed are ConnectionErrors
    // too but carry `recoverable: false`, which is what `isRecoverable()` reads.
    recoverableConnectionErrors: [ConnectionError],
    connect: (params, signal) => connect(options, params, signal),
  };
}

/**
 * The `amqp://` transport: RabbitMQ (or any AMQP 0-9-1 broker) over amqplib, port 5672.
 * TLS when `ssl` is true or an options object ({@link TlsOptions}), and then port 5671 unless
 * one is given, as py-amqp does.
 *
 * @example
 * ```ts
 * const conn = await amqpTransport.connect({
 *   hostname: '127.0.0.1', port: undefined, userid: 'guest', password: 'guest', virtualHost: '/',
 *   ssl: false, connectTimeout: 5, heartbeat: 10, loginMethod: undefined, transportOptions: {},
 *   connectionName: 'billing-worker',
 * }, new AbortController().signal);
 * const channel = await conn.createChannel();
 * await channel.publish(Buffer.from('hi'), { contentType: 'text/plain' }, '', 'tasks', { confirm: true });
 * await conn.close();
 * ```
 */
export const amqpTransport: Transport = createAmqpTransport({ name: 'amqp', defaultPort: 5672, defaultTlsPort: 5671, tls: false });

/**
 * The `amqps://` transport: AMQP over TLS, port 5671. `ssl` options go to `tls.connect`:
 * Node's (ca, cert, key as PEM contents, servername, rejectUnauthorized...) as they are,
 * kombu's (ca_certs, certfile, keyfile as file paths, read at every connect; cert_reqs,
 * server_hostname) translated; see {@link TlsOptions}.
 *
 * @example
 * ```ts
 * const conn = await amqpsTransport.connect({ ...params, ssl: { ca: [caPem] } }, signal);
 * const byFiles = await amqpsTransport.connect({ ...params, ssl: { ca_certs: '/etc/ssl/rabbit-ca.pem' } }, signal);
 * ```
 */
export const amqpsTransport: Transport = createAmqpTransport({ name: 'amqps', defaultPort: 5671, tls: true });
