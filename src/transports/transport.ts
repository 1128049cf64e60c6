/**
 * The transport contract: what a broker driver must offer kombu-ts.
 *
 * Modelled on kombu's `base.Transport`: a transport connects, opens channels, and on a
 * channel declares, binds, publishes, gets, consumes, acks, rejects and purges. It declares
 * what it is (default port, capabilities) and which of its errors heal by reconnecting.
 *
 * Rules every transport keeps:
 * - Driver errors are converted into kombu-ts errors (src/errors.ts) at this edge:
 *   `AccessRefused` (never retried), `ConnectionError` (reconnect), `ChannelError` (reopen the
 *   channel), `OperationalError` (this request was refused). Nothing upstream reads messages.
 * - No reconnection of its own: the connection machine owns every reconnect. A lost
 *   connection is reported once, through the `close` event, with the error.
 * - No password in any error message: use `maskUrl()` when naming the broker.
 * - Durations are seconds at this interface, as everywhere in kombu-ts.
 */
import type { EventEmitter } from 'eventemitter3';
import type { KombuError } from '../errors.js';

export type ExchangeType = 'direct' | 'topic' | 'fanout' | 'headers';

/**
 * TLS options: Node's `tls.connect` options, or kombu's spelling of them (the `ssl` dict of
 * kombu and py-amqp), or both. Node's `ca`, `cert` and `key` hold the certificates and key
 * themselves (PEM text or Buffers); kombu's `ca_certs`, `certfile` and `keyfile` hold file
 * paths, read at every connection attempt (a certificate rotated on disk is used by the next
 * reconnect). A URL's `ssl_*` query parameters arrive here in kombu's spelling. Giving one
 * option in both spellings is a `ConfigurationError`. Anything else goes to `tls.connect` as
 * it is (`minVersion`, `ciphers`, `passphrase`...).
 *
 * @example
 * ```ts
 * const kombuStyle: TlsOptions = { ca_certs: '/etc/rabbitmq/ca.pem', certfile: '/etc/app/client.pem', keyfile: '/etc/app/client.key', cert_reqs: 'CERT_REQUIRED' };
 * const nodeStyle: TlsOptions = { ca: [readFileSync('/etc/rabbitmq/ca.pem')], servername: 'rabbit.internal' };
 * ```
 */
export interface TlsOptions {
  /** CA certificates to trust instead of Node's defaults: PEM text or Buffers (not a path: see `ca_certs`). */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** Client certificate chain, PEM text or Buffer (not a path: see `certfile`). */
  cert?: string | Buffer | readonly (string | Buffer)[];
  /** Client private key, PEM text or Buffer (not a path: see `keyfile`). */
  key?: string | Buffer | readonly (string | Buffer)[];
  /** The name checked against the broker's certificate (and sent as SNI); default: the host name. */
  servername?: string;
  /** Refuse a broker certificate that fails verification (default true). */
  rejectUnauthorized?: boolean;
  /** kombu: path of a PEM file of CA certificates to trust (becomes `ca`). URL: `ssl_ca_certs`. */
  ca_certs?: string | URL;
  /** kombu: path of the client certificate (PEM; may hold the key too). URL: `ssl_certfile`. */
  certfile?: string | URL;
  /** kombu: path of the client private key (PEM). URL: `ssl_keyfile`. */
  keyfile?: string | URL;
  /**
   * kombu: `CERT_REQUIRED`/`CERT_OPTIONAL` (2/1) verify the broker's certificate, `CERT_NONE`
   * (0) does not (becomes `rejectUnauthorized`). URL: `ssl_cert_reqs`.
   */
  cert_reqs?: 'CERT_REQUIRED' | 'CERT_OPTIONAL' | 'CERT_NONE' | 'required' | 'optional' | 'none' | 0 | 1 | 2;
  /** kombu: the name to check the certificate against (becomes `servername`); null means the host name. */
  server_hostname?: string | null;
  /** false skips the host name check (the certificate is still verified). URL: `ssl_check_hostname`. */
  check_hostname?: boolean;
  [option: string]: unknown;
}

