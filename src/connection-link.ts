/**
 * The I/O side of one Connection: what its connection actor drives (the transport connection:
 * connect, watch, heartbeat check, close) and what its channels ask of it (the live transport,
 * deliveries for `drainEvents`, flow control); with the brokers it connects to, in failover
 * order, and their masked URLs (`hosts`), which the actor's context, status and events name.
 *
 * Why a class of its own: the actor's implementations are shared by every connection
 * (connection-driver.ts) and find their connection's driver through the actor system; the
 * channels share one host. Given as closures, these were eleven functions per connection and
 * four more per channel, about 60 bytes each with their contexts; as one object with
 * prototype methods they cost one object per connection. It also keeps connection.ts to the
 * public facade.
 *
 * Secrets: `scrub` masks every password of this connection's brokers out of an error before it
 * reaches a machine, an event or a log.
 */
import type { Actor } from 'xstate';
import { summarizeError, type connectionMachine } from '../machines/index.js';
import type { Channel } from './channel.js';
import type { ChannelHost } from './channel-types.js';
import type { ConnectionDriver, TransportReport } from './connection-driver.js';
import { brokerUri, type BrokerParams, type ConnectionOptions } from './connection-options.js';
import { DeliverySignal } from './delivery-signal.js';
import { ConnectionClosed, ConnectionError, IllegalStateError, KombuError, toKombuError } from './errors.js';
import type { FailoverStrategy } from './retry.js';
import { resolveTransport } from './transports/registry.js';
import type { Transport, TransportConnection } from './transports/transport.js';
import { maskUrl } from './url.js';


const noop = (): void => undefined;

/** The name the broker shows for a connection that was given none. */
const defaultConnectionName = `kombu-ts pid ${process.pid}`;

/**
 * @example
 * ```ts
 * const link = new ConnectionLink(brokers, options, failoverStrategy);
 * link.actor = createConnectionActor(link, input);   // the actor drives the link
 * new Channel(1, link);                              // channels ask it for the transport
 * ```
 */
export class ConnectionLink implements ConnectionDriver, ChannelHost {
  /** The connection actor this link serves; set once, right after it is created. */
  actor!: Actor<typeof connectionMachine>;
  /** The live transport connection, while connected. */
  current: TransportConnection | undefined;
  /** The transport, once loaded (drivers load lazily, on the first connect). */
  transport: Transport | undefined;
  /** The last error met, masked. */
  lastError: KombuError | undefined;
  /** Open channels, in order of opening (few: an array, made by the first, not a Map). */
  #channels: Channel[] | undefined;
  /** Deliveries, for `drainEvents`; made on the first delivery or drain. */
  #deliveries: DeliverySignal | undefined;
  /** The transport connection {@link watch} listens to. */
  #watched: TransportConnection | undefined;
  /** Every broker's URL, password masked, in failover order: what status, events and errors name. */
  readonly hosts: readonly string[];

  // Private, read through getters: the link is the context of its listeners on the transport
  // objects, so inspecting one of those prints the link's fields, and these hold passwords.
  readonly #brokers: readonly BrokerParams[];
  readonly #options: ConnectionOptions;

  constructor(
    brokers: readonly BrokerParams[],
    options: ConnectionOptions,
    /** The order the brokers were put in (what `info()` reports). */
    readonly failoverStrategy: FailoverStrategy,
  ) {
    this.#brokers = brokers;
    this.#options = options;
    this.hosts = brokers.map((b) => brokerUri(b));
  }

  /** The brokers, in failover order (passwords included). */
  get brokers(): readonly BrokerParams[] {
    return this.#brokers;
  }

  /** The Connection's options (a password among them, perhaps). */
  get options(): ConnectionOptions {
    return this.#options;
  }

  /** The broker in use, or being tried (the first before any attempt). */
  get broker(): BrokerParams {
    return this.brokers[this.actor.getSnapshot().context.hostIndex] ?? (this.brokers[0] as BrokerParams);
  }

  get deliveries(): DeliverySignal {
    return (this.#deliveries ??= new DeliverySignal());
  }

  /** Masks any password of ours out of an error, and out of its causes (which inspection and logs print). */
  scrub(error: unknown): KombuError {
    const e = toKombuError(error, ConnectionError);
    const seen = new Set<unknown>();
    for (let at: unknown = e; at instanceof Error && !seen.has(at) && seen.size < 8; at = at.cause) {
      seen.add(at);
      for (const key of ['message', 'stack'] as const) {
        const text = at[key];
        if (typeof text !== 'string') continue;
        const masked = this.#mask(text);
        if (masked !== text) Object.defineProperty(at, key, { value: masked, configurable: true, writable: true });
      }
    }
    return e;
  }

  #mask(text: string): string {
    let masked = maskUrl(text);
    for (const broker of this.brokers) {
      if (broker.password && broker.password.length >= 3) masked = masked.split(broker.password).join('**');
    }
    return masked;
  }

  // --- ConnectionDriver: called by the connection actor's implementations ---

