/**
 * kombu's `Queue` and `binding` entities.
 *
 * `new Queue('images', { exchange: media, routingKey: 'image.#' })` describes a queue and its
 * main binding; `declare()` declares the exchange (unless it is the default `''`), the queue,
 * the binding, and every extra `bindings` entry. The kombu options in seconds become RabbitMQ
 * queue arguments in milliseconds (`expires` -> `x-expires`, `messageTtl` -> `x-message-ttl`),
 * and `maxLength`, `maxLengthBytes`, `maxPriority` become `x-max-length`,
 * `x-max-length-bytes`, `x-max-priority`; they win over the same keys in `queueArguments`.
 */
import type { Channel } from './channel.js';
import { NotBoundError } from './errors.js';
import { Exchange } from './exchange.js';
import { Message } from './message.js';
import { checkCount, checkSeconds } from './seconds.js';
import type { QueueDeclaration, QueueDeclareOk } from './transports/transport.js';

/**
 * kombu's `binding(exchange, routing_key, arguments, unbind_arguments)`: an extra binding of a
 * queue. Usually made with {@link binding}.
 *
 * @example
 * ```ts
 * const b = new Binding(new Exchange('logs'), { routingKey: 'error' });
 * await b.bind(queue.bind(channel));
 * ```
 */
export class Binding {
  readonly exchange: Exchange;
  readonly routingKey: string;
  readonly arguments: Record<string, unknown> | undefined;
  readonly unbindArguments: Record<string, unknown> | undefined;

  constructor(exchange: Exchange | string, options: { routingKey?: string; arguments?: Record<string, unknown>; unbindArguments?: Record<string, unknown> } = {}) {
    this.exchange = typeof exchange === 'string' ? new Exchange(exchange) : exchange;
    this.routingKey = options.routingKey ?? '';
    this.arguments = options.arguments;
    this.unbindArguments = options.unbindArguments;
  }

  /** Declares the binding's exchange. */
  async declare(channel: Channel): Promise<void> {
    await this.exchange.declare({ channel });
  }

  /** Binds `queue` with this binding. */
  async bind(queue: Queue, channel: Channel = queue.channel): Promise<void> {
    await queue.bindTo(this.exchange, { routingKey: this.routingKey, ...(this.arguments ? { arguments: this.arguments } : {}), channel });
  }

  /** Unbinds `queue` from this binding. */
  async unbind(queue: Queue, channel: Channel = queue.channel): Promise<void> {
    const args = this.unbindArguments ?? this.arguments;
    await queue.unbindFrom(this.exchange, { routingKey: this.routingKey, ...(args ? { arguments: args } : {}), channel });
  }

  toString(): string {
    return `<binding: ${this.exchange.name}->${this.routingKey}>`;
  }
}

/**
 * An extra binding for `Queue({ bindings: [...] })` (kombu's `kombu.binding`).
 *
 * @example
 * ```ts
 * const q = new Queue('all-logs', { bindings: [binding(logs, { routingKey: 'error' }), binding(logs, { routingKey: 'info' })] });
 * ```
 */
export function binding(exchange: Exchange | string, options: { routingKey?: string; arguments?: Record<string, unknown>; unbindArguments?: Record<string, unknown> } = {}): Binding {
  return new Binding(exchange, options);
}

/** Options of {@link Queue}. Durations are seconds. */
export interface QueueOptions {
  /** The exchange of the main binding (a name makes a direct exchange). Default: none. */
  exchange?: Exchange | string;
  /** Routing key of the main binding (default ''). */
  routingKey?: string;
  /** More bindings, declared with the queue. */
  bindings?: Binding[];
  /** Survives a broker restart (default true). */
  durable?: boolean;
  /** Only this connection may use it; implies `autoDelete` (default false). */
  exclusive?: boolean;
  /** Deleted when its last consumer is cancelled (default false). */
  autoDelete?: boolean;
  /** Only check that the queue exists when declaring. */
  passive?: boolean;
  /** Queue arguments (`x-dead-letter-exchange`...); an alias merged under `queueArguments`. */
  arguments?: Record<string, unknown>;
  /** Queue arguments, as kombu's `queue_arguments`. */
  queueArguments?: Record<string, unknown>;
  /** Arguments of the main binding (headers exchanges: `{ 'x-match': 'all', ... }`). */
  bindingArguments?: Record<string, unknown>;
  /** Arguments of `basic.consume` (`x-priority`...). */
  consumerArguments?: Record<string, unknown>;
  /** Seconds unused before the broker deletes the queue (`x-expires`). */
  expires?: number;
  /** Seconds a message may wait in the queue (`x-message-ttl`). */
  messageTtl?: number;
  /** Most messages kept (`x-max-length`); the oldest are dropped or dead-lettered. */
  maxLength?: number;
  /** Most bytes of bodies kept (`x-max-length-bytes`). */
  maxLengthBytes?: number;
  /** Highest priority honoured (`x-max-priority`). */
  maxPriority?: number;
  /** Consume without acknowledgements (the default of consumers of this queue). */
  noAck?: boolean;
  /** Never declare this queue (it is assumed to exist). */
  noDeclare?: boolean;
  /** Called with the broker's answer after each declare. */
  onDeclared?: (ok: QueueDeclareOk) => void;
}