/** Everything a transport needs to open one connection to one broker. Secrets live here only. */
export interface ConnectParams {
  hostname: string;
  /** Undefined means the transport's default port. */
  port: number | undefined;
  userid: string | undefined;
  password: string | undefined;
  /** AMQP virtual host (`/` by default); the database number for Redis; unused by memory (it picks the broker by `hostname`). */
  virtualHost: string | undefined;
  ssl: boolean | TlsOptions;
  /** Seconds to wait for the connection to open before failing with `ConnectTimeout`. */
  connectTimeout: number;
  /** Heartbeat interval requested, seconds (0 = off). */
  heartbeat: number;
  /** SASL mechanism: PLAIN (default), AMQPLAIN, EXTERNAL. */
  loginMethod: string | undefined;
  transportOptions: Readonly<Record<string, unknown>>;
  /** A human name for this connection, shown by the broker (RabbitMQ's connection_name). */
  connectionName: string;
}

/** Message properties, camelCased AMQP basic properties. */
export interface MessageProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: Record<string, unknown>;
  /** 1 = transient, 2 = persistent. */
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in milliseconds, as a string (AMQP's format). */
  expiration?: string;
  messageId?: string;
  /** Seconds since the epoch. */
  timestamp?: number;
  type?: string;
  userId?: string;
  appId?: string;
}

/** Where a delivered message came from. */
export interface DeliveryInfo {
  exchange: string;
  routingKey: string;
  consumerTag?: string;
  /** Channel-scoped tag to ack/reject with (a uuid string on Redis). */
  deliveryTag: number | string;
  redelivered: boolean;
  /** For `get()`: messages left in the queue after this one, when the broker says. */
  messageCount?: number;
}

/** A message as the transport hands it over: raw bytes, not yet decoded. */
export interface RawMessage {
  body: Buffer;
  properties: MessageProperties;
  deliveryInfo: DeliveryInfo;
}

/** A message the broker returned (mandatory publish with no route). */
export interface ReturnedMessage extends RawMessage {
  replyCode: number;
  replyText: string;
}

export interface ExchangeDeclaration {
  name: string;
  type: ExchangeType;
  durable: boolean;
  autoDelete: boolean;
  internal?: boolean;
  arguments: Record<string, unknown>;
  /** Only check that it exists (otherwise ChannelError 404, and the channel closes, as in AMQP). */
  passive: boolean;
}

export interface QueueDeclaration {
  /** Empty string asks the broker to name the queue. */
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: Record<string, unknown>;
  passive: boolean;
}

export interface QueueDeclareOk {
  queue: string;
  messageCount: number;
  consumerCount: number;
}

export interface PublishOptions {
  /** Return the message (channel `return` event) if no queue takes it. */
  mandatory?: boolean;
  /** Resolve only when the broker confirms; reject with `MessageNacked` on a nack. */
  confirm?: boolean;
}

export interface ConsumeOptions {
  consumerTag: string;
  noAck: boolean;
  exclusive?: boolean;
  arguments?: Record<string, unknown>;
}

/** Events of a transport channel. */
export interface TransportChannelEvents {
  /** The channel is gone; `error` is set when the broker or the connection closed it. */
  close: (error?: KombuError) => void;
  /** A mandatory message found no queue. */
  return: (message: ReturnedMessage) => void;
  /** The broker cancelled a consumer (its queue was deleted, say). */
  cancel: (consumerTag: string) => void;
}

/**
 * One channel on a transport connection.
 *
 * Calls take effect in the order they are made, whether or not the earlier ones are answered
 * yet (AMQP: the broker reads a channel's frames in order); only a publish made while the
 * broker blocks the connection waits. A refused call closes the channel, and the calls made
 * after it fail. A recovery relies on this to send its whole restore at once.
 */
