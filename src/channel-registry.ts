/**
 * What was declared through one Channel, so that a new transport channel can be given the
 * same state after a channel error or a reconnect: exchanges, queues (server-named ones under
 * the name the broker gave them), bindings, qos and consumers.
 *
 * A Channel creates its registry on the first declaration: a channel that only publishes
 * (the common producer case) carries none of these maps.
 *
 * Restoring is two steps: {@link ChannelRegistry.restoreDeclarations} (exchanges, queues,
 * bindings, qos), then {@link ChannelRegistry.restoreConsumers}. Once consumers are being
 * restored, deliveries (and so the application's acks) flow on the new channel: the Channel
 * tells a failure of that step caused by such traffic from a refused restore.
 */
import type {
  ConsumeOptions, ExchangeDeclaration, QueueDeclaration, QueueDeclareOk, RawMessage, TransportChannel,
} from './transports/transport.js';

/** Wraps a consumer's handler for the epoch it is (re)registered in. */
export type Wrap<H> = (onMessage: H) => (message: RawMessage) => void;

interface ConsumerRecord<H> {
  queue: string;
  options: ConsumeOptions;
  onMessage: H;
}

type Binding = [queue: string, exchange: string, routingKey: string, args: Record<string, unknown> | undefined];

const key = (...parts: unknown[]): string => JSON.stringify(parts);

/**
 * @example
 * ```ts
 * const registry = new ChannelRegistry<DeliveryHandler>();
 * registry.queueDeclared(declaration, await channel.declareQueue(declaration));
 * await registry.restoreDeclarations(newChannel);
 * await registry.restoreConsumers(newChannel, (handler) => (message) => handler(message, epoch));
 * ```
 */
export class ChannelRegistry<H> {
  readonly #exchanges = new Map<string, ExchangeDeclaration>();
  readonly #queues = new Map<string, QueueDeclaration>();
  /** Server-named queues: the name first given -> the name on the current channel. */
  readonly #renamed = new Map<string, string>();
  readonly #bindings = new Map<string, Binding>();
  readonly #consumers = new Map<string, ConsumerRecord<H>>();
  /** Queues being deleted through this channel: the broker cancels their consumers, which is no reason to resume them. */
  #deleting: Set<string> | undefined;
  #qos: [number, number | undefined, boolean | undefined] | undefined;

  /** The name `queue` has on the current transport channel. */
  nameOf(queue: string): string {
    return this.#renamed.get(queue) ?? queue;
  }

  exchangeDeclared(declaration: ExchangeDeclaration): void {
    if (!declaration.passive) this.#exchanges.set(declaration.name, declaration);
  }

  exchangeDeleted(name: string): void {
    this.#exchanges.delete(name);
    for (const [k, binding] of this.#bindings) if (binding[1] === name) this.#bindings.delete(k);
  }

  queueDeclared(declaration: QueueDeclaration, ok: QueueDeclareOk): void {
    if (declaration.passive) return;
    // A server-named queue is remembered under the name the broker gave it.
    this.#queues.set(declaration.name === '' ? ok.queue : declaration.name, declaration);
    if (declaration.name === '') this.#renamed.set(ok.queue, ok.queue);
  }

  /** `name` is being deleted (`on`) or no longer (`off`): see {@link queueOf}. */
  queueDeleting(name: string, on: boolean): void {
    if (on) (this.#deleting ??= new Set()).add(name);
    else this.#deleting?.delete(name);
  }

  queueDeleted(name: string): void {
    this.#queues.delete(name);
    for (const [k, binding] of this.#bindings) if (binding[0] === name) this.#bindings.delete(k);
    for (const [tag, consumer] of this.#consumers) if (consumer.queue === name) this.#consumers.delete(tag);
  }

  bound(...binding: Binding): void {
    this.#bindings.set(key(...binding), binding);
  }

  unbound(...binding: Binding): void {
    this.#bindings.delete(key(...binding));
  }

  qos(prefetchCount: number, prefetchSize: number | undefined, global: boolean | undefined): void {
    this.#qos = [prefetchCount, prefetchSize, global];
  }

  consumerAdded(tag: string, queue: string, options: ConsumeOptions, onMessage: H): void {
    this.#consumers.set(tag, { queue, options: { ...options, consumerTag: tag }, onMessage });
  }

  consumerRemoved(tag: string): void {
    this.#consumers.delete(tag);
  }

  /** The queue a consumer reads, if the consumer is known and its queue is not being deleted by us. */
  queueOf(tag: string): string | undefined {
    const queue = this.#consumers.get(tag)?.queue;
    return queue !== undefined && this.#deleting?.has(queue) ? undefined : queue;
  }

  /**
   * Declares exchanges and queues again on `channel` and re-applies qos, then binds the queues
   * again (a server-named queue is bound under its new name).
   *
   * Each step's calls are made at once, in order: the transport sends them in that order
   * (amqplib sends each as soon as the previous one is answered, with no turn through this
   * code in between), and a refusal closes the channel, which fails the calls after it.
   */
  async restoreDeclarations(channel: TransportChannel): Promise<void> {
    await Promise.all([
      ...[...this.#exchanges.values()].map((exchange) => channel.declareExchange(exchange)),
      ...[...this.#queues].map(async ([name, queue]) => {
        const ok = await channel.declareQueue(queue);
        if (queue.name === '') this.#renamed.set(name, ok.queue);
      }),
      ...(this.#qos ? [channel.qos(...this.#qos)] : []),
    ]);
    await Promise.all([...this.#bindings.values()].map(([queue, exchange, routingKey, args]) => channel.bindQueue(this.nameOf(queue), exchange, routingKey, args)));
  }

  /**
   * Re-registers every consumer on `channel`, all calls made at once (after
   * {@link restoreDeclarations}: their queues exist, qos applies). A consumer cancelled while
   * its restore was under way is cancelled on `channel` too, once the broker has it.
   */
  async restoreConsumers(channel: TransportChannel, wrap: Wrap<H>): Promise<void> {
    await Promise.all([...this.#consumers].map(async ([tag, consumer]) => {
      await channel.consume(this.nameOf(consumer.queue), { ...consumer.options, consumerTag: tag }, wrap(consumer.onMessage));
      if (!this.#consumers.has(tag)) await channel.cancel(tag);
    }));
  }

  /** After the broker cancelled consumer `tag` (its queue was deleted): declare the queue and its bindings again, and resume it. */
  async resume(channel: TransportChannel, tag: string, wrap: Wrap<H>): Promise<void> {
    const consumer = this.#consumers.get(tag);
    if (!consumer) return;
    const queue = this.#queues.get(consumer.queue);
    if (queue) {
      const ok = await channel.declareQueue(queue);
      // A server-named queue comes back under a new name: bind and consume that one.
      if (queue.name === '') this.#renamed.set(consumer.queue, ok.queue);
    }
    const name = this.nameOf(consumer.queue);
    for (const [q, exchange, routingKey, args] of this.#bindings.values()) {
      if (q === consumer.queue) await channel.bindQueue(name, exchange, routingKey, args);
    }
    if (this.#consumers.has(tag)) {
      await channel.consume(name, { ...consumer.options, consumerTag: tag }, wrap(consumer.onMessage));
    }
  }
}
