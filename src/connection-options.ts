/**
 * Turns `new Connection(urlOrHostname, options)` into the ordered list of brokers to try.
 *
 * kombu's rules: a URL's own parts win, the keyword options fill what the URL leaves out (for
 * every alternate broker too), `h1;h2` and `alternates` add brokers, and the transport's
 * defaults fill the rest (for AMQP the RabbitMQ URI spec's guest/guest@localhost:5672, vhost `/`).
 * The port: the URL's, else the `port` option, else the transport's default, which for AMQP
 * with `ssl` on is 5671 (py-amqp's `default_ssl_port`).
 */
import type { ActorOptions, AnyActorLogic } from 'xstate';
import { ConfigurationError, IllegalStateError } from './errors.js';
import { checkSeconds } from './seconds.js';
import { orderHosts, type FailoverStrategy, type RetryPolicy } from './retry.js';
import { canonicalName, checkScheme, defaultPortFor } from './transports/registry.js';
import { checkTlsOptions } from './transports/tls-options.js';
import type { TlsOptions, Transport } from './transports/transport.js';
import { formatUrl, parseBrokerUrl, splitHosts, type UrlParts } from './url.js';

/** Options of `new Connection()`: kombu's keyword arguments, camelCased. Durations in seconds. */
export interface ConnectionOptions {
  hostname?: string;
  userid?: string;
  password?: string;
  virtualHost?: string;
  /** Broker port, used when the URL names none. Default: the transport's (AMQP 5672; 5671 with `ssl`). */
  port?: number;
  /**
   * TLS: `true` (Node's default CAs), or options ({@link TlsOptions}) in Node's spelling
   * (`ca`, `cert`, `key` as PEM contents, `servername`, `rejectUnauthorized`...) or kombu's
   * (`ca_certs`, `certfile`, `keyfile` as file paths, read at every connect; `cert_reqs`,
   * `server_hostname`). Turns TLS on for `amqp://` too, and makes its default port 5671.
   *
   * @example
   * ```ts
   * new Connection('amqp://rabbit.internal//', { ssl: { ca_certs: '/etc/ssl/rabbit-ca.pem', cert_reqs: 'CERT_REQUIRED' } });
   * ```
   */
  ssl?: boolean | TlsOptions;
  /** Transport name (`amqp`, `redis`, `memory`...) or a Transport object. Default `amqp`. */
  transport?: string | Transport;
  /** Seconds to wait for one connection attempt (default 5, as kombu; `Infinity` or 0: no limit). */
  connectTimeout?: number;
  transportOptions?: Record<string, unknown>;
  /** SASL mechanism (AMQP): PLAIN, AMQPLAIN, EXTERNAL. */
  loginMethod?: string;
  /** Heartbeat interval in seconds; 0 (default) disables heartbeats. */
  heartbeat?: number;
  /** Order of the brokers: 'round-robin' (default), 'shuffle', or a function. */
  failoverStrategy?: FailoverStrategy;
  /** More broker URLs to fail over to. */
  alternates?: string[];
  // Beyond kombu:
  /** Reconnect by itself when a live connection is lost (default true). */
  autoReconnect?: boolean;
  /** Schedule of automatic reconnects (default kombu's: 2, 4, ... 30 s, forever). */
  retryPolicy?: Pick<RetryPolicy, 'maxRetries' | 'intervalStart' | 'intervalStep' | 'intervalMax'>;
  /** Heartbeat checks per heartbeat interval, >= 1 (default 5: a dead peer is seen within 1.2 intervals). */
  heartbeatRate?: number;
  /** A name the broker shows for this connection. */
  connectionName?: string;
  /** XState inspection observer: sees the connection, heartbeat and channel actors. */
  inspect?: ActorOptions<AnyActorLogic>['inspect'];
  /** Publishes that may wait per channel while reconnecting (default 10000); more reject with `LimitExceeded`. */
  maxBufferedMessages?: number;
  /** Seconds a publish may wait for a reconnect before rejecting with `TimeoutError` (default and `Infinity`: no limit). */
  publishTimeout?: number;
  /** @internal Brokers already resolved (by `clone()`): used as they are, URL and broker options ignored. */
  [RESOLVED_BROKERS]?: readonly BrokerParams[];
}

