/**
 * The in-process broker behind `memory://`: one {@link MemoryBroker} per name, kept in a
 * module-level registry (never on a class), so tests can make, inspect, break and reset them.
 *
 * The broker owns its connections and its entities ({@link MemoryVhost}); it also carries the
 * fault controls lifecycle tests need, each one shaped after what a real broker or network
 * does: refusing connections (ECONNREFUSED, recoverable), refusing credentials (403, never
 * retried), dropping every connection (320 CONNECTION_FORCED, recoverable), stalling (missed
 * heartbeats, deliveries paused), blocking publishers (connection.blocked) and slow connects.
 *
 * A slow connect uses one timer that is cleared when the attempt ends in any way (done,
 * aborted, timed out, broker reset): nothing is left pending after close or reset.
 */
import { AccessRefused, ConnectTimeout, ConnectionError, type KombuError } from '../errors.js';
import type { ConnectParams, QueueDeclareOk } from './transport.js';
import { MemoryConnection, type ConnectionHost } from './memory-connection.js';
import { ReplyCode } from './memory-routing.js';
import { MemoryVhost } from './memory-vhost.js';

/** The only credentials a broker accepts, once set with {@link MemoryBroker.setCredentials}. */
export interface MemoryCredentials {
  userid: string;
  password: string;
}

export interface MemoryBrokerOptions {
  /** The broker's clock in ms (TTL, `x-expires`); `Date.now` by default. */
  now?: () => number;
}

/**
 * An in-process AMQP-like broker: exchanges, queues, bindings, consumers, and fault controls.
 *
 * @example
 * ```ts
 * const broker = getMemoryBroker();          // the one behind `memory://`
 * broker.refuseConnections = true;           // next connects fail with ECONNREFUSED
 * broker.setCredentials({ userid: 'app', password: 's3cret' });
 * broker.dropConnections();                  // every live connection emits `close` (320)
 * broker.queueInfo('tasks');                 // { queue, messageCount, consumerCount }
 * ```
 */
export class MemoryBroker implements ConnectionHost {
  readonly name: string;
  /** Exchanges, queues, bindings and the delivery pump. */
  readonly vhost: MemoryVhost;
  /** When true, `connect` rejects with a recoverable `ConnectionError` (code `ECONNREFUSED`). */
  refuseConnections = false;
  /** Seconds a connect takes before it succeeds (or times out against `connectTimeout`). */
  connectDelay = 0;
  /** Connection attempts seen, refused ones included. */
  connectAttempts = 0;
  private credentials: MemoryCredentials | undefined;
  private stalledFlag = false;
  private blockedReason: string | undefined;
  private readonly connections = new Set<MemoryConnection>();
  private readonly pendingConnects = new Set<(error: KombuError) => void>();
  private nextConnectionId = 1;

  constructor(name = 'localhost', options: MemoryBrokerOptions = {}) {
    this.name = name;
    this.vhost = new MemoryVhost(options.now ?? Date.now);
  }

  get url(): string {
    return `memory://${this.name}`;
  }

  /** Connections open right now. */
  get liveConnections(): number {
    return this.connections.size;
  }

  /** True between {@link stallConnections} and {@link resumeConnections}. */
  get stalled(): boolean {
    return this.stalledFlag;
  }

  /** Only these credentials are accepted from now on; `undefined` accepts anyone. */
  setCredentials(credentials: MemoryCredentials | undefined): void {
    this.credentials = credentials && { ...credentials };
  }

  /** Every live connection (and its channels) closes with a recoverable 320 CONNECTION_FORCED. */
  dropConnections(): void {
    this.closeAll("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'");
  }

  /** Connections stop answering: `heartbeatCheck()` throws `HeartbeatTimeout`, deliveries pause. */
  stallConnections(): void {
    this.stalledFlag = true;
    this.vhost.setPaused(true);
  }

  /** Ends a stall: deliveries resume. */
  resumeConnections(): void {
    this.stalledFlag = false;
    this.vhost.setPaused(false);
  }

  /** Flow control: connections emit `blocked` and publishes wait until {@link unblockConnections}. */
  blockConnections(reason = 'low on memory'): void {
    this.blockedReason = reason;
    for (const connection of this.connections) connection.setBlocked(reason);
  }

  unblockConnections(): void {
    this.blockedReason = undefined;
    for (const connection of [...this.connections]) connection.setBlocked(undefined);
  }

  /** Counts of a queue, or undefined when it does not exist. */
  queueInfo(name: string): QueueDeclareOk | undefined {
    return this.vhost.queueInfo(name);
  }

