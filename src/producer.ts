/**
 * kombu's `Producer`: serializes, compresses and publishes messages to an exchange.
 *
 * Publishing through an outage: while the channel is down (the connection is reconnecting) a
 * publish waits in a bounded buffer and goes out, in order, once the channel is back with its
 * declarations restored. At most `maxBufferedMessages` publishes wait per channel (default
 * 10000); one more rejects at once with `LimitExceeded`. With `publishTimeout` (seconds; no
 * default) a publish that waited that long rejects with `TimeoutError`. `retry: true` also
 * retries a publish that failed with a recoverable error (its channel died under it) through
 * `connection.ensure()` with `retryPolicy` (at once on a healthy connection; 2, 4, ... 30 s
 * between failed reconnect attempts, forever, by default: kombu's `ensure_connection`
 * defaults, where kombu's `ensure` itself defaults to 1 s).
 *
 * The promise of `publish()` resolves when the transport has taken the message, and when the
 * transport confirms (AMQP publisher confirms), when the broker confirmed it (`confirm: false`
 * to skip the wait).
 */
import { EventEmitter } from 'eventemitter3';
import { Channel } from './channel.js';
import { connectionOf, maybeDeclare } from './common.js';
import { compress } from './compression.js';
import type { Connection } from './connection.js';
import { EncodeError, IllegalStateError, toKombuError, type KombuError } from './errors.js';
import { Exchange, deliveryModeOf, type DeliveryMode } from './exchange.js';
import { Queue } from './queue.js';
import { checkSeconds } from './seconds.js';
import type { EnsurePolicy } from './ensure.js';
import type { RetryPolicy } from './retry.js';
import { dumps } from './serialization.js';
import type { MessageProperties, ReturnedMessage } from './transports/transport.js';

/**
 * The default bound of publishes waiting for a reconnect, per channel.
 *
 * @example
 * ```ts
 * new Connection(url, { maxBufferedMessages: DEFAULT_MAX_BUFFERED_MESSAGES * 10 });
 * ```
 */
export const DEFAULT_MAX_BUFFERED_MESSAGES = 10_000;

/** Options of {@link Producer}. */
export interface ProducerOptions {
  /** Default exchange (default: the nameless default exchange `''`). */
  exchange?: Exchange | string;
  /** Default routing key. */
  routingKey?: string;
  /** Default serializer (default: kombu's rules, json for objects). */
  serializer?: string;
  /** Default compression (`zlib`, `gzip`, `brotli`, `bzip2`, `lzma`...). */
  compression?: string;
  /** Declare the default exchange (once per connection) before publishing (default true). */
  autoDeclare?: boolean;
  /** Called with each mandatory message the broker returned (the `return` event too). */
  onReturn?: (message: ReturnedMessage) => void;
  /** Publishes that may wait for a reconnect, per channel (default: the connection's, else 10000). */
  maxBufferedMessages?: number;
  /** Seconds a publish may wait for a reconnect (default: the connection's, else no limit; `Infinity`: no limit). */
  publishTimeout?: number;
  /** Wait for the broker's confirm where the transport has them (default true). */
  confirm?: boolean;
}

/** Options of {@link Producer.publish}. Durations in seconds. */
export interface ProducerPublishOptions {
  routingKey?: string;
  exchange?: Exchange | string;
  serializer?: string;
  compression?: string;
  headers?: Record<string, unknown>;
  /** 0-255; queues honour it up to their `maxPriority` (default 0). */
  priority?: number;
  /** Seconds before the broker discards the message (sent as milliseconds). */
  expiration?: number;
  /** Default: the exchange's, else persistent. */
  deliveryMode?: DeliveryMode;
  /** Given with a string/Buffer body: the body is sent as it is, with this type. */
  contentType?: string;
  contentEncoding?: string;
  correlationId?: string;
  /** A queue name, or a Queue (its name when sent: a server-named queue in `declare` is declared first). */
  replyTo?: string | Queue;
  messageId?: string;
  /** Seconds since the epoch, or a Date. */
  timestamp?: number | Date;
  type?: string;
  userId?: string;
  appId?: string;
  /** Entities to declare (once per connection) before publishing. */
  declare?: (Exchange | Queue)[];
  /** Have the broker return the message (`onReturn`) when no queue takes it. */
  mandatory?: boolean;
  /** Retry on recoverable errors through `connection.ensure()`. */
  retry?: boolean;
  /** How to retry (kombu's `retry_policy`, given to `connection.ensure()`). */
  retryPolicy?: EnsurePolicy;
  confirm?: boolean;
  publishTimeout?: number;
}

interface Prepared {
  data: Buffer;
  properties: MessageProperties;
  exchange: string;
  routingKey: string;
  /** A Queue given as `replyTo`: its name is read at send time, after `declare` named it. */
  replyQueue: Queue | undefined;
}