/**
 * kombu's `to_rabbitmq_queue_arguments`: seconds to ms, limits to `x-` arguments, over `base`.
 *
 * @example
 * ```ts
 * toQueueArguments({ 'x-queue-mode': 'lazy' }, { messageTtl: 1.5, maxPriority: 9 });
 * // { 'x-queue-mode': 'lazy', 'x-message-ttl': 1500, 'x-max-priority': 9 }
 * ```
 */
export function toQueueArguments(base: Record<string, unknown>, options: Pick<QueueOptions, 'expires' | 'messageTtl' | 'maxLength' | 'maxLengthBytes' | 'maxPriority'>): Record<string, unknown> {
  // Checked here, where a bad value would otherwise reach the broker as 'NaN' or a fraction.
  checkSeconds(options.expires, 'expires', { finite: true });
  checkSeconds(options.messageTtl, 'messageTtl', { finite: true });
  for (const name of ['maxLength', 'maxLengthBytes', 'maxPriority'] as const) {
    const value = options[name];
    if (value !== undefined) checkCount(value, name);
  }
  const out: Record<string, unknown> = { ...base };
  if (options.expires !== undefined) out['x-expires'] = Math.trunc(options.expires * 1000);
  if (options.messageTtl !== undefined) out['x-message-ttl'] = Math.trunc(options.messageTtl * 1000);
  if (options.maxLength !== undefined) out['x-max-length'] = options.maxLength;
  if (options.maxLengthBytes !== undefined) out['x-max-length-bytes'] = options.maxLengthBytes;
  if (options.maxPriority !== undefined) out['x-max-priority'] = options.maxPriority;
  return out;
}

/**
 * A queue (kombu's `kombu.Queue`). An empty name lets the broker name it at `declare()`; the
 * name is then set on this object (and on the unbound original, through `maybeDeclare`).
 *
 * @example
 * ```ts
 * const media = new Exchange('media', { type: 'direct' });
 * const video = new Queue('video', { exchange: media, routingKey: 'video', messageTtl: 60, maxPriority: 9 });
 * const bound = video.bind(await conn.channel());
 * await bound.declare();            // exchange, queue (x-message-ttl 60000, x-max-priority 9), binding
 * const message = await bound.get({ noAck: true });
 * ```
 */
export class Queue {
  name: string;
  readonly exchange: Exchange | undefined;
  readonly routingKey: string;
  readonly bindings: Binding[];
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly passive: boolean;
  readonly queueArguments: Record<string, unknown>;
  readonly bindingArguments: Record<string, unknown> | undefined;
  readonly consumerArguments: Record<string, unknown> | undefined;
  readonly noAck: boolean | undefined;
  readonly noDeclare: boolean;
  readonly #options: QueueOptions;
  readonly #channel: Channel | undefined;

  constructor(name = '', options: QueueOptions = {}, channel?: Channel) {
    this.name = name;
    this.#options = options;
    this.exchange = typeof options.exchange === 'string' ? new Exchange(options.exchange) : options.exchange;
    this.routingKey = options.routingKey ?? '';
    this.bindings = [...(options.bindings ?? [])];
    this.durable = options.durable ?? true;
    this.exclusive = options.exclusive ?? false;
    // exclusive implies auto-delete, as in kombu.
    this.autoDelete = this.exclusive || (options.autoDelete ?? false);
    this.passive = options.passive ?? false;
    this.queueArguments = toQueueArguments({ ...(options.arguments ?? {}), ...(options.queueArguments ?? {}) }, options);
    this.bindingArguments = options.bindingArguments;
    this.consumerArguments = options.consumerArguments;
    this.noAck = options.noAck;
    this.noDeclare = options.noDeclare ?? false;
    this.#channel = channel;
  }

  get isBound(): boolean {
    return this.#channel !== undefined;
  }

