/**
 * What was declared through one Channel, so that a new transport channel can be given the
 * same state after a channel error or a reconnect: exchanges, queues (server-named ones under
 * the name the broker gave them), bindings, qos and consumers.
 *
 * A Channel creates its registry on the first declaration: a channel that only publishes
 * (the common producer case) carries none of these maps.
 *
 * {@link ChannelRegistry.restore} makes every call at once. While they are answered, other
 * traffic already flows on the new channel: publishes once routing is restored, and the
 * application's acks of deliveries to consumers already restored. A broker error provoked by
 * that traffic is no refusal of the restore: it fails the restore as recoverable.
 */
import { ChannelError } from './errors.js';
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
 * await registry.restore(newChannel, (handler) => (message) => handler(message, epoch), releasePublishes);
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
   * Gives `channel` (new, after a channel error or a reconnect) everything declared: exchanges,
   * qos, queues, bindings, then consumers, in that order. The calls are all made at once: a
   * transport channel takes them in the order made (see TransportChannel), so the whole restore
   * costs one round trip on AMQP. Only what needs a server-named queue's new name (its bindings
   * and consumers) waits for that queue's declaration. `routed` is called once every
   * declaration and binding has been sent: publishes may follow them.
   *
   * Resolves once every call is answered. On failure it rejects with the broker's refusal of
   * one of these calls, if one was refused (the restore cannot succeed); otherwise with the
   * first error, a broker error provoked by other traffic on the channel made recoverable (see
   * {@link restoreFailure}). A consumer cancelled while its restore was under way is cancelled
   * on `channel` too, once the broker has it.
   */
  async restore(channel: TransportChannel, wrap: Wrap<H>, routed: () => void): Promise<void> {
    const calls: Promise<unknown>[] = [];
    for (const exchange of this.#exchanges.values()) calls.push(channel.declareExchange(exchange));
    if (this.#qos) calls.push(channel.qos(...this.#qos));
    // Server-named queues come back under new names: what uses one waits for its declaration.
    let renamed: Map<string, Promise<unknown>> | undefined;
    for (const [name, queue] of this.#queues) {
      const declared = channel.declareQueue(queue);
      calls.push(declared);
      if (queue.name === '') (renamed ??= new Map()).set(name, declared.then((ok) => void this.#renamed.set(name, ok.queue)));
    }
    const then = (queue: string, call: () => Promise<unknown>): Promise<unknown> => {
      const declared = renamed?.get(queue);
      return declared ? declared.then(call) : call();
    };
    const bound = [...this.#bindings.values()].map(([queue, exchange, routingKey, args]) =>
      then(queue, () => channel.bindQueue(this.nameOf(queue), exchange, routingKey, args)));
    calls.push(...bound);
    if (renamed) await Promise.allSettled(renamed.values());
    // Every binding has been sent now (those of server-named queues once their declarations answered).
    routed();
    for (const [tag, consumer] of this.#consumers) {
      calls.push(then(consumer.queue, async () => {
        await channel.consume(this.nameOf(consumer.queue), { ...consumer.options, consumerTag: tag }, wrap(consumer.onMessage));
        if (!this.#consumers.has(tag)) await channel.cancel(tag);
      }));
    }
    const failures = (await Promise.allSettled(calls)).filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    if (failures.length > 0) throw restoreFailure(failures);
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

/**
 * The AMQP methods a restore sends (class << 16 | method): channel.open, confirm.select,
 * exchange.declare, queue.declare, queue.bind, basic.qos, basic.consume, basic.cancel. A
 * broker error naming one of them refused the restore.
 */
const RESTORE_METHODS = new Set([0x14000a, 0x55000a, 0x28000a, 0x32000a, 0x320014, 0x3c000a, 0x3c0014, 0x3c001e]);

/**
 * What a failed restore rejects with, from its calls' errors: the broker's refusal of one of
 * the restore's own calls, if any (irrecoverable: reopening would be refused the same way).
 * Otherwise the first error; an irrecoverable broker error in it that names another method
 * (an ack of an unknown delivery tag, a publish to a missing exchange) was provoked by traffic
 * on the new channel, not by the restore: the channel was lost, and recovers again.
 *
 * One refusal of the restore passes with time: an exclusive consumer refused because its
 * queue is "in exclusive use" (403 on basic.consume). After a network partition the broker
 * still holds the previous connection, and its exclusive consumer, until its own heartbeat
 * check drops it; the restore is tried again (with the channel's backoff) until then.
 */
export function restoreFailure(errors: readonly unknown[]): unknown {
  const refusal = errors.find((error) => error instanceof ChannelError && !error.recoverable && refusedRestore(error));
  if (refusal) return exclusiveUse(refusal as ChannelError) ? recoverable(refusal as ChannelError) : refusal;
  const error = errors[0];
  if (!(error instanceof ChannelError) || error.recoverable || error.classId === undefined) return error;
  return recoverable(error);
}

function recoverable(error: ChannelError): ChannelError {
  return new ChannelError(error.message, {
    cause: error,
    recoverable: true,
    ...(error.code === undefined ? {} : { code: error.code }),
    ...(error.classId === undefined ? {} : { classId: error.classId }),
    ...(error.methodId === undefined ? {} : { methodId: error.methodId }),
  });
}

/** RabbitMQ's refusal of an exclusive consumer while another consumer holds the queue. */
function exclusiveUse(error: ChannelError): boolean {
  return error.code === 403 && error.classId === 60 && error.methodId === 20 && error.message.includes('in exclusive use');
}

function refusedRestore(error: ChannelError): boolean {
  return error.classId !== undefined && error.methodId !== undefined && RESTORE_METHODS.has((error.classId << 16) | error.methodId);
}
