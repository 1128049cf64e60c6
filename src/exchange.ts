/**
 * kombu's `Exchange` entity: a description of an exchange that can be bound to a channel and
 * declared, deleted or published to through it.
 *
 * Entities are descriptions first: `new Exchange('media', { type: 'topic' })` touches nothing.
 * `exchange.bind(channel)` returns a bound copy (kombu's `exchange(channel)`); the methods that
 * talk to the broker need a bound entity and throw `NotBoundError` otherwise. The nameless
 * default exchange `''` always exists on the broker and is never declared.
 */
import type { Channel } from './channel.js';
import { ConfigurationError, NotBoundError } from './errors.js';
import type { ExchangeDeclaration, ExchangeType } from './transports/transport.js';

/**
 * kombu's delivery modes by name.
 *
 * @example
 * ```ts
 * await producer.publish(body, { deliveryMode: DELIVERY_MODES.transient });
 * ```
 */
export const DELIVERY_MODES: Readonly<Record<'transient' | 'persistent', 1 | 2>> = Object.freeze({ transient: 1, persistent: 2 });

/** A delivery mode: a name or AMQP's number (1 = transient, 2 = persistent). */
export type DeliveryMode = 'transient' | 'persistent' | 1 | 2;

/**
 * The AMQP number of a delivery mode; `undefined` gives `fallback` (kombu's `maybe_delivery_mode`).
 *
 * @example
 * ```ts
 * deliveryModeOf('transient'); // 1
 * deliveryModeOf(undefined);   // 2 (persistent, kombu's default)
 * ```
 */
export function deliveryModeOf(mode: DeliveryMode | undefined, fallback: 1 | 2 = 2): 1 | 2 {
  if (mode === undefined) return fallback;
  if (mode === 1 || mode === 2) return mode;
  const number = DELIVERY_MODES[mode];
  if (number === undefined) throw new ConfigurationError(`Unknown delivery mode ${String(mode)}: use 'persistent', 'transient', 2 or 1.`);
  return number;
}

/** Options of {@link Exchange}. */
export interface ExchangeOptions {
  /** Routing algorithm (default `direct`). */
  type?: ExchangeType;
  /** Survives a broker restart (default true). */
  durable?: boolean;
  /** Deleted by the broker when its last queue is unbound (default false). */
  autoDelete?: boolean;
  /** Only check that the exchange exists when declaring (default false). */
  passive?: boolean;
  /** Internal exchanges take no publishes from clients (default false). */
  internal?: boolean;
  /** Broker-specific arguments (`alternate-exchange`...). */
  arguments?: Record<string, unknown>;
  /** Default delivery mode of messages published to this exchange (publish options win). */
  deliveryMode?: DeliveryMode;
  /** Never declare this exchange (it is assumed to exist). */
  noDeclare?: boolean;
}

/**
 * An exchange (kombu's `kombu.Exchange`).
 *
 * @example
 * ```ts
 * const media = new Exchange('media', { type: 'topic', durable: false });
 * const bound = media.bind(await conn.channel());
 * await bound.declare();
 * await bound.delete();
 * ```
 */
export class Exchange {
  readonly name: string;
  readonly type: ExchangeType;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly passive: boolean;
  readonly internal: boolean;
  readonly arguments: Record<string, unknown>;
  readonly deliveryMode: 1 | 2 | undefined;
  readonly noDeclare: boolean;
  readonly #channel: Channel | undefined;

  constructor(name = '', options: ExchangeOptions = {}, channel?: Channel) {
    this.name = name;
    this.type = options.type ?? 'direct';
    this.durable = options.durable ?? true;
    this.autoDelete = options.autoDelete ?? false;
    this.passive = options.passive ?? false;
    this.internal = options.internal ?? false;
    this.arguments = { ...(options.arguments ?? {}) };
    this.deliveryMode = options.deliveryMode === undefined ? undefined : deliveryModeOf(options.deliveryMode);
    this.noDeclare = options.noDeclare ?? false;
    this.#channel = channel;
  }

  /** The options this exchange was made with (to copy it). */
  get options(): ExchangeOptions {
    return {
      type: this.type,
      durable: this.durable,
      autoDelete: this.autoDelete,
      passive: this.passive,
      internal: this.internal,
      arguments: { ...this.arguments },
      ...(this.deliveryMode === undefined ? {} : { deliveryMode: this.deliveryMode }),
      noDeclare: this.noDeclare,
    };
  }

  /** True when bound to a channel. */
  get isBound(): boolean {
    return this.#channel !== undefined;
  }

  /** The channel this copy is bound to; throws `NotBoundError` when unbound. */
  get channel(): Channel {
    if (!this.#channel) throw new NotBoundError(`Can't call method on Exchange '${this.name}' not bound to a channel: use exchange.bind(channel) first.`);
    return this.#channel;
  }

  /** A copy bound to `channel` (kombu's `exchange(channel)`). */
  bind(channel: Channel): Exchange {
    return new Exchange(this.name, this.options, channel);
  }

  /** This exchange if bound already, else a copy bound to `channel`. */
  maybeBind(channel: Channel): Exchange {
    return this.#channel ? this : this.bind(channel);
  }

  /** The key of declaration caches (kombu hashes `E|name`). */
  get ident(): string {
    return `E|${this.name}`;
  }

  /** Whether `maybeDeclare` may remember the declaration (not for auto-delete exchanges). */
  get canCacheDeclaration(): boolean {
    return !this.autoDelete;
  }

  /** The declaration the transport takes. */
  declaration(passive = this.passive): ExchangeDeclaration {
    return {
      name: this.name,
      type: this.type,
      durable: this.durable,
      autoDelete: this.autoDelete,
      internal: this.internal,
      arguments: { ...this.arguments },
      passive,
    };
  }

  /**
   * Declares the exchange. Does nothing for the default exchange `''`, the broker's own
   * `amq.*` exchanges (kombu's `_can_declare`: they always exist, and RabbitMQ refuses to
   * create one or to redeclare it with other settings) or with `noDeclare`.
   * `passive` only checks it exists (OperationalError 404 otherwise).
   */
  async declare(options: { passive?: boolean; channel?: Channel } = {}): Promise<void> {
    if (!this.name || this.name.startsWith('amq.') || this.noDeclare) return;
    await (options.channel ?? this.channel).declareExchange(this.declaration(options.passive ?? this.passive));
  }

  /** Deletes the exchange; `ifUnused` refuses when queues are bound to it. */
  async delete(options: { ifUnused?: boolean; channel?: Channel } = {}): Promise<void> {
    if (!this.name) return;
    await (options.channel ?? this.channel).deleteExchange(this.name, options.ifUnused === undefined ? {} : { ifUnused: options.ifUnused });
  }

  /** Same name and settings (kombu's `__eq__`). */
  equals(other: unknown): boolean {
    if (!(other instanceof Exchange)) return false;
    return (
      this.name === other.name &&
      this.type === other.type &&
      this.durable === other.durable &&
      this.autoDelete === other.autoDelete &&
      this.deliveryMode === other.deliveryMode &&
      JSON.stringify(this.arguments) === JSON.stringify(other.arguments)
    );
  }

  toString(): string {
    return `Exchange ${this.name || "''"}(${this.type})`;
  }
}