/** @internal The key under which `clone()` hands its resolved brokers to the new Connection. */
export const RESOLVED_BROKERS: unique symbol = Symbol('kombu-ts.resolvedBrokers');

/** One broker to try, with everything needed to connect (password included: never log it). */
export interface BrokerParams {
  transport: string;
  hostname: string;
  port: number | undefined;
  userid: string | undefined;
  password: string | undefined;
  virtualHost: string | undefined;
  ssl: boolean | TlsOptions;
  connectTimeout: number;
  heartbeat: number;
  loginMethod: string | undefined;
  transportOptions: Record<string, unknown>;
}

/** kombu's `Connection.info()`. */
export interface ConnectionInfo {
  transport: string;
  hostname: string;
  port: number | undefined;
  userid: string | undefined;
  password: string | undefined;
  virtualHost: string | undefined;
  insist: false;
  ssl: boolean | TlsOptions;
  connectTimeout: number;
  heartbeat: number;
  loginMethod: string | undefined;
  failoverStrategy: string;
  alternates: string[];
  transportOptions: Record<string, unknown>;
  uriPrefix: string | undefined;
}

const TRANSPORT_DEFAULTS: Record<string, Partial<BrokerParams>> = {
  amqp: { hostname: 'localhost', userid: 'guest', password: 'guest', virtualHost: '/' },
  amqps: { hostname: 'localhost', userid: 'guest', password: 'guest', virtualHost: '/' },
  redis: { hostname: 'localhost', virtualHost: '0' },
  rediss: { hostname: 'localhost', virtualHost: '0' },
  memory: { hostname: 'localhost' },
};

/** Options JavaScript callers (or untyped config) can get wrong: refused here, not at connect. */
function checkOptions(urlOrHostname: unknown, options: ConnectionOptions): void {
  if (urlOrHostname !== undefined && typeof urlOrHostname !== 'string') {
    throw new ConfigurationError(`The broker URL or host name must be a string, got ${typeof urlOrHostname}.`);
  }
  const { port, alternates, failoverStrategy, heartbeatRate } = options;
  // Checks run every heartbeat/rate s: 0 made a busy loop (a 1 ms timer), NaN or a negative
  // rate no check at all, and a rate below 1 checks too seldom for heartbeatCheck to judge.
  if (heartbeatRate !== undefined) checkHeartbeatRate(heartbeatRate, 'heartbeatRate');
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    throw new ConfigurationError(`port must be a whole number from 1 to 65535, got ${String(port)}.`);
  }
  if (alternates !== undefined && !(Array.isArray(alternates) && alternates.every((url) => typeof url === 'string'))) {
    throw new ConfigurationError('alternates must be an array of broker URLs.');
  }
  checkFailoverStrategy(failoverStrategy, 'failoverStrategy');
}

/**
 * Refuses a heartbeat rate (checks per heartbeat interval: the `heartbeatRate` option,
 * `heartbeatCheck(rate)`) that is not a finite number >= 1, with a ConfigurationError.
 */
export function checkHeartbeatRate(rate: unknown, name: string): void {
  if (typeof rate === 'number' && Number.isFinite(rate) && rate >= 1) return;
  throw new ConfigurationError(`${name} must be a number >= 1 (checks per heartbeat), got ${typeof rate === 'string' ? `'${rate}'` : String(rate)}.`);
}

function checkFailoverStrategy(strategy: unknown, name: string): void {
  if (strategy === undefined || typeof strategy === 'function' || strategy === 'round-robin' || strategy === 'shuffle') return;
  throw new ConfigurationError(`Unknown ${name} '${String(strategy)}': use 'round-robin', 'shuffle' or a function.`);
}

/**
 * A host given without a scheme: `host`, `host:port`, an IPv6 address (`::1`, `[::1]:5673`).
 * Anything more (user info, a path) is refused without being echoed: it may hold a password,
 * and as a host name it would be shown everywhere unmasked.
 */