/** Events of a {@link Producer}. */
export interface ProducerEvents {
  return: (message: ReturnedMessage) => void;
  error: (error: KombuError) => void;
}

/**
 * Publishes messages (kombu's `kombu.Producer`).
 *
 * @example
 * ```ts
 * const tasks = new Exchange('tasks', { type: 'direct' });
 * const producer = new Producer(conn, { exchange: tasks, serializer: 'json', compression: 'zlib' });
 * await producer.publish({ op: 'resize', id: 42 }, { routingKey: 'images', priority: 5, expiration: 60, retry: true });
 * ```
 */
export class Producer extends EventEmitter<ProducerEvents> {
  #connection: Connection | undefined;
  readonly exchange: Exchange;
  routingKey: string;
  serializer: string | undefined;
  compression: string | undefined;
  autoDeclare: boolean;
  onReturn: ((message: ReturnedMessage) => void) | undefined;
  readonly #options: ProducerOptions;
  #channel: Channel | undefined;
  #listening: Channel | undefined;
  #closed = false;

  constructor(channelOrConnection: Channel | Connection, options: ProducerOptions = {}) {
    super();
    if (channelOrConnection instanceof Channel) {
      this.#channel = channelOrConnection;
      this.#connection = connectionOf(channelOrConnection);
    } else {
      this.#connection = channelOrConnection;
    }
    checkSeconds(options.publishTimeout, 'publishTimeout');
    this.#options = options;
    this.exchange = typeof options.exchange === 'string' ? new Exchange(options.exchange) : (options.exchange ?? new Exchange(''));
    this.routingKey = options.routingKey ?? '';
    this.serializer = options.serializer;
    this.compression = options.compression;
    this.autoDeclare = options.autoDeclare ?? true;
    this.onReturn = options.onReturn;
  }

  /** The connection publishes go through (`retry` uses its `ensure()`). */
  get connection(): Connection | undefined {
    return this.#connection;
  }

  /** The channel publishes go through (the connection's default channel unless given one). */
  get channel(): Channel {
    if (this.#closed) throw new IllegalStateError('This producer is closed.', 'closed');
    const channel = this.#channel ?? (this.connection as Connection).defaultChannel;
    if (channel !== this.#listening) {
      this.#listening?.off('return', this.#onReturned);
      channel.on('return', this.#onReturned);
      this.#listening = channel;
    }
    return channel;
  }

  #onReturned = (message: ReturnedMessage): void => {
    try {
      this.onReturn?.(message);
    } catch (error) {
      this.emit('error', toKombuError(error));
    }
    this.emit('return', message);
  };

  /** Publishes on `channel` from now on, reopening a closed producer (kombu's `revive`). */
  revive(channel: Channel): void {
    this.#channel = channel;
    this.#connection = connectionOf(channel) ?? this.#connection;
    this.#closed = false;
  }

  /** Declares the default exchange (unless it is the default exchange `''`). */
  async declare(): Promise<void> {
    if (this.exchange.name) await this.exchange.declare({ channel: this.channel });
  }

  /** Declares `entity` once per connection (see `maybeDeclare`). */
  maybeDeclare(entity: Exchange | Queue, options: { retry?: boolean; retryPolicy?: RetryPolicy } = {}): Promise<boolean> {
    return maybeDeclare(entity, this.channel, options);
  }

  /**
   * Publishes `body`. Objects are serialized (json by default), a string goes as `text/plain`,
   * a Buffer as `application/data` (kombu's rules); `compression` compresses the serialized
   * body and sets `headers.compression`. Resolves when the transport has taken (or the broker
   * confirmed) the message. See the module comment for waiting through an outage.
   */
  publish(body: unknown, options: ProducerPublishOptions = {}): Promise<void> {
    let prepared: Prepared;
    try {
      checkSeconds(options.publishTimeout, 'publishTimeout');
      prepared = this.#prepare(body, options);
    } catch (error) {
      return Promise.reject(error);
    }
    const once = (): Promise<void> => this.#publishOnce(prepared, options);
    if (!options.retry) return once();
    const connection = this.connection;
    if (!connection) return Promise.reject(new IllegalStateError('publish({ retry: true }) needs a producer made from a Connection (or a channel of one).', 'unbound'));
    return connection.ensure(this, once, options.retryPolicy ?? {})();
  }

  #prepare(body: unknown, options: ProducerPublishOptions): Prepared {
    const target = options.exchange ?? this.exchange;
    const exchange = typeof target === 'string' ? target : target.name;
    const exchangeMode = typeof target === 'string' ? this.exchange.deliveryMode : target.deliveryMode;
    const headers: Record<string, unknown> = options.headers ? { ...options.headers } : {};
    let data: Buffer;
    let contentType = options.contentType;
    let contentEncoding = options.contentEncoding;
    if (!contentType) {
      const serialized = dumps(body, options.serializer ?? this.serializer ?? null);
      ({ contentType, contentEncoding } = serialized);
      data = serialized.body;
    } else if (typeof body === 'string') {
      contentEncoding ||= 'utf-8';
      data = Buffer.from(body, Buffer.isEncoding(contentEncoding) ? contentEncoding : 'utf8');
    } else if (body instanceof Uint8Array) {
      contentEncoding ||= 'binary';
      data = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    } else {
      throw new EncodeError(`With contentType '${contentType}' the body must be a string or bytes (it is sent as it is); leave contentType out to serialize it.`);
    }
    const compression = options.compression ?? this.compression;
    if (compression) {
      const compressed = compress(data, compression);
      data = compressed.body;
      headers['compression'] = compressed.contentType;
    }
    const timestamp = options.timestamp instanceof Date ? Math.floor(options.timestamp.getTime() / 1000) : options.timestamp;
    const replyQueue = options.replyTo instanceof Queue ? options.replyTo : undefined;
    const properties: MessageProperties = {
      contentType,
      headers,
      deliveryMode: deliveryModeOf(options.deliveryMode ?? exchangeMode),
      priority: options.priority ?? 0,
    };
    if (contentEncoding) properties.contentEncoding = contentEncoding;
    if (options.expiration !== undefined) {
      checkSeconds(options.expiration, 'expiration', { finite: true });
      properties.expiration = String(Math.trunc(options.expiration * 1000));
    }
    if (options.correlationId !== undefined) properties.correlationId = options.correlationId;
    if (typeof options.replyTo === 'string') properties.replyTo = options.replyTo;
    if (options.messageId !== undefined) properties.messageId = options.messageId;
    if (timestamp !== undefined) properties.timestamp = timestamp;
    if (options.type !== undefined) properties.type = options.type;
    if (options.userId !== undefined) properties.userId = options.userId;
    if (options.appId !== undefined) properties.appId = options.appId;
    return { data, properties, exchange, routingKey: options.routingKey ?? this.routingKey, replyQueue };
  }