  /** The channel this copy is bound to; throws `NotBoundError` when unbound. */
  get channel(): Channel {
    if (!this.#channel) throw new NotBoundError(`Can't call method on Queue '${this.name}' not bound to a channel: use queue.bind(channel) first.`);
    return this.#channel;
  }

  /** A copy bound to `channel` (kombu's `queue(channel)`); its exchange is bound too. */
  bind(channel: Channel): Queue {
    const copy = new Queue(this.name, { ...this.#options, ...(this.exchange ? { exchange: this.exchange.bind(channel) } : {}) }, channel);
    return copy;
  }

  /** This queue if bound already, else a copy bound to `channel`. */
  maybeBind(channel: Channel): Queue {
    return this.#channel ? this : this.bind(channel);
  }

  /** The key of declaration caches (kombu hashes `Q|name`). */
  get ident(): string {
    return `Q|${this.name}`;
  }

  /**
   * Whether `maybeDeclare` may remember the declaration: not for auto-delete or expiring queues
   * (kombu's rule: the broker may delete them behind our back), nor for a queue the broker is
   * still to name.
   */
  get canCacheDeclaration(): boolean {
    return this.name !== '' && !this.autoDelete && !('x-expires' in this.queueArguments);
  }

  /** The declaration the transport takes. */
  declaration(passive = this.passive): QueueDeclaration {
    return { name: this.name, durable: this.durable, exclusive: this.exclusive, autoDelete: this.autoDelete, arguments: { ...this.queueArguments }, passive };
  }

  /** Declares the exchange, the queue and its bindings (kombu's `declare`); resolves with the queue's name. */
  async declare(options: { channel?: Channel } = {}): Promise<string> {
    if (this.noDeclare) return this.name;
    const channel = options.channel ?? this.channel;
    if (this.exchange) await this.exchange.declare({ channel });
    await this.queueDeclare({ channel });
    if (this.exchange?.name) await this.queueBind({ channel });
    for (const b of this.bindings) {
      await b.declare(channel);
      await b.bind(this, channel);
    }
    return this.name;
  }

  /** Declares the queue only; `passive` checks it exists. Resolves with the broker's counts. */
  async queueDeclare(options: { passive?: boolean; channel?: Channel } = {}): Promise<QueueDeclareOk> {
    const ok = await (options.channel ?? this.channel).declareQueue(this.declaration(options.passive ?? this.passive));
    if (!this.name) this.name = ok.queue;
    this.#options.onDeclared?.(ok);
    return ok;
  }

  /** Creates the main binding (to `exchange` with `routingKey`). */
  async queueBind(options: { channel?: Channel } = {}): Promise<void> {
    if (!this.exchange) throw new NotBoundError(`Queue '${this.name}' has no exchange to bind to.`);
    await this.bindTo(this.exchange, { routingKey: this.routingKey, ...(this.bindingArguments ? { arguments: this.bindingArguments } : {}), ...options });
  }

  /** Binds the queue to `exchange`. */
  async bindTo(exchange: Exchange | string, options: { routingKey?: string; arguments?: Record<string, unknown>; channel?: Channel } = {}): Promise<void> {
    const name = typeof exchange === 'string' ? exchange : exchange.name;
    await (options.channel ?? this.channel).bindQueue(this.name, name, options.routingKey ?? '', options.arguments);
  }

  /** Removes a binding to `exchange`. */
  async unbindFrom(exchange: Exchange | string, options: { routingKey?: string; arguments?: Record<string, unknown>; channel?: Channel } = {}): Promise<void> {
    const name = typeof exchange === 'string' ? exchange : exchange.name;
    await (options.channel ?? this.channel).unbindQueue(this.name, name, options.routingKey ?? '', options.arguments);
  }

  /** Removes the main binding (kombu's `queue.unbind()`). */
  async unbind(options: { channel?: Channel } = {}): Promise<void> {
    if (!this.exchange) return;
    await this.unbindFrom(this.exchange, { routingKey: this.routingKey, ...(this.bindingArguments ? { arguments: this.bindingArguments } : {}), ...options });
  }

  /**
   * Fetches one message (`basic.get`), or undefined when the queue is empty. `noAck` defaults
   * to the queue's; `accept` limits what `message.decode()` will deserialize.
   */
  async get(options: { noAck?: boolean; accept?: Iterable<string>; channel?: Channel } = {}): Promise<Message | undefined> {
    const channel = options.channel ?? this.channel;
    const noAck = options.noAck ?? this.noAck ?? false;
    const got = await channel.get(this.name, { noAck });
    if (!got) return undefined;
    return new Message(got.message, { channel, epoch: got.epoch, noAck, accept: options.accept });
  }

  /** Deletes every ready message; resolves with how many. */
  async purge(options: { channel?: Channel } = {}): Promise<number> {
    return (options.channel ?? this.channel).purgeQueue(this.name);
  }

  /** Deletes the queue; `ifUnused` / `ifEmpty` make the broker refuse otherwise. Resolves with the messages deleted. */
  async delete(options: { ifUnused?: boolean; ifEmpty?: boolean; channel?: Channel } = {}): Promise<number> {
    const { channel, ...rest } = options;
    return (channel ?? this.channel).deleteQueue(this.name, rest);
  }

  /** Same name, exchange, routing key and settings (kombu's `__eq__`). */
  equals(other: unknown): boolean {
    if (!(other instanceof Queue)) return false;
    return (
      this.name === other.name &&
      this.routingKey === other.routingKey &&
      this.durable === other.durable &&
      this.exclusive === other.exclusive &&
      this.autoDelete === other.autoDelete &&
      (this.exchange ? this.exchange.equals(other.exchange) : other.exchange === undefined) &&
      JSON.stringify(this.queueArguments) === JSON.stringify(other.queueArguments)
    );
  }

  toString(): string {
    return `Queue ${this.name || "''"} -> ${this.exchange?.toString() ?? 'no exchange'} -> ${this.routingKey}`;
  }
}