  async connectTransport(hostIndex: number, signal: AbortSignal): Promise<void> {
    try {
      const broker = this.brokers[hostIndex];
      if (!broker) throw new IllegalStateError(`No broker at index ${hostIndex}.`, 'connecting');
      const own = this.options.transport;
      this.transport ??= await resolveTransport(typeof own === 'object' ? own : broker.transport);
      const connection = await this.transport.connect(
        {
          hostname: broker.hostname,
          port: broker.port,
          userid: broker.userid,
          password: broker.password,
          virtualHost: broker.virtualHost,
          ssl: broker.ssl,
          connectTimeout: broker.connectTimeout,
          heartbeat: broker.heartbeat,
          loginMethod: broker.loginMethod,
          transportOptions: broker.transportOptions,
          connectionName: this.options.connectionName ?? defaultConnectionName,
        },
        signal,
      );
      if (signal.aborted) {
        await connection.close().catch(noop);
        throw new ConnectionClosed('Connection attempt cancelled.');
      }
      this.current = connection;
    } catch (error) {
      const e = this.scrub(error);
      // An attempt aborted from outside (a connect timeout, close()) failed for the reason its
      // canceller recorded; "attempt aborted" would only hide it.
      if (!signal.aborted || !this.lastError) this.lastError = e;
      throw e;
    }
  }

  watch(): void {
    this.unwatch();
    const connection = this.current;
    if (!connection) {
      const error = new ConnectionError('Connection vanished before it was watched.');
      queueMicrotask(() => this.#report({ type: 'transport.lost', error: summarizeError(error) }));
      return;
    }
    // Prototype methods with this link as their context: no closures per connection.
    this.#watched = connection;
    connection.on('close', this.onTransportClose, this);
    connection.on('blocked', this.onTransportBlocked, this);
    connection.on('unblocked', this.onTransportUnblocked, this);
  }

  unwatch(): void {
    const connection = this.#watched;
    this.#watched = undefined;
    connection?.off('close', this.onTransportClose, this);
    connection?.off('blocked', this.onTransportBlocked, this);
    connection?.off('unblocked', this.onTransportUnblocked, this);
  }

  /** @internal Listener of the watched connection's `close`. */
  onTransportClose(error?: KombuError): void {
    this.lastError = this.scrub(error ?? new ConnectionError('The broker closed the connection.'));
    this.#report({ type: 'transport.lost', error: summarizeError(this.lastError) });
  }

  /** @internal Listener of the watched connection's `blocked`. */
  onTransportBlocked(reason: string): void {
    this.#report({ type: 'transport.blocked', reason });
  }

  /** @internal Listener of the watched connection's `unblocked`. */
  onTransportUnblocked(): void {
    this.#report({ type: 'transport.unblocked' });
  }

  #report(event: TransportReport): void {
    this.actor.send(event);
  }

  async closeTransport(): Promise<void> {
    const connection = this.current;
    this.current = undefined;
    if (connection) {
      connection.removeAllListeners();
      await connection.close();
    }
  }

  abandonTransport(): void {
    const dead = this.current;
    this.current = undefined;
    dead?.removeAllListeners();
    dead?.close().catch(noop);
  }

  heartbeatCheck(): void {
    try {
      this.current?.heartbeatCheck(this.options.heartbeatRate ?? 5);
    } catch (error) {
      // The machine only gets a summary: keep the real error, as `watch` does for a loss, so
      // that `failed` can reject what waits with it (and `lastError` says why).
      this.lastError = this.scrub(error);
      throw this.lastError;
    }
  }

  channel(channelId: number): Channel | undefined {
    return this.#channels?.find((channel) => channel.channelId === channelId);
  }

  /** The open channels, in order of opening. */
  get channels(): readonly Channel[] {
    return this.#channels ?? [];
  }

  addChannel(channel: Channel): void {
    if (this.#channels) this.#channels.push(channel);
    else this.#channels = [channel];
  }

  // --- ChannelHost: called by this connection's channels ---

  whenConnected(signal?: AbortSignal): Promise<TransportConnection> {
    const live = (): TransportConnection | undefined => (this.actor.getSnapshot().value === 'connected' ? this.current : undefined);
    const now = live();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const sub = this.actor.subscribe({
        next: (snapshot) => {
          const connection = live();
          if (connection) done(() => resolve(connection));
          else if (snapshot.value === 'closing' || snapshot.value === 'closed') done(() => reject(new ConnectionClosed('The connection is closed.')));
        },
        complete: () => done(() => reject(new ConnectionClosed('The connection is closed.'))),
      });
      const onAbort = (): void => done(() => reject(new ConnectionClosed('Wait for the connection was cancelled.')));
      const done = (then: () => void): void => {
        sub.unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        then();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  notifyDelivery(): void {
    this.deliveries.notify();
  }

  /** Wakes whoever drains events: the connection is closed. */
  closeDeliveries(): void {
    this.#deliveries?.close();
  }

  /** Rejects whoever drains events: the connection failed for good. */
  failDeliveries(error: Error): void {
    this.#deliveries?.fail(error);
  }

  forgetChannel(channelId: number): void {
    const at = this.#channels?.findIndex((channel) => channel.channelId === channelId) ?? -1;
    if (at >= 0) this.#channels?.splice(at, 1);
  }

  isBlocked(): boolean {
    return this.actor.getSnapshot().context.blocked;
  }

  failure(): KombuError | undefined {
    if (this.actor.getSnapshot().value !== 'failed') return undefined;
    return this.lastError ?? new ConnectionError('The connection failed.');
  }
}
