/**
 * kombu's conveniences on a Connection, beside its lifecycle: the attributes of the broker in
 * use (`hostname`, `port`, `info()`, `asUri()`, `clone()`...) and of its transport (the error
 * classes, `supportsHeartbeats`), and the factories (`conn.Producer()`, `conn.Consumer()`,
 * `conn.SimpleQueue()`, `conn.Pool()`, `conn.autoretry()`...).
 *
 * Why it looks the way it does: these are members of Connection (kombu's API, and this
 * package's), so they stay on Connection.prototype; but they are many small ones with long
 * documentation, and none of them is the connection's lifecycle, which connection.ts is about.
 * So they are written here, as the members of `ConnectionKombu`, which connection.ts merges
 * into Connection's type (`interface Connection extends ConnectionKombu`) and whose
 * prototype {@link installKombu} copies onto Connection's, once. Nothing is made per
 * connection. What they read of a connection's private state (its link: brokers, transport,
 * the actor's host index) connection.ts hands over as one accessor, not as a public field:
 * util.inspect would print a public field, passwords and all.
 */
import type { Channel } from './channel.js';
import type { Connection } from './connection.js';
import type { ConnectionLink } from './connection-link.js';
import { brokerInfo, brokerUri, cloneOptions, type ConnectionInfo, type ConnectionOptions } from './connection-options.js';
import { ChannelPool, ConnectionPool } from './connection-pool.js';
import type { EnsurePolicy } from './ensure.js';
import { ChannelError, ConnectionError, IllegalStateError } from './errors.js';
import { Consumer, Producer, type ConsumerOptions, type ProducerOptions } from './messaging.js';
import type { PoolOptions } from './pool.js';
import type { Queue } from './queue.js';
import { SimpleBuffer, SimpleQueue, type SimpleQueueOptions } from './simple.js';
import type { ErrorClass, Transport } from './transports/transport.js';

/** What {@link installKombu} was given: the Connection class and how to read a connection's link. */
let owner: { Connection: new (urlOrHostname?: string, options?: ConnectionOptions) => Connection; linkOf: (connection: Connection) => ConnectionLink } | undefined;

/** These members live on Connection.prototype only: `this` is a Connection. */
const self = (kombu: ConnectionKombu): Connection => kombu as unknown as Connection;

const linkOf = (kombu: ConnectionKombu): ConnectionLink => (owner as NonNullable<typeof owner>).linkOf(self(kombu));

/** kombu's attributes and factories of a {@link Connection}; see the module comment. */
export abstract class ConnectionKombu {
  /**
   * kombu's `autoretry`: `fn` gets a channel as first argument and is retried when it fails
   * with a recoverable error; after a connection error it gets the default channel (kombu
   * revives the channel it passes).
   *
   * @example
   * ```ts
   * const purge = conn.autoretry((channel, queue: string) => channel.purgeQueue(queue));
   * await purge('tasks');
   * ```
   */
  autoretry<A extends unknown[], R>(fn: (channel: Channel, ...args: A) => R | Promise<R>, channel?: Channel, policy: EnsurePolicy = {}): (...args: A) => Promise<Awaited<R>> {
    const connection = self(this);
    let current = channel;
    const revival = { revive: (revived: Channel): void => void (current = revived) };
    return connection.ensure(revival, (...args: A) => fn(current ?? connection.defaultChannel, ...args), policy);
  }

  /**
   * A pool of connections like this one (kombu's `Pool`): `limit` members at most (0 = none),
   * `preload` of them created and connected up front.
   *
   * @example
   * ```ts
   * const pool = conn.Pool({ limit: 5 });
   * await pool.use(async (c) => (await c.channel()).publish(Buffer.from('hi'), {}, '', 'tasks'));
   * ```
   */
  Pool(options: PoolOptions = {}): ConnectionPool {
    return new ConnectionPool(self(this), options);
  }

  /**
   * A pool of channels of this connection (kombu's `ChannelPool`).
   *
   * @example
   * ```ts
   * const channels = conn.ChannelPool({ limit: 10, preload: 2 });
   * const ch = await channels.acquire({ block: true });
   * await ch.release();
   * ```
   */
  ChannelPool(options: PoolOptions = {}): ChannelPool {
    return new ChannelPool(self(this), options);
  }

  /**
   * A new, unconnected Connection with the same settings (those its URLs gave too: `ssl`,
   * `heartbeat`, transport options...) and `overrides` on top. A `hostname` override names
   * other brokers: they are resolved afresh; `alternates` add brokers.
   */
  clone(overrides: ConnectionOptions = {}): Connection {
    const link = linkOf(this);
    return new (owner as NonNullable<typeof owner>).Connection(undefined, cloneOptions(link.options, link.brokers, overrides));
  }

  /** The URL of the broker in use; the password is `**` unless `includePassword`. */
  asUri(options: { includePassword?: boolean } = {}): string {
    return brokerUri(linkOf(this).broker, options.includePassword ?? false);
  }

  /** kombu's `info()`: the settings of the broker in use (password included, as kombu). */
  info(): ConnectionInfo {
    const link = linkOf(this);
    return brokerInfo(link.broker, link.brokers, link.failoverStrategy);
  }

