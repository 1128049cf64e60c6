/**
 * A channel of the in-process `memory://` transport.
 *
 * Why it looks like this:
 * - Every request is answered at once from broker state, but through a Promise, so callers
 *   see the same shape as on a real broker. A refusal (`BrokerRefusal`) closes the channel
 *   with a `ChannelError` carrying the AMQP code and the class/method ids of the call, as
 *   RabbitMQ closes a channel on a channel exception; the request's promise rejects with it.
 *   A connection exception (503 unknown exchange type, 530 reused consumer tag) closes the
 *   whole connection instead, and the request rejects with that `ConnectionError`, as on RabbitMQ.
 * - Prefetch (`qos`) follows RabbitMQ: with `global` false (the default) the count limits each
 *   consumer started after the call on its own (a consumer keeps the limit it started with);
 *   with `global` true it limits the channel's consumer deliveries together. Both may apply.
 *   `noAck` deliveries and `get()` results never count, as in RabbitMQ.
 * - A publish with `confirm` rejects with `MessageNacked` when a queue it was routed to refused
 *   it (`x-overflow` reject-publish), as RabbitMQ nacks it; without `confirm` it is just lost.
 * - Delivery tags are per-channel integers from 1, shared by `get()` and consumers.
 * - Unknown or twice-settled delivery tags close the channel with 406 PRECONDITION_FAILED
 *   (`ack`/`reject` do not throw: the error arrives as the `close` event, as on RabbitMQ).
 * - When the channel closes for any reason, its unacked messages return to their places in their
 *   queues flagged `redelivered`.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { ChannelError, MessageNacked, channelRefusalRecoverable, type KombuError } from '../errors.js';
import type {
  ConsumeOptions,
  DeliveryInfo,
  ExchangeDeclaration,
  MessageProperties,
  PublishOptions,
  QueueDeclaration,
  QueueDeclareOk,
  RawMessage,
  TransportChannel,
  TransportChannelEvents,
} from './transport.js';
import type { DeliveryTarget, MemoryConsumer, MemoryQueue, StoredMessage } from './memory-queue.js';
import { BrokerRefusal, ReplyCode, copyProperties, isConnectionException } from './memory-routing.js';
import type { MemoryVhost } from './memory-vhost.js';

/** AMQP class and method ids, reported on the ChannelError of a refused call. */
const METHOD = {
  exchangeDeclare: [40, 10],
  exchangeDelete: [40, 20],
  queueDeclare: [50, 10],
  queueBind: [50, 20],
  queuePurge: [50, 30],
  queueDelete: [50, 40],
  queueUnbind: [50, 50],
  qos: [60, 10],
  consume: [60, 20],
  cancel: [60, 30],
  publish: [60, 40],
  get: [60, 70],
  ack: [60, 80],
  reject: [60, 90],
  recover: [60, 110],
} as const satisfies Record<string, readonly [number, number]>;

type Method = keyof typeof METHOD;

/** What a channel needs of its connection. */
export interface ChannelOwner {
  readonly vhost: MemoryVhost;
  readonly isOpen: boolean;
  readonly blocked: boolean;
  /** The error calls on a closed connection reject with. */
  closedError(): KombuError;
  waitUnblocked(): Promise<void>;
  channelClosed(channel: MemoryChannel): void;
  /** Closes the connection on a connection exception; returns the error it closed with. */
  connectionException(code: number, text: string): KombuError;
}

interface Unacked {
  readonly queue: MemoryQueue;
  readonly message: StoredMessage;
  /** The consumer it was delivered to (counted against prefetch); undefined for `get()`. */
  readonly consumer: MemoryConsumer | undefined;
}

function toRawMessage(message: StoredMessage, deliveryTag: number, consumerTag: string | undefined, messageCount: number | undefined): RawMessage {
  const deliveryInfo: DeliveryInfo = { exchange: message.exchange, routingKey: message.routingKey, deliveryTag, redelivered: message.redelivered };
  if (consumerTag !== undefined) deliveryInfo.consumerTag = consumerTag;
  if (messageCount !== undefined) deliveryInfo.messageCount = messageCount;
  return { body: Buffer.from(message.body), properties: copyProperties(message.properties), deliveryInfo };
}

/** A channel on a memory connection. Made by `MemoryConnection.createChannel()`. */
export class MemoryChannel extends EventEmitter<TransportChannelEvents> implements TransportChannel, DeliveryTarget {
  readonly id: number;
  private open = true;
  private closeError: KombuError | undefined;
  private nextTag = 1;
  /** qos global=false: the limit of each consumer started from now on. */
  private consumerPrefetch = 0;
  /** qos global=true: the limit of all the channel's consumers together. */
  private channelPrefetch = 0;
  private counted = 0;
  private readonly unacked = new Map<number, Unacked>();
  private readonly consumers = new Map<string, MemoryConsumer>();

  constructor(
    private readonly owner: ChannelOwner,
    id: number,
  ) {
    super();
    this.id = id;
  }

  get isOpen(): boolean {
    return this.open;
  }

  private get vhost(): MemoryVhost {
    return this.owner.vhost;
  }

