/**
 * Connection: kombu's Connection as a thin promise facade over a connection actor
 * (machines/connection-machine.ts). The facade supplies the actor's I/O (connect, watch,
 * heartbeat, close) and turns its snapshots into typed events and a store.
 *
 * Beside it: its transport side, which the actor drives and its channels ask of
 * (connection-link.ts); the wait of `connect()` and `ensureConnection()` for the actor to settle
 * (connection-settle.ts); its status and events, derived from the actor's snapshots
 * (connection-status.ts); and kombu's attributes and factories (`hostname`, `info()`,
 * `clone()`, `conn.Producer()`, `conn.Pool()`...), members of Connection written in
 * connection-kombu.ts and installed on its prototype.
 *
 * Secrets stay here: the machine's context (what inspectors and dashboards see) holds only
 * masked URLs and error summaries; the real errors and passwords (in the link, a private
 * field) never leave this file and connection-kombu.ts except through `info()` and
 * `asUri({ includePassword: true })`, which the caller asks for.
 */
import { EventEmitter } from 'eventemitter3';
import type { Actor } from 'xstate';
import { summarizeError, type connectionMachine } from '../machines/index.js';
import { createConnectionActor } from './connection-driver.js';
import { connectionStatus, emitAll, lifecycleEvents, type ConnectionEvents, type ConnectionState, type ConnectionStatus } from './connection-status.js';
import { ConnectionLink } from './connection-link.js';
import { settle } from './connection-settle.js';
import { Channel } from './channel.js';
import { DeclarationCache, registerChannel } from './common.js';
import { installKombu, type ConnectionKombu } from './connection-kombu.js';
import { checkHeartbeatRate, resolveBrokers, type ConnectionOptions } from './connection-options.js';
import { ConnectionClosed, ConnectionError, IllegalStateError, KombuError, toKombuError } from './errors.js';
import { installObservable, Store, type Observer, type Unsubscribe } from './observable.js';
import { ensured, type EnsuredMethod, type EnsurePolicy, type MethodName } from './ensure.js';
import { DEFAULT_RETRY_SCHEDULE, safeCall, scheduleOf, type RetryPolicy } from './retry.js';

/**
 * A connection to a broker (or to the first reachable of several), healing itself.
 *
 * @example
 * ```ts
 * const conn = new Connection('amqp://guest:guest@localhost//;amqp://guest:guest@backup//', { heartbeat: 10 });
 * conn.on('failover', ({ from, to }) => console.log(`failover ${from} -> ${to}`));
 * await conn.ensureConnection({ maxRetries: 5, intervalStart: 1 });
 * const channel = await conn.channel();
 * await conn.close();
 * ```
 */
// kombu's attributes and factories are Connection's too: declared (and written) by
// ConnectionKombu, put on the prototype by installKombu in the static block below.
export interface Connection extends ConnectionKombu {}
export class Connection extends EventEmitter<ConnectionEvents> {
  readonly #options: ConnectionOptions;
  readonly #actor: Actor<typeof connectionMachine>;
  /** The status store, made when first read or subscribed to (most connections never are). */
  #store: Store<ConnectionStatus> | undefined;
  #blocked = false;
  /** The transport side: what the actor drives and the channels ask of (connection-link.ts). */
  readonly #link: ConnectionLink;
  #nextChannelId = 1;
  #defaultChannel: Channel | undefined;
  #state: ConnectionState = 'idle';
  #closed = false;
  #declaredEntities: DeclarationCache | undefined;
  /** @internal Set by a pool: `release()` gives the connection back instead of closing it. */
  releaseHook: ((connection: Connection) => Promise<void>) | undefined;