  /**
   * Opens a connection (what `memoryTransport.connect` calls). Rejects with `ConnectionError`
   * (ECONNREFUSED) when refusing, `AccessRefused` (403) on wrong credentials, `ConnectTimeout`
   * when `connectDelay` exceeds `params.connectTimeout`, and the abort reason when aborted.
   */
  connect(params: ConnectParams, signal: AbortSignal): Promise<MemoryConnection> {
    this.connectAttempts++;
    if (signal.aborted) return Promise.reject(this.abortError(signal));
    if (this.refuseConnections) {
      return Promise.reject(new ConnectionError(`connect ECONNREFUSED ${this.url}`, { code: 'ECONNREFUSED' }));
    }
    const delayMs = Math.max(0, this.connectDelay * 1000);
    if (delayMs === 0) return new Promise((resolve) => resolve(this.accept(params)));
    const timeoutMs = params.connectTimeout > 0 ? params.connectTimeout * 1000 : Number.POSITIVE_INFINITY;
    const timedOut = timeoutMs < delayMs;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.pendingConnects.delete(cancel);
        settle();
      };
      const cancel = (error: KombuError): void => finish(() => reject(error));
      const onAbort = (): void => finish(() => reject(this.abortError(signal)));
      timer = setTimeout(
        () =>
          finish(() => {
            if (timedOut) reject(new ConnectTimeout(`timed out after ${params.connectTimeout}s connecting to ${this.url}`, { code: 'ETIMEDOUT' }));
            else {
              try {
                resolve(this.accept(params));
              } catch (error) {
                reject(error);
              }
            }
          }),
        timedOut ? timeoutMs : delayMs,
      );
      signal.addEventListener('abort', onAbort, { once: true });
      this.pendingConnects.add(cancel);
    });
  }

  /**
   * Back to a fresh broker: live connections are dropped (320), pending connects rejected,
   * every exchange and queue forgotten, fault controls and counters cleared.
   */
  reset(): void {
    for (const cancel of [...this.pendingConnects]) cancel(new ConnectionError(`${this.url} was reset`, { code: ReplyCode.CONNECTION_FORCED }));
    this.closeAll("CONNECTION_FORCED - broker forced connection closure with reason 'reset'");
    this.vhost.reset();
    this.refuseConnections = false;
    this.connectDelay = 0;
    this.connectAttempts = 0;
    this.credentials = undefined;
    this.stalledFlag = false;
    this.blockedReason = undefined;
  }

  /** @internal A connection ended: forget it and delete its exclusive queues. */
  connectionClosed(connection: MemoryConnection): void {
    this.connections.delete(connection);
    this.vhost.ownerClosed(connection);
  }

  private accept(params: ConnectParams): MemoryConnection {
    const expected = this.credentials;
    if (expected && (params.userid !== expected.userid || params.password !== expected.password)) {
      throw new AccessRefused(
        `ACCESS_REFUSED - Login was refused using authentication mechanism ${params.loginMethod ?? 'PLAIN'} for user '${params.userid ?? ''}' on ${this.url}`,
        { code: ReplyCode.ACCESS_REFUSED },
      );
    }
    const connection = new MemoryConnection(this, this.nextConnectionId++, params.connectionName);
    this.connections.add(connection);
    const reason = this.blockedReason;
    if (reason !== undefined) queueMicrotask(() => connection.setBlocked(reason));
    return connection;
  }

  private closeAll(text: string): void {
    for (const connection of [...this.connections]) {
      connection.shutdown(new ConnectionError(text, { code: ReplyCode.CONNECTION_FORCED }));
    }
  }

  private abortError(signal: AbortSignal): Error {
    const reason: unknown = signal.reason;
    if (reason instanceof Error) return reason;
    return new ConnectionError(`connection attempt to ${this.url} was aborted`, { cause: reason });
  }
}

const brokers = new Map<string, MemoryBroker>();

/**
 * The broker named `name` (created on first use): `memory://` is 'localhost', `memory://x` is 'x'.
 *
 * @example
 * ```ts
 * const broker = getMemoryBroker('orders');
 * const conn = new Connection('memory://orders');
 * ```
 */
export function getMemoryBroker(name = 'localhost'): MemoryBroker {
  let broker = brokers.get(name);
  if (!broker) {
    broker = new MemoryBroker(name);
    brokers.set(name, broker);
  }
  return broker;
}

/**
 * Drops every named broker, closing their live connections (each emits `close` with a 320
 * `ConnectionError`) and rejecting pending connects. For test teardown.
 *
 * @example
 * ```ts
 * afterEach(() => resetMemoryBrokers());
 * ```
 */
export function resetMemoryBrokers(): void {
  const all = [...brokers.values()];
  brokers.clear();
  for (const broker of all) broker.reset();
}