export interface TransportChannel extends EventEmitter<TransportChannelEvents> {
  readonly id: number;
  declareExchange(declaration: ExchangeDeclaration): Promise<void>;
  deleteExchange(name: string, options?: { ifUnused?: boolean }): Promise<void>;
  declareQueue(declaration: QueueDeclaration): Promise<QueueDeclareOk>;
  bindQueue(queue: string, exchange: string, routingKey: string, args?: Record<string, unknown>): Promise<void>;
  unbindQueue(queue: string, exchange: string, routingKey: string, args?: Record<string, unknown>): Promise<void>;
  /** Resolves with the number of messages deleted with the queue. */
  deleteQueue(name: string, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number>;
  /** Resolves with the number of messages purged. */
  purgeQueue(name: string): Promise<number>;
  /** Resolves when the transport has taken the message (confirmed, with `confirm`). */
  publish(body: Buffer, properties: MessageProperties, exchange: string, routingKey: string, options?: PublishOptions): Promise<void>;
  /** One message, or undefined when the queue is empty. */
  get(queue: string, options: { noAck: boolean }): Promise<RawMessage | undefined>;
  /** Starts delivering to `onMessage`; resolves with the consumer tag. */
  consume(queue: string, options: ConsumeOptions, onMessage: (message: RawMessage) => void): Promise<string>;
  cancel(consumerTag: string): Promise<void>;
  /** Acks; a broker refusal (unknown tag) closes the channel and arrives through `close`. */
  ack(deliveryTag: number | string, multiple?: boolean): void;
  /** Reject; `requeue: false` dead-letters (or drops) the message. */
  reject(deliveryTag: number | string, requeue: boolean): void;
  qos(prefetchCount: number, prefetchSize?: number, global?: boolean): Promise<void>;
  /** Redeliver the unacknowledged messages of this channel. */
  recover(requeue: boolean): Promise<void>;
  close(): Promise<void>;
  /** True until the channel closes. */
  readonly isOpen: boolean;
}

/** Events of a transport connection. */
export interface TransportConnectionEvents {
  /** The connection is gone; `error` is set unless it was closed by `close()`. Emitted once. */
  close: (error?: KombuError) => void;
  /** The broker applies flow control (RabbitMQ connection.blocked). */
  blocked: (reason: string) => void;
  unblocked: () => void;
}

/** One open connection to one broker. */
export interface TransportConnection extends EventEmitter<TransportConnectionEvents> {
  /** The driver's own connection object (kombu's `conn.connection`). */
  readonly raw: unknown;
  /** The heartbeat in seconds, as negotiated with the broker (0 = off); absent: the one asked for. */
  readonly heartbeat?: number;
  createChannel(): Promise<TransportChannel>;
  /**
   * Optional: opens a channel without waiting for the broker's answer. Calls made on the
   * channel go out at once, behind the open, and are answered in order after it; `opened`
   * settles with the broker's answer to the open (rejecting as `createChannel` would; the
   * calls fail then too). Returns undefined when it cannot: use `createChannel`. A recovery
   * uses it to restore a channel in one round trip.
   */
  openChannel?(): { channel: TransportChannel; opened: Promise<void> } | undefined;
  /**
   * Called `rate` times per heartbeat interval: sends a heartbeat if one is due and checks the
   * peer is alive. Throws `HeartbeatTimeout` when the peer missed its heartbeats.
   */
  heartbeatCheck(rate: number): void;
  /** Closes the connection; no `close` event error follows. Safe to call twice. */
  close(): Promise<void>;
}

export interface TransportCapabilities {
  exchangeTypes: readonly ExchangeType[];
  priorities: boolean;
  heartbeats: boolean;
  confirms: boolean;
}

export type ErrorClass = abstract new (...args: never[]) => Error;

/** A transport: the factory of connections to one kind of broker. */
export interface Transport {
  /** The transport's name (`amqp`, `redis`, `memory`). */
  readonly name: string;
  readonly defaultPort: number | undefined;
  /** The port when TLS is on (`ssl`) and none is given, when it differs from `defaultPort` (AMQP: 5671). */
  readonly defaultTlsPort?: number;
  readonly capabilities: TransportCapabilities;
  /** Error classes that mean "the connection failed" (kombu's `connection_errors`). */
  readonly connectionErrors: readonly ErrorClass[];
  /** Error classes that mean "the channel failed" (kombu's `channel_errors`). */
  readonly channelErrors: readonly ErrorClass[];
  /** Error classes that reconnecting heals (kombu's `recoverable_connection_errors`). */
  readonly recoverableConnectionErrors: readonly ErrorClass[];
  /** Channel errors that reopening the channel heals (kombu's `recoverable_channel_errors`); default `[ChannelError]`. */
  readonly recoverableChannelErrors?: readonly ErrorClass[];
  /** Opens a connection; `signal` aborts the attempt (close() during connecting). */
  connect(params: ConnectParams, signal: AbortSignal): Promise<TransportConnection>;
}