  static {
    // The only place that can read `#link` for connection-kombu.ts: an accessor, not a public
    // field (which util.inspect would print, passwords and all).
    installKombu(this, (connection) => connection.#link);
  }

  constructor(urlOrHostname?: string, options: ConnectionOptions = {}) {
    super();
    this.#options = options;
    // No closure in here may capture a local: one that did would keep every local of this
    // constructor alive in a shared context for the connection's whole life.
    const { brokers, failoverStrategy } = resolveBrokers(urlOrHostname, options);
    // Each broker negotiates its own heartbeat (`?heartbeat=` may sit on one URL of several):
    // checks paced for the shortest serve them all (a check against a longer one is cheap).
    const heartbeat = Math.min(...brokers.map((b) => (b.heartbeat > 0 ? b.heartbeat : Infinity)));
    const schedule = options.retryPolicy ? scheduleOf(options.retryPolicy) : DEFAULT_RETRY_SCHEDULE;
    this.#link = new ConnectionLink(brokers, options, failoverStrategy);
    this.#actor = createConnectionActor(
      this.#link,
      { hosts: this.#link.hosts, heartbeat: Number.isFinite(heartbeat) ? heartbeat : 0, heartbeatRate: options.heartbeatRate ?? 5, autoReconnect: options.autoReconnect ?? true, schedule },
      options.inspect,
    );
    this.#link.actor = this.#actor;
    this.#actor.subscribe((snapshot) => this.#onSnapshot(snapshot.value as ConnectionState));
    this.#actor.start();
  }

  #status(): ConnectionStatus {
    return connectionStatus(this.#state, this.#actor.getSnapshot().context, this.#link.hosts);
  }

  get #statusStore(): Store<ConnectionStatus> {
    if (this.#store) return this.#store;
    this.#store = new Store(this.#status());
    if (this.#state === 'closed') this.#store.complete();
    return this.#store;
  }

  #onSnapshot(to: ConnectionState): void {
    const context = this.#actor.getSnapshot().context;
    const from = this.#state;
    this.#state = to;
    if (this.#store) this.#store.set(connectionStatus(to, context, this.#link.hosts, this.#store.get()));
    // The connection's own work first, the application's listeners after: a listener that
    // throws must not leave waiters hanging or a close half done.
    const events: [string, unknown][] = [];
    if (this.#blocked !== context.blocked) {
      this.#blocked = context.blocked;
      if (context.blocked) events.push(['blocked', { reason: context.blockedReason ?? 'flow control' }]);
      else {
        for (const channel of this.#link.channels) channel.link.release();
        events.push(['unblocked', undefined]);
      }
    }
    if (from !== to) {
      if (to === 'connected' || from === 'connected') this.#declaredEntities?.clear();
      events.push(...lifecycleEvents(from, to, context, this.#link.hosts));
      const lastError = this.#link.lastError;
      if (to === 'failed' && lastError) {
        for (const channel of [...this.#link.channels]) channel.link.failWaiters(lastError);
        this.#link.failDeliveries(lastError);
        events.push(['error', lastError]);
      }
      if (to === 'closed') this.#onClosed();
    }
    emitAll(this, events);
  }

  #onClosed(): void {
    const closed = new ConnectionClosed(`Connection to ${this.#link.hosts[0] ?? ''} is closed.`);
    for (const channel of [...this.#link.channels]) channel.connectionEnded();
    this.#link.closeDeliveries();
    this.#link.lastError ??= closed;
    this.#store?.complete();
  }

  #assertOpen(what: string): void {
    if (this.#closed) throw new ConnectionClosed(`Cannot ${what}: the connection is closed.`);
  }

  /**
   * Connects now, trying each broker once (failing over between them). Resolves with the
   * connection; rejects with the last broker's error. Use {@link ensureConnection} to retry.
   */
  async connect(): Promise<this> {
    return this.ensureConnection({ maxRetries: this.#link.brokers.length - 1 });
  }

  /**
   * Connects, retrying per `policy` (kombu's `ensure_connection`): each failure fails over to
   * the next broker at once, and a full round failed sleeps `intervalStart`, then
   * `+ intervalStep`, ... up to `intervalMax` seconds. `maxRetries` undefined retries forever,
   * 0 never retries. Irrecoverable errors (refused credentials) reject at once.
   *
   * @example
   * ```ts
   * await conn.ensureConnection({ maxRetries: 3, intervalStart: 0.5, errback: (e, s) => console.warn(e.message, s) });
   * ```
   */
  async ensureConnection(policy: RetryPolicy = {}): Promise<this> {
    this.#assertOpen('connect');
    const schedule = scheduleOf(policy);
    if (this.#state === 'connected') return this;
    // Joining a reconnect already under way (its own schedule, maybe retrying forever): this
    // call still gives up after its own `maxRetries`, leaving that reconnect to go on.
    const joined = this.#state !== 'idle' && this.#state !== 'failed';
    let failures = 0;
    const onFailure = (): boolean => {
      failures += 1;
      if (joined && schedule.maxRetries !== undefined && failures > schedule.maxRetries) return true;
      const context = this.#actor.getSnapshot().context;
      const error = this.#link.lastError ?? new ConnectionError(context.lastError?.message ?? 'connection failed');
      const interval = this.#state === 'backoff' ? context.delay : 0;
      if (policy.errback) {
        const thrown = safeCall(() => policy.errback?.(error, interval));
        if (thrown) this.emit('error', toKombuError(thrown));
      }
      safeCall(policy.callback);
      return false;
    };
    const wait = settle(this, this.#link, this.#state, policy.timeout, onFailure, !joined);
    if (this.#state === 'idle' || this.#state === 'failed') this.#actor.send({ type: 'connect', schedule });
    return wait;
  }

  /**
   * Wraps `fn` (or `obj`'s method of that name) so that a recoverable error is retried, per
   * `policy` (kombu's `ensure`): after a connection error the connection is re-established (its
   * first attempt at once, the policy's sleeps only between failed attempts),
   * `obj.revive(defaultChannel)` is called when `obj` has `revive`, then `onRevive`; after a
   * channel error `fn` is called again at once. `errback` hears `(error, 0)` for each failed call
   * and `(error, interval)` for each failed connection attempt. `maxRetries` counts failed calls
   * (`0`: one call, no retry). A name that is no method of `obj` is a ConfigurationError.
   *
   * @example
   * ```ts
   * const publish = conn.ensure(producer, producer.publish, { maxRetries: 3 }); // or (producer, 'publish', ...)
   * await publish({ hello: 'world' }, { routingKey: 'tasks' });
   * ```
   */
  ensure<O, K extends MethodName<O>>(obj: O, method: K, policy?: EnsurePolicy): EnsuredMethod<O, K>;
  ensure<A extends unknown[], R>(obj: unknown, fn: (...args: A) => R | Promise<R>, policy?: EnsurePolicy): (...args: A) => Promise<Awaited<R>>;
  ensure<A extends unknown[], R>(obj: unknown, fn: ((...args: A) => R | Promise<R>) | string, policy: EnsurePolicy = {}): (...args: A) => Promise<Awaited<R>> {
    const host = { isClosed: () => this.#closed, heal: (p: RetryPolicy) => this.ensureConnection(p), defaultChannel: () => this.defaultChannel };
    return ensured(host, obj, fn, policy);
  }

  /** Opens a new channel (connecting first if needed). */
  async channel(): Promise<Channel> {
    this.#assertOpen('open a channel');
    if (this.#state !== 'connected') await this.connect();
    const channel = this.#createChannel();
    await channel.whenOpen();
    return channel;
  }

  /** The default channel, created (and the connection started) on first use, as kombu's. */
  get defaultChannel(): Channel {
    this.#assertOpen('use the default channel');
    if (!this.#defaultChannel || this.#defaultChannel.state === 'closed') {
      if (this.#state === 'idle' || this.#state === 'failed') this.connect().catch((error: unknown) => this.emit('error', toKombuError(error)));
      this.#defaultChannel = this.#createChannel();
    }
    return this.#defaultChannel;
  }

  #createChannel(): Channel {
    const channelId = this.#nextChannelId++;
    const channel = new Channel(channelId, this.#link);
    this.#link.addChannel(channel);
    registerChannel(channel, this);
    this.#actor.send({ type: 'channel.open', channelId });
    const actor = this.#actor.getSnapshot().children[`channel-${channelId}`];
    if (!actor) {
      this.#link.forgetChannel(channelId);
      throw new IllegalStateError(`Cannot open a channel while the connection is ${this.#state}.`, this.#state);
    }
    channel.attach(actor as Parameters<Channel['attach']>[0]);
    return channel;
  }

  /**
   * Waits for one message delivered to a consumer of this connection. Deliveries run their
   * callbacks as they arrive (Node-style); one that arrived since the last drain counts at
   * once, so `publish(); await drainEvents()` does not miss it. Rejects with `TimeoutError`
   * after `timeout` seconds.
   *
   * @example
   * ```ts
   * await consumer.consume();
   * await conn.drainEvents({ timeout: 5 });
   * ```
   */
  drainEvents(options: { timeout?: number } = {}): Promise<void> {
    this.#assertOpen('drain events');
    const failure = this.#link.failure();
    if (failure) return Promise.reject(failure);
    return this.#link.deliveries.wait(options, () => this.#closed);
  }

  /**
   * Runs one heartbeat check now (kombu's `heartbeat_check`); the connection also runs them by
   * itself while connected. A missed heartbeat starts a reconnect and rethrows. `rate` (checks
   * per heartbeat interval, default 2 as kombu) must be a number >= 1: else a ConfigurationError.
   */
  heartbeatCheck(rate = 2): void {
    checkHeartbeatRate(rate, 'rate');
    try {
      this.#link.current?.heartbeatCheck(rate);
    } catch (error) {
      const e = this.#link.scrub(error);
      this.#link.lastError = e;
      this.#actor.send({ type: 'heartbeat.missed', error: summarizeError(e) });
      throw e;
    }
  }

  /** Closes every channel and the connection; cancels any backoff and any `ensure()` retry. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#actor.getSnapshot().status !== 'active') return;
    // Calls waiting for a channel end because of this close (ConnectionClosed), not with the
    // recoverable error of a loss that came before it.
    for (const channel of [...this.#link.channels]) channel.connectionClosed();
    await new Promise<void>((resolve) => {
      this.#actor.subscribe({ complete: () => resolve(), error: () => resolve() });
      this.#actor.send({ type: 'close' });
    });
  }

  /** Gives the connection back to its pool, or closes it (kombu's `release`). */
  async release(): Promise<void> {
    if (this.releaseHook) return this.releaseHook(this);
    return this.close();
  }

  /** kombu's `with conn:`: `await using conn = ...` releases it at the block's end (see {@link release}). */
  async [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  get connected(): boolean {
    return this.#state === 'connected';
  }
  /** The connection machine's state. */
  get state(): ConnectionState {
    return this.#state;
  }
  /** The connection actor (XState), for inspection. */
  get actor(): Actor<typeof connectionMachine> {
    return this.#actor;
  }
  /** The last error met, masked. */
  get lastError(): KombuError | undefined {
    return this.#link.lastError;
  }

  /** Publishes that may wait per channel while reconnecting (option `maxBufferedMessages`). */
  get maxBufferedMessages(): number | undefined {
    return this.#options.maxBufferedMessages;
  }
  /** Seconds a publish may wait for a reconnect (option `publishTimeout`). */
  get publishTimeout(): number | undefined {
    return this.#options.publishTimeout;
  }

  /** Entities declared on this connection (kombu's `declared_entities`); cleared on disconnect and reconnect. */
  get declaredEntities(): DeclarationCache {
    return (this.#declaredEntities ??= new DeclarationCache());
  }

  /**
   * The current status (stable reference between changes: fit for `useSyncExternalStore`).
   * Bound: `const { getSnapshot, subscribe } = conn` works, and stays the same function.
   */
  get getSnapshot(): () => ConnectionStatus {
    return this.#statusStore.get;
  }

  /** Subscribes to status changes; calls `listener` at once with the current status. Bound, as `getSnapshot`. */
  get subscribe(): (listener: ((status: ConnectionStatus) => void) | Observer<ConnectionStatus>) => Unsubscribe {
    return this.#statusStore.subscribe;
  }
}

installObservable(Connection.prototype);

/** kombu's legacy name. */
export const BrokerConnection = Connection;
export type BrokerConnection = Connection;