  declareExchange(declaration: ExchangeDeclaration): Promise<void> {
    return this.run('exchangeDeclare', () => this.vhost.declareExchange(declaration));
  }

  deleteExchange(name: string, options: { ifUnused?: boolean } = {}): Promise<void> {
    return this.run('exchangeDelete', () => this.vhost.deleteExchange(name, options.ifUnused ?? false));
  }

  declareQueue(declaration: QueueDeclaration): Promise<QueueDeclareOk> {
    return this.run('queueDeclare', () => this.vhost.declareQueue(declaration, this.owner));
  }

  bindQueue(queue: string, exchange: string, routingKey: string, args: Record<string, unknown> = {}): Promise<void> {
    return this.run('queueBind', () => this.vhost.bindQueue(queue, exchange, routingKey, args, this.owner));
  }

  unbindQueue(queue: string, exchange: string, routingKey: string, args: Record<string, unknown> = {}): Promise<void> {
    return this.run('queueUnbind', () => this.vhost.unbindQueue(queue, exchange, routingKey, args, this.owner));
  }

  deleteQueue(name: string, options: { ifUnused?: boolean; ifEmpty?: boolean } = {}): Promise<number> {
    return this.run('queueDelete', () => this.vhost.deleteQueue(name, options, this.owner));
  }

  purgeQueue(name: string): Promise<number> {
    return this.run('queuePurge', () => this.vhost.purgeQueue(name, this.owner));
  }

  async publish(body: Buffer, properties: MessageProperties, exchange: string, routingKey: string, options: PublishOptions = {}): Promise<void> {
    this.assertOpen('publish');
    if (this.owner.blocked) await this.owner.waitUnblocked();
    return this.run('publish', () => {
      const { routed, refused } = this.vhost.publish(body, properties, exchange, routingKey);
      if (refused && options.confirm) throw new MessageNacked(`The broker nacked a message published on channel ${this.id} (a full queue refused it: x-overflow)`);
      if (routed === 0 && options.mandatory) {
        const deliveryInfo: DeliveryInfo = { exchange, routingKey, deliveryTag: 0, redelivered: false };
        emitSafely(this, 'return', { body: Buffer.from(body), properties: copyProperties(properties), deliveryInfo, replyCode: ReplyCode.NO_ROUTE, replyText: 'NO_ROUTE' });
      }
    });
  }

  get(queue: string, options: { noAck: boolean }): Promise<RawMessage | undefined> {
    return this.run('get', () => {
      const got = this.vhost.get(queue, this.owner);
      if (!got) return undefined;
      const tag = this.nextTag++;
      if (!options.noAck) this.unacked.set(tag, { queue: got.queue, message: got.message, consumer: undefined });
      return toRawMessage(got.message, tag, undefined, got.messageCount);
    });
  }

  /**
   * Starts a consumer. `onMessage` runs later, never inside the call that published. If it
   * throws, the error is rethrown from a microtask (loud, like amqplib), and the delivery
   * stays unacknowledged.
   */
  consume(queue: string, options: ConsumeOptions, onMessage: (message: RawMessage) => void): Promise<string> {
    return this.run('consume', () => {
      const tag = options.consumerTag || `amq.ctag-${randomBytes(16).toString('base64url')}`;
      if (this.consumers.has(tag)) throw new BrokerRefusal(ReplyCode.NOT_ALLOWED, `NOT_ALLOWED - attempt to reuse consumer tag '${tag}'`);
      const exclusive = options.exclusive ?? false;
      const consumer: MemoryConsumer = { tag, queue: this.vhost.consumerQueue(queue, this.owner, exclusive), channel: this, noAck: options.noAck, exclusive, onMessage, prefetch: this.consumerPrefetch, unacked: 0 };
      this.consumers.set(tag, consumer);
      this.vhost.addConsumer(consumer);
      return tag;
    });
  }

  cancel(consumerTag: string): Promise<void> {
    return this.run('cancel', () => {
      const consumer = this.consumers.get(consumerTag);
      if (!consumer) return;
      this.consumers.delete(consumerTag);
      this.vhost.removeConsumer(consumer);
    });
  }

  ack(deliveryTag: number | string, multiple = false): void {
    this.assertOpen('ack');
    const tag = toTag(deliveryTag);
    const tags = multiple ? [...this.unacked.keys()].filter((t) => tag === 0 || t <= tag) : this.unacked.has(tag) ? [tag] : [];
    if (tags.length === 0 && !(multiple && tag === 0)) {
      this.fail(new BrokerRefusal(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - unknown delivery tag ${String(deliveryTag)}`), 'ack');
      return;
    }
    for (const t of tags) this.settle(t);
    this.kick();
  }

  reject(deliveryTag: number | string, requeue: boolean): void {
    this.assertOpen('reject');
    const tag = toTag(deliveryTag);
    const entry = this.settle(tag);
    if (!entry) {
      this.fail(new BrokerRefusal(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - unknown delivery tag ${String(deliveryTag)}`), 'reject');
      return;
    }
    if (requeue) this.vhost.requeue(entry.queue, entry.message);
    else this.vhost.deadLetter(entry.queue, entry.message, 'rejected');
    this.kick();
  }

