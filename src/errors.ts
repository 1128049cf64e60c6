/**
 * The whole kombu-ts error hierarchy.
 *
 * One root, {@link KombuError}. Two branches say what heals a failure:
 * {@link ConnectionError} (reconnect the connection) and {@link ChannelError} (reopen the
 * channel; the connection lives). Every class sets `name`, accepts `cause`, and carries the
 * structured fields upstream code matches on (`code`, `classId`, `methodId`, `recoverable`):
 * nothing in kombu-ts matches on message text. Drivers' errors are converted into these at
 * the transport's edge.
 *
 * Messages never contain a password: URLs are masked with `maskUrl()` before they are put
 * in a message.
 */

/** Structured fields every kombu-ts error may carry. */
export interface KombuErrorOptions {
  /** The underlying error (driver error, socket error...). */
  cause?: unknown;
  /** A protocol reply code (AMQP 320, 403, 404...) or a driver code (`ECONNREFUSED`). */
  code?: number | string;
  /** AMQP class id of the method that failed, when the broker said so. */
  classId?: number;
  /** AMQP method id of the method that failed, when the broker said so. */
  methodId?: number;
  /** Overrides the class default: can retrying (reconnecting, reopening) heal this? */
  recoverable?: boolean;
}

/**
 * Root of every error kombu-ts throws.
 *
 * @example
 * ```ts
 * try { await conn.connect(); } catch (e) {
 *   if (e instanceof KombuError && !e.recoverable) console.error('giving up:', e.message);
 * }
 * ```
 */
export class KombuError extends Error {
  override readonly name: string = 'KombuError';
  readonly code: number | string | undefined;
  readonly classId: number | undefined;
  readonly methodId: number | undefined;
  /** Whether retrying can heal this error. */
  readonly recoverable: boolean;

  constructor(message: string, options: KombuErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.classId = options.classId;
    this.methodId = options.methodId;
    this.recoverable = options.recoverable ?? (new.target as { defaultRecoverable?: boolean }).defaultRecoverable ?? false;
  }

  /** Default for `recoverable` when the constructor is not told. */
  static defaultRecoverable = false;
}

/** A failure of the whole connection: reconnecting heals it (unless `recoverable` is false). */
export class ConnectionError extends KombuError {
  override readonly name: string = 'ConnectionError';
  static override defaultRecoverable = true;
}

/** The broker refused the credentials or access to the virtual host. Never retried. */
export class AccessRefused extends ConnectionError {
  override readonly name: string = 'AccessRefused';
  static override defaultRecoverable = false;
}

/** The connection attempt did not complete within `connectTimeout`. */
export class ConnectTimeout extends ConnectionError {
  override readonly name: string = 'ConnectTimeout';
}

/** The broker stopped answering: no heartbeat (or any bytes) within the negotiated bound. */
export class HeartbeatTimeout extends ConnectionError {
  override readonly name: string = 'HeartbeatTimeout';
}

/** The connection was closed by `close()`; calls on it are refused. */
export class ConnectionClosed extends ConnectionError {
  override readonly name: string = 'ConnectionClosed';
  static override defaultRecoverable = false;
}

/** A failure of one channel: reopening the channel heals it; the connection lives. */
export class ChannelError extends KombuError {
  override readonly name: string = 'ChannelError';
  static override defaultRecoverable = true;
}

/**
 * Whether retrying an operation the broker refused with reply `code` on a channel can help,
 * as py-amqp judges it: 404 NOT_FOUND, 406 PRECONDITION_FAILED and 403 ACCESS_REFUSED will be
 * refused again; 311 CONTENT_TOO_LARGE, 313 NO_CONSUMERS and 405 RESOURCE_LOCKED may pass
 * later. The same on every transport, so that memory:// and amqp:// recover alike.
 */
export function channelRefusalRecoverable(code: number): boolean {
  return code !== 403 && code !== 404 && code !== 406;
}

/** An operation refused by the broker for this request (404 NOT_FOUND, 406 PRECONDITION_FAILED...). */
export class OperationalError extends KombuError {
  override readonly name: string = 'OperationalError';
}

/** A wait (drainEvents, acquire, get, publish) ran past its `timeout`. */
export class TimeoutError extends KombuError {
  override readonly name: string = 'TimeoutError';
  static override defaultRecoverable = true;
}

/** A pool or buffer limit was reached. */
export class LimitExceeded extends KombuError {
  override readonly name: string = 'LimitExceeded';
}

/** An entity (Exchange, Queue) was used without being bound to a channel. */
export class NotBoundError extends KombuError {
  override readonly name: string = 'NotBoundError';
}

/** A message was acknowledged, rejected or requeued twice. */
export class MessageStateError extends KombuError {
  override readonly name: string = 'MessageStateError';
}

/** The broker negatively acknowledged a confirmed publish. */
export class MessageNacked extends KombuError {
  override readonly name: string = 'MessageNacked';
}

/** `SimpleQueue.get()` found nothing (kombu's `Queue.Empty`). */
export class Empty extends KombuError {
  override readonly name: string = 'Empty';
}

/** A message body could not be encoded or decoded. */
export class SerializationError extends KombuError {
  override readonly name: string = 'SerializationError';
}

/** A body could not be encoded with the chosen serializer. */
export class EncodeError extends SerializationError {
  override readonly name: string = 'EncodeError';
}

/** A received body could not be decoded. */
export class DecodeError extends SerializationError {
  override readonly name: string = 'DecodeError';
}

/** A message's content type is not in the consumer's `accept` list. */
export class ContentDisallowed extends SerializationError {
  override readonly name: string = 'ContentDisallowed';
}

/** A call was made in a state that refuses it; `state` names that state. */
export class IllegalStateError extends KombuError {
  override readonly name: string = 'IllegalStateError';
  readonly state: string;
  constructor(message: string, state: string, options: KombuErrorOptions = {}) {
    super(message, options);
    this.state = state;
  }
}

/** A URL or option that cannot be understood (malformed URL, unknown scheme, bad value). */
export class ConfigurationError extends KombuError {
  override readonly name: string = 'ConfigurationError';
}

/** An optional driver (`amqplib`, `ioredis`...) is needed but not installed. */
export class DriverMissingError extends ConfigurationError {
  override readonly name: string = 'DriverMissingError';
}

/** True when retrying (after reconnect or channel reopen) may heal `error`. */
export function isRecoverable(error: unknown): boolean {
  return error instanceof KombuError && error.recoverable;
}

/** Wraps anything thrown into a KombuError (kept as is when it already is one). */
export function toKombuError(error: unknown, fallback: new (message: string, options?: KombuErrorOptions) => KombuError = KombuError): KombuError {
  if (error instanceof KombuError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new fallback(message, { cause: error });
}