function plainHost(host: string): { hostname: string; port: number | undefined } {
  if (/[\s/\\@?#]/.test(host)) {
    throw new ConfigurationError("A host name without a scheme holds no user, password or path: write a URL, 'amqp://user:password@host:5672/vhost'.");
  }
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(host);
  const colons = host.split(':').length - 1;
  const [hostname, portText] = v6 ? [v6[1] ?? '', v6[2]] : colons === 1 ? host.split(':') : [host, undefined];
  if (portText === undefined || portText === '') return { hostname: hostname ?? host, port: undefined };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new ConfigurationError(`Host '${host}': port '${portText}' is not a number from 1 to 65535.`);
  }
  return { hostname: hostname ?? host, port };
}

/** The transport name the options ask for (the name of a Transport object, or the string). */
export function transportName(options: ConnectionOptions): string | undefined {
  const t = options.transport;
  return t === undefined ? undefined : typeof t === 'string' ? t : t.name;
}

function fromParts(parts: UrlParts, options: ConnectionOptions): BrokerParams {
  const defaults = TRANSPORT_DEFAULTS[canonicalName(parts.transport)] ?? {};
  const ssl = parts.ssl ?? options.ssl ?? parts.transport.endsWith('s');
  // Fails here, not at connect, for kombu/Node spelling clashes and bad cert_reqs values.
  checkTlsOptions(ssl);
  return {
    transport: parts.transport,
    hostname: parts.hostname ?? options.hostname ?? defaults.hostname ?? 'localhost',
    // An explicit port (the URL's, then the option) always wins over the defaults.
    port: parts.port ?? options.port ?? defaultPortFor(parts.transport, ssl !== false),
    userid: parts.userid ?? options.userid ?? defaults.userid,
    password: parts.password ?? options.password ?? defaults.password,
    virtualHost: parts.virtualHost ?? options.virtualHost ?? defaults.virtualHost,
    ssl,
    connectTimeout: parts.connectTimeout ?? options.connectTimeout ?? 5,
    heartbeat: parts.heartbeat ?? options.heartbeat ?? 0,
    loginMethod: parts.loginMethod ?? options.loginMethod,
    transportOptions: { ...options.transportOptions, ...parts.transportOptions },
  };
}

/** Resolves the constructor arguments into the brokers to try, in failover order (`failoverStrategy` applied). */
export function resolveBrokers(urlOrHostname: string | undefined, options: ConnectionOptions): { brokers: BrokerParams[]; failoverStrategy: FailoverStrategy } {
  checkSeconds(options.connectTimeout, 'connectTimeout');
  checkSeconds(options.heartbeat, 'heartbeat', { finite: true });
  checkSeconds(options.publishTimeout, 'publishTimeout');
  checkOptions(urlOrHostname, options);
  const resolved = options[RESOLVED_BROKERS];
  if (resolved) {
    // A clone's brokers, in their order already; `alternates` add brokers, as for any Connection.
    const more = (options.alternates ?? []).map((url) => fromParts(parseBrokerUrl(url), options));
    return { brokers: [...resolved.map((b) => ({ ...b, transportOptions: { ...b.transportOptions } })), ...more], failoverStrategy: 'round-robin' };
  }
  const urls: string[] = [];
  const hostArg = urlOrHostname ?? options.hostname;
  const plain: UrlParts[] = [];
  if (hostArg !== undefined && hostArg.includes('://')) {
    urls.push(...splitHosts(hostArg));
  } else {
    const transport = transportName(options) ?? 'amqp';
    if (typeof options.transport === 'string' || options.transport === undefined) checkScheme(transport);
    for (const host of splitHosts(hostArg ?? 'localhost')) {
      plain.push({ transport, ...plainHost(host), userid: undefined, password: undefined, virtualHost: undefined });
    }
  }
  urls.push(...(options.alternates ?? []));
  const parsed = [...plain, ...urls.map((url) => parseBrokerUrl(url))];
  let failoverStrategy: FailoverStrategy = options.failoverStrategy ?? 'round-robin';
  const fromUrl = parsed[0]?.failoverStrategy;
  checkFailoverStrategy(fromUrl, 'failover_strategy');
  if (options.failoverStrategy === undefined && fromUrl !== undefined) failoverStrategy = fromUrl as FailoverStrategy;
  return { brokers: inFailoverOrder(parsed.map((parts) => fromParts(parts, options)), failoverStrategy), failoverStrategy };
}