  /**
   * Sets the prefetch (0 = unlimited): per consumer started from now on, or for the whole
   * channel with `global` (RabbitMQ's reading of basic.qos). `prefetchSize` is ignored.
   */
  qos(prefetchCount: number, _prefetchSize?: number, global = false): Promise<void> {
    return this.run('qos', () => {
      const count = Math.max(0, Math.floor(prefetchCount));
      if (global) this.channelPrefetch = count;
      else this.consumerPrefetch = count;
      this.kick();
    });
  }

  /** Requeues every unacked message (RabbitMQ supports only `requeue: true`; false does the same). */
  recover(_requeue: boolean): Promise<void> {
    return this.run('recover', () => this.requeueAll());
  }

  close(): Promise<void> {
    this.shutdown(undefined);
    return Promise.resolve();
  }

  /** @internal Closes the channel: unacked messages are requeued, consumers removed. */
  shutdown(error: KombuError | undefined): void {
    if (!this.open) return;
    this.open = false;
    this.closeError = error;
    this.requeueAll();
    for (const consumer of this.consumers.values()) this.vhost.removeConsumer(consumer);
    this.consumers.clear();
    this.owner.channelClosed(this);
    emitSafely(this, 'close', error);
  }

  /** @internal */
  canDeliver(consumer: MemoryConsumer): boolean {
    if (!this.open || this.consumers.get(consumer.tag) !== consumer) return false;
    if (consumer.noAck) return true;
    return (consumer.prefetch === 0 || consumer.unacked < consumer.prefetch) && (this.channelPrefetch === 0 || this.counted < this.channelPrefetch);
  }

  /** @internal */
  deliver(consumer: MemoryConsumer, queue: MemoryQueue, message: StoredMessage): void {
    const tag = this.nextTag++;
    if (!consumer.noAck) {
      this.unacked.set(tag, { queue, message, consumer });
      this.counted++;
      consumer.unacked++;
    }
    try {
      consumer.onMessage(toRawMessage(message, tag, consumer.tag, undefined));
    } catch (error) {
      rethrowLater(error);
    }
  }

  /** @internal */
  brokerCancel(consumer: MemoryConsumer): void {
    if (this.consumers.get(consumer.tag) !== consumer) return;
    this.consumers.delete(consumer.tag);
    emitSafely(this, 'cancel', consumer.tag);
  }

  private settle(tag: number): Unacked | undefined {
    const entry = this.unacked.get(tag);
    if (!entry) return undefined;
    this.unacked.delete(tag);
    if (entry.consumer) {
      this.counted--;
      entry.consumer.unacked--;
    }
    return entry;
  }

  private requeueAll(): void {
    const entries = [...this.unacked.values()].reverse();
    this.unacked.clear();
    this.counted = 0;
    for (const consumer of this.consumers.values()) consumer.unacked = 0;
    for (const entry of entries) this.vhost.requeue(entry.queue, entry.message);
    this.kick();
  }

  /** Prefetch room may have opened: let the pump look at this channel's queues again. */
  private kick(): void {
    if (!this.open) return;
    for (const consumer of this.consumers.values()) this.vhost.schedule(consumer.queue);
  }

  private assertOpen(operation: Method): void {
    if (this.open) return;
    if (!this.owner.isOpen) throw this.owner.closedError();
    const reason = this.closeError ? ` (${this.closeError.message})` : '';
    throw new ChannelError(`channel ${this.id} is closed${reason}; cannot ${operation}`, { code: 'CHANNEL_CLOSED', cause: this.closeError });
  }

  private run<T>(operation: Method, fn: () => T): Promise<T> {
    try {
      this.assertOpen(operation);
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(this.fail(error, operation));
    }
  }

  /** Turns a broker refusal into a ChannelError and closes the channel with it (or the connection, on a connection exception). */
  private fail(error: unknown, operation: Method): unknown {
    if (!(error instanceof BrokerRefusal)) return error;
    if (isConnectionException(error.code)) return this.owner.connectionException(error.code, error.message);
    const [classId, methodId] = METHOD[operation];
    const channelError = new ChannelError(error.message, { code: error.code, classId, methodId, recoverable: channelRefusalRecoverable(error.code) });
    this.shutdown(channelError);
    return channelError;
  }
}

/** Rethrows a listener's or callback's error from a microtask: loud, but broker state stays whole. */
export function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** Emits an event; a throwing listener cannot interrupt the state change that emitted it. */
export function emitSafely<Events extends EventEmitter.ValidEventTypes, E extends EventEmitter.EventNames<Events>>(
  emitter: EventEmitter<Events>,
  event: E,
  ...args: EventEmitter.EventArgs<Events, E>
): void {
  try {
    emitter.emit(event, ...args);
  } catch (error) {
    rethrowLater(error);
  }
}

function toTag(tag: number | string): number {
  if (typeof tag === 'number') return tag;
  return /^\d+$/.test(tag) ? Number(tag) : Number.NaN;
}