  #publishOnce(prepared: Prepared, options: ProducerPublishOptions): Promise<void> {
    let channel: Channel;
    try {
      channel = this.channel;
    } catch (error) {
      return Promise.reject(error);
    }
    const maxBuffered = this.#options.maxBufferedMessages ?? this.connection?.maxBufferedMessages ?? DEFAULT_MAX_BUFFERED_MESSAGES;
    const timeout = options.publishTimeout ?? this.#options.publishTimeout ?? this.connection?.publishTimeout;
    const publishOptions = {
      mandatory: options.mandatory ?? false,
      confirm: options.confirm ?? this.#options.confirm ?? true,
      maxBuffered,
      timeout,
    };
    const send = (): Promise<void> => {
      const { replyQueue } = prepared;
      // As kombu: a server-named reply queue in `declare` has its name only once declared.
      const properties = replyQueue ? { ...prepared.properties, replyTo: replyQueue.name } : prepared.properties;
      return channel.publish(prepared.data, properties, prepared.exchange, prepared.routingKey, publishOptions);
    };
    const declare = this.#undeclared(options.declare);
    if (declare.length === 0) return send();
    return this.#declare(channel, declare, options, maxBuffered, timeout).then(send);
  }

  /** The entities to declare before this publish: `declare`, plus the producer's exchange, minus those known declared. */
  #undeclared(extra: (Exchange | Queue)[] | undefined): (Exchange | Queue)[] {
    const cache = this.connection?.declaredEntities;
    const known = (entity: Exchange | Queue): boolean => cache !== undefined && entity.canCacheDeclaration && cache.has(entity.ident);
    const declare: (Exchange | Queue)[] = [];
    if (extra) for (const entity of extra) if (!known(entity)) declare.push(entity);
    const own = this.exchange;
    if (
      this.autoDeclare && own.name && !known(own) &&
      !(extra ?? []).some((e) => e === own || (e instanceof Exchange && e.equals(own)))
    ) {
      declare.push(own);
    }
    return declare;
  }

  async #declare(channel: Channel, declare: (Exchange | Queue)[], options: ProducerPublishOptions, maxBuffered: number, timeout: number | undefined): Promise<void> {
    // Take a place in the buffer first: declarations must not wait unbounded during an outage.
    await channel.whenWritable({ maxBuffered, timeout });
    const retry = options.retry ?? false;
    for (const entity of declare) await maybeDeclare(entity, channel, { retry, ...(options.retryPolicy ? { retryPolicy: options.retryPolicy } : {}) });
  }

  /** Stops listening for returned messages; the channel stays open (it may be shared). */
  async close(): Promise<void> {
    this.#listening?.off('return', this.#onReturned);
    this.#listening = undefined;
    this.#closed = true;
  }

  /** kombu's `release()`: same as {@link close}. */
  release(): Promise<void> {
    return this.close();
  }

  /** kombu's `with producer:`: `await using producer = await pool.acquire()` releases it (back to its pool) at the block's end. */
  async [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
