/**
 * kombu's `Message`: a received message, with its raw bytes, its properties and the means to
 * acknowledge it.
 *
 * Two kombu rules worth knowing:
 * - A message is settled once: `ack()`, `reject()` and `requeue()` each change its state, and a
 *   second one throws `MessageStateError`. Messages of a no-ack consumer are settled on arrival
 *   (`acknowledged` is true) and acting on them does nothing, as kombu.
 * - Delivery tags belong to one transport channel (an `epoch`). When the connection or channel
 *   was lost since the message arrived, the broker has already put it back in the queue:
 *   `ack()` then sends nothing (it returns false) and the message will be delivered again,
 *   with `redelivered` set. Consumers should be idempotent, as with any broker.
 *
 * `body` is the bytes as received (still compressed when `headers.compression` is set);
 * `decode()` / `payload` decompress and deserialize them (checking the accept list), once.
 */
import { decompress } from './compression.js';
import { MessageStateError } from './errors.js';
import { loads } from './serialization.js';
import type { DeliveryInfo, MessageProperties, RawMessage } from './transports/transport.js';

/** What a message needs to settle itself: a kombu-ts `Channel` fits. */
export interface MessageAcker {
  ack(deliveryTag: number | string, multiple?: boolean, epoch?: number): boolean;
  reject(deliveryTag: number | string, requeue: boolean, epoch?: number): boolean;
}

/** kombu's message states. */
export type MessageState = 'RECEIVED' | 'ACK' | 'REJECTED' | 'REQUEUED';

/** How a message was received. */
export interface MessageOptions {
  /** The channel it came on (to ack/reject); without one, settling throws `MessageStateError`. */
  channel?: MessageAcker | undefined;
  /** The channel epoch of the delivery (see the module comment). */
  epoch?: number | undefined;
  /** Delivered to a no-ack consumer (or `get({ noAck: true })`): nothing to settle. */
  noAck?: boolean | undefined;
  /** Content types or serializer names `decode()` accepts; undefined = the registry's enabled ones. */
  accept?: Iterable<string> | undefined;
}

/** A logger for {@link Message.ackLog}. */
export interface MessageLogger {
  error(message: string, ...args: unknown[]): void;
}

const NOT_DECODED: unique symbol = Symbol('not decoded');

/**
 * A received message (kombu's `kombu.Message`).
 *
 * @example
 * ```ts
 * consumer.registerCallback((body, message) => {
 *   console.log(message.contentType, message.deliveryInfo.routingKey, body);
 *   message.ack();
 * });
 * ```
 */
export class Message {
  /** The body as received: raw bytes, compressed if `headers.compression` is set. */
  readonly body: Buffer;
  readonly properties: MessageProperties;
  readonly deliveryInfo: DeliveryInfo;
  readonly headers: Record<string, unknown>;
  readonly accept: readonly string[] | undefined;
  readonly noAck: boolean;
  /** The channel epoch the delivery belongs to. */
  readonly epoch: number | undefined;
  readonly #channel: MessageAcker | undefined;
  #state: MessageState;
  #decoded: unknown = NOT_DECODED;

  constructor(raw: RawMessage, options: MessageOptions = {}) {
    this.body = raw.body;
    this.properties = raw.properties;
    this.deliveryInfo = raw.deliveryInfo;
    this.headers = raw.properties.headers ?? {};
    this.accept = options.accept === undefined ? undefined : [...options.accept];
    this.noAck = options.noAck ?? false;
    this.epoch = options.epoch;
    this.#channel = options.channel;
    this.#state = this.noAck ? 'ACK' : 'RECEIVED';
  }

  get deliveryTag(): number | string {
    return this.deliveryInfo.deliveryTag;
  }
  get contentType(): string | undefined {
    return this.properties.contentType;
  }
  get contentEncoding(): string | undefined {
    return this.properties.contentEncoding;
  }
  get redelivered(): boolean {
    return this.deliveryInfo.redelivered;
  }
  get priority(): number | undefined {
    return this.properties.priority;
  }
  /** `RECEIVED`, `ACK`, `REJECTED` or `REQUEUED`. */
  get state(): MessageState {
    return this.#state;
  }
  /** True once acked, rejected or requeued (or when received without acks). */
  get acknowledged(): boolean {
    return this.#state !== 'RECEIVED';
  }

  /**
   * The body decompressed (per `headers.compression`) and deserialized (per content type and
   * encoding), computed once. Throws `ContentDisallowed` for a content type outside `accept`
   * and `DecodeError` for a body that does not decode.
   */
  decode(): unknown {
    if (this.#decoded === NOT_DECODED) {
      const compression = this.headers['compression'];
      const body = typeof compression === 'string' && compression ? decompress(this.body, compression) : this.body;
      this.#decoded = loads(body, this.contentType, this.contentEncoding, this.accept === undefined ? {} : { accept: this.accept });
    }
    return this.#decoded;
  }

  /** The decoded body (see {@link decode}). */
  get payload(): unknown {
    return this.decode();
  }

  #settle(to: MessageState, send: (channel: MessageAcker) => boolean): boolean {
    if (this.noAck) return false;
    const channel = this.#channel;
    if (!channel) throw new MessageStateError('This message does not have a receiving channel.');
    if (this.acknowledged) throw new MessageStateError(`Message already acknowledged with state: ${this.#state}`);
    // Settled once sent, as kombu: an ack that threw (its channel failing under it) left the
    // message settled, so the retry the error invites raised MessageStateError.
    const sent = send(channel);
    this.#state = to;
    return sent;
  }

  /**
   * Acknowledges the message. Returns false when nothing was sent: a no-ack message, or a
   * delivery of a channel that has since been lost (the broker redelivers it).
   * Throws `MessageStateError` when the message was already settled.
   */
  ack(options: { multiple?: boolean } = {}): boolean {
    return this.#settle('ACK', (channel) => channel.ack(this.deliveryTag, options.multiple ?? false, this.epoch));
  }

  /** Rejects the message: dropped (or dead-lettered) unless `requeue` is true. State `REJECTED` either way, as kombu. */
  reject(options: { requeue?: boolean } = {}): boolean {
    const requeue = options.requeue ?? false;
    return this.#settle('REJECTED', (channel) => channel.reject(this.deliveryTag, requeue, this.epoch));
  }

  /** Rejects the message back into its queue (redelivered later, `redelivered` set); state `REQUEUED`. */
  requeue(): boolean {
    return this.#settle('REQUEUED', (channel) => channel.reject(this.deliveryTag, true, this.epoch));
  }

  /** `ack()`, logging a failure to `logger` instead of throwing (kombu's `ack_log_error`). */
  ackLog(logger: MessageLogger, description = 'acknowledge', options: { multiple?: boolean } = {}): void {
    try {
      this.ack(options);
    } catch (error) {
      logger.error(`Couldn't ${description} message ${String(this.deliveryTag)}: ${(error as Error).message}`, error);
    }
  }

  /** `reject()`, logging a failure to `logger` instead of throwing (kombu's `reject_log_error`). */
  rejectLog(logger: MessageLogger, description = 'reject', options: { requeue?: boolean } = {}): void {
    try {
      this.reject(options);
    } catch (error) {
      logger.error(`Couldn't ${description} message ${String(this.deliveryTag)}: ${(error as Error).message}`, error);
    }
  }

  toString(): string {
    return `<Message ${String(this.deliveryTag)} ${this.#state} ${this.contentType ?? 'application/data'} ${this.body.length}B>`;
  }
}