/** The brokers in the order `strategy` gives their (masked) URLs. */
function inFailoverOrder(brokers: readonly BrokerParams[], strategy: FailoverStrategy): BrokerParams[] {
  const masked = brokers.map((b) => brokerUri(b));
  const ordered = orderHosts(masked, strategy)
    .map((url) => brokers[masked.indexOf(url)])
    .filter((b): b is BrokerParams => b !== undefined);
  if (ordered.length === 0) throw new IllegalStateError('failoverStrategy returned no known broker.', 'idle');
  return ordered;
}

/** The URL of a broker, password masked unless asked for. */
export function brokerUri(broker: BrokerParams, includePassword = false): string {
  return formatUrl(broker, { includePassword });
}

/** kombu's `info()` for the broker in use. */
export function brokerInfo(broker: BrokerParams, all: readonly BrokerParams[], failoverStrategy: FailoverStrategy): ConnectionInfo {
  return {
    transport: broker.transport,
    hostname: broker.hostname,
    port: broker.port,
    userid: broker.userid,
    password: broker.password,
    virtualHost: broker.virtualHost,
    insist: false,
    ssl: broker.ssl,
    connectTimeout: broker.connectTimeout,
    heartbeat: broker.heartbeat,
    loginMethod: broker.loginMethod,
    failoverStrategy: typeof failoverStrategy === 'function' ? 'custom' : failoverStrategy,
    alternates: all.map((b) => brokerUri(b)),
    transportOptions: { ...broker.transportOptions },
    uriPrefix: undefined,
  };
}

/**
 * The options of `clone(overrides)` (kombu's `clone(**kwargs)`): the original's, `overrides` on
 * top. A `hostname` override names other brokers, resolved afresh; otherwise the clone keeps
 * the brokers already resolved (see {@link cloneBrokers}), and `alternates` add brokers.
 */
export function cloneOptions(options: ConnectionOptions, brokers: readonly BrokerParams[], overrides: ConnectionOptions): ConnectionOptions {
  const { alternates: _ignored, [RESOLVED_BROKERS]: _resolved, ...rest } = options;
  if (overrides.hostname !== undefined) return { ...rest, ...overrides };
  return { ...rest, failoverStrategy: 'round-robin', ...overrides, [RESOLVED_BROKERS]: cloneBrokers(brokers, overrides) };
}

/**
 * The brokers of a clone: every setting of `brokers` (those their URLs gave too: `ssl`,
 * `heartbeat`, `connect_timeout`, `login_method`, transport options), with `overrides` on top
 * (kombu's `clone(**kwargs)`: the keywords win).
 */
export function cloneBrokers(brokers: readonly BrokerParams[], overrides: ConnectionOptions): BrokerParams[] {
  checkSeconds(overrides.connectTimeout, 'connectTimeout');
  checkSeconds(overrides.heartbeat, 'heartbeat', { finite: true });
  if (overrides.ssl !== undefined) checkTlsOptions(overrides.ssl);
  return brokers.map((b) => ({
    ...b,
    ...(overrides.userid !== undefined ? { userid: overrides.userid } : {}),
    ...(overrides.password !== undefined ? { password: overrides.password } : {}),
    ...(overrides.virtualHost !== undefined ? { virtualHost: overrides.virtualHost } : {}),
    ...(overrides.port !== undefined ? { port: overrides.port } : {}),
    ...(overrides.ssl !== undefined ? { ssl: overrides.ssl } : {}),
    ...(overrides.connectTimeout !== undefined ? { connectTimeout: overrides.connectTimeout } : {}),
    ...(overrides.heartbeat !== undefined ? { heartbeat: overrides.heartbeat } : {}),
    ...(overrides.loginMethod !== undefined ? { loginMethod: overrides.loginMethod } : {}),
    transportOptions: { ...b.transportOptions, ...overrides.transportOptions },
  }));
}