  get hostname(): string {
    return linkOf(this).broker.hostname;
  }
  get port(): number | undefined {
    return linkOf(this).broker.port;
  }
  get userid(): string | undefined {
    return linkOf(this).broker.userid;
  }
  get virtualHost(): string | undefined {
    return linkOf(this).broker.virtualHost;
  }
  /** `hostname:port`. */
  get host(): string {
    const broker = linkOf(this).broker;
    return broker.port === undefined ? broker.hostname : `${broker.hostname}:${broker.port}`;
  }
  /** Every broker's URL (masked), in failover order. */
  get alt(): string[] {
    return [...linkOf(this).hosts];
  }
  /** The driver's connection object while connected (kombu's `connection`). */
  get connection(): unknown {
    return linkOf(this).current?.raw;
  }
  /** The transport, once loaded (on the first connect). */
  get transport(): Transport | undefined {
    const link = linkOf(this);
    return link.transport ?? (typeof link.options.transport === 'object' ? link.options.transport : undefined);
  }
  get connectionErrors(): readonly ErrorClass[] {
    return this.transport?.connectionErrors ?? [ConnectionError];
  }
  get recoverableConnectionErrors(): readonly ErrorClass[] {
    return this.transport?.recoverableConnectionErrors ?? [ConnectionError];
  }
  /** Error classes that mean "the channel failed" (kombu's `channel_errors`). */
  get channelErrors(): readonly ErrorClass[] {
    return this.transport?.channelErrors ?? [ChannelError];
  }
  /** Channel errors that reopening the channel heals (kombu's `recoverable_channel_errors`). */
  get recoverableChannelErrors(): readonly ErrorClass[] {
    return this.transport?.recoverableChannelErrors ?? [ChannelError];
  }
  /** kombu's `completes_cycle`: true when `retries` failed attempts end a full round over the brokers. */
  completesCycle(retries: number): boolean {
    return (retries + 1) % linkOf(this).brokers.length === 0;
  }
  /** kombu's `get_heartbeat_interval()`: the heartbeat in seconds, as negotiated (0 = off); IllegalStateError until connected. */
  getHeartbeatInterval(): number {
    const connection = self(this);
    const link = linkOf(this);
    const current = connection.connected ? link.current : undefined;
    if (!current) throw new IllegalStateError(`No heartbeat interval while the connection is ${connection.state}: it is settled on connect.`, connection.state);
    return current.heartbeat ?? link.broker.heartbeat;
  }
  get supportsHeartbeats(): boolean {
    return this.transport?.capabilities.heartbeats ?? false;
  }

  /**
   * A Producer on `channel` or this connection's default channel (kombu's `conn.Producer()`).
   *
   * @example
   * ```ts
   * const producer = conn.Producer({ exchange: 'tasks', serializer: 'json' });
   * await producer.publish({ id: 1 }, { routingKey: 'images', retry: true });
   * ```
   */
  Producer(options: ProducerOptions & { channel?: Channel } = {}): Producer {
    const { channel, ...rest } = options;
    return new Producer(channel ?? self(this), rest);
  }

  /**
   * A Consumer of `queues` on `channel` or the default channel (kombu's `conn.Consumer()`).
   *
   * @example
   * ```ts
   * const consumer = conn.Consumer([queue], { callbacks: [(body, message) => message.ack()] });
   * await consumer.consume();
   * ```
   */
  Consumer(queues: Queue | string | (Queue | string)[], options: ConsumerOptions & { channel?: Channel } = {}): Consumer {
    const { channel, ...rest } = options;
    return new Consumer(channel ?? self(this), queues, rest);
  }

  /**
   * A {@link SimpleQueue} (kombu's `conn.SimpleQueue()`).
   *
   * @example
   * ```ts
   * const queue = conn.SimpleQueue('jobs');
   * await queue.put({ id: 1 });
   * const message = await queue.get({ timeout: 1 });
   * ```
   */
  SimpleQueue(name: string | Queue, options: SimpleQueueOptions & { channel?: Channel } = {}): SimpleQueue {
    const { channel, ...rest } = options;
    return new SimpleQueue(channel ?? self(this), name, rest);
  }

  /**
   * A {@link SimpleBuffer}: ephemeral, no-ack (kombu's `conn.SimpleBuffer()`).
   *
   * @example
   * ```ts
   * const events = conn.SimpleBuffer('events');
   * await events.put({ type: 'tick' });
   * ```
   */
  SimpleBuffer(name: string | Queue, options: SimpleQueueOptions & { channel?: Channel } = {}): SimpleBuffer {
    const { channel, ...rest } = options;
    return new SimpleBuffer(channel ?? self(this), name, rest);
  }
}

/**
 * Puts the members of {@link ConnectionKombu} on `Connection.prototype` (connection.ts calls
 * it once, from the class's static block, the only place that can read `#link`). A name the
 * class already has is refused: it would be silently shadowed or overwritten.
 */
export function installKombu(connection: NonNullable<typeof owner>['Connection'], linkOfConnection: (connection: Connection) => ConnectionLink): void {
  owner = { Connection: connection, linkOf: linkOfConnection };
  const from = ConnectionKombu.prototype;
  for (const key of Object.getOwnPropertyNames(from)) {
    if (key === 'constructor') continue;
    if (Object.prototype.hasOwnProperty.call(connection.prototype, key)) throw new TypeError(`Connection already has '${key}'.`);
    Object.defineProperty(connection.prototype, key, Object.getOwnPropertyDescriptor(from, key) as PropertyDescriptor);
  }
}
