/**
 * kombu's `Consumer`: consumes from a list of queues and hands each message to callbacks.
 *
 * How a delivery is handled (kombu's `_receive_callback`):
 * 1. With `onMessage`, the raw {@link Message} goes to it and nothing is decoded: the callback
 *    calls `message.decode()` when it wants the body (and meets the decode errors).
 * 2. Otherwise the body is decoded (decompressed, accept-list checked, deserialized) and every
 *    callback gets `(body, message)`.
 * 3. A message that cannot be decoded (`ContentDisallowed`: its content type is not in
 *    `accept`; `DecodeError`: a corrupt body) goes to `onDecodeError(message, error)`, or when
 *    there is none, to the `error` event. Then, unless the handler settled it itself, it is
 *    rejected without requeue (dead-lettered where the queue says so): never redelivered in a
 *    loop, never dropped without a word. A message this process lacks the codec for (an
 *    optional package not installed: `DriverMissingError` as the error's `cause`) is not
 *    rejected but left unacknowledged, as kombu leaves it: it is not corrupt, and the broker
 *    gives it back when the channel closes.
 * 4. A callback that throws (or whose promise rejects) does not stop the consumer: the error
 *    goes to the `error` event with the message, and the message is handled per
 *    `onCallbackError`: `'leave'` (default, as kombu: left unacknowledged, the broker
 *    redelivers it when the channel closes or reconnects), `'requeue'` (rejected with requeue
 *    at once) or `'reject'` (rejected without requeue).
 *
 * Consumers survive reconnects: their channel restores the queues and consumers on the new
 * transport channel; nothing is needed here.
 */
import { EventEmitter } from 'eventemitter3';
import { Channel } from './channel.js';
import { connectionOf } from './common.js';
import type { Connection } from './connection.js';
import { DecodeError, DriverMissingError, IllegalStateError, SerializationError } from './errors.js';
import { Message } from './message.js';
import { Queue } from './queue.js';
import { DEFAULT_ACCEPT, prepareAcceptContent } from './serialization.js';
import type { RawMessage } from './transports/transport.js';

/**
 * Called with each decoded body and its message. What it returns is ignored, unless it is a
 * Promise: that is waited for, and a rejection counts as a throw (so `(body, message) =>
 * message.ack()` and async functions both fit).
 */
export type ConsumerCallback = (body: unknown, message: Message) => unknown;

/** Options of {@link Consumer}. */
export interface ConsumerOptions {
  /** Called in order with `(body, message)` for each message. */
  callbacks?: ConsumerCallback[];
  /** Called with the undecoded message instead of the callbacks (kombu's `on_message`). */
  onMessage?: (message: Message) => unknown;
  /**
   * Content types or serializer names to decode (default `['json']`; `application/data` and
   * `application/text` always pass). An unknown name throws `SerializationError` from the constructor.
   */
  accept?: Iterable<string>;
  /** Consume without acknowledgements (default: each queue's `noAck`, else false). */
  noAck?: boolean;
  /** Unacknowledged messages the broker may send at once (basic.qos). */
  prefetchCount?: number;
  /** Prefix of the consumer tags (kombu's `tag_prefix`). */
  tagPrefix?: string;
  /** Handles undecodable or refused messages; see the module comment. */
  onDecodeError?: (message: Message, error: SerializationError) => void;
  /** Declare the queues (with their exchanges and bindings) before consuming (default true). */
  autoDeclare?: boolean;
  /** What happens to a message whose callback threw: `'leave'` (default), `'requeue'` or `'reject'`. */
  onCallbackError?: 'leave' | 'requeue' | 'reject';
}

/** Events of a {@link Consumer}. */
export interface ConsumerEvents {
  /** A callback failed, or a message could not be decoded (without `onDecodeError`). */
  error: (error: Error, message: Message | undefined) => void;
}

let nextTag = 1;

/**
 * Consumes messages (kombu's `kombu.Consumer`).
 *
 * @example
 * ```ts
 * const queue = new Queue('images', { exchange: new Exchange('media'), routingKey: 'images' });
 * const consumer = new Consumer(conn, [queue], { prefetchCount: 10, accept: ['json', 'msgpack'] });
 * consumer.registerCallback(async (body, message) => { await resize(body); message.ack(); });
 * consumer.on('error', (error, message) => console.error('failed', message?.deliveryTag, error));
 * await consumer.consume();
 * // ...
 * await consumer.cancel();
 * ```
 */
export class Consumer extends EventEmitter<ConsumerEvents> {
  readonly connection: Connection | undefined;
  callbacks: ConsumerCallback[];
  onMessage: ((message: Message) => unknown) | undefined;
  onDecodeError: ((message: Message, error: SerializationError) => void) | undefined;
  readonly accept: readonly string[];
  noAck: boolean | undefined;
  prefetchCount: number | undefined;
  tagPrefix: string;
  autoDeclare: boolean;
  onCallbackError: 'leave' | 'requeue' | 'reject';
  #channel: Channel | undefined;
  #queues: Queue[] = [];
  #declared = new WeakSet<Queue>();
  #tags = new Map<string, string>();
  #qosApplied = false;
  #lock: Promise<unknown> = Promise.resolve();

  constructor(channelOrConnection: Channel | Connection, queues: Queue | string | (Queue | string)[] = [], options: ConsumerOptions = {}) {
    super();
    if (channelOrConnection instanceof Channel) {
      this.#channel = channelOrConnection;
      this.connection = connectionOf(channelOrConnection);
    } else {
      this.connection = channelOrConnection;
    }
    this.callbacks = [...(options.callbacks ?? [])];
    this.onMessage = options.onMessage;
    this.onDecodeError = options.onDecodeError;
    this.accept = [...(options.accept ?? DEFAULT_ACCEPT)];
    // An unknown serializer name fails here, as kombu's Consumer does: found at decode time
    // instead, it would reject (drop) every message as undecodable.
    prepareAcceptContent(this.accept);
    this.noAck = options.noAck;
    this.prefetchCount = options.prefetchCount;
    this.tagPrefix = options.tagPrefix ?? '';
    this.autoDeclare = options.autoDeclare ?? true;
    this.onCallbackError = options.onCallbackError ?? 'leave';
    for (const q of Array.isArray(queues) ? queues : [queues]) this.#putQueue(this.#bindQueue(q));
  }

  /** The channel consumed on (the connection's default channel unless given one). */
  get channel(): Channel {
    this.#channel ??= (this.connection as Connection).defaultChannel;
    return this.#channel;
  }

  /** The queues, bound to {@link channel}. */
  get queues(): readonly Queue[] {
    return this.#queues;
  }

  /** Consumer tags by queue name, while consuming. */
  get consumerTags(): ReadonlyMap<string, string> {
    return this.#tags;
  }

  #bindQueue(queue: Queue | string): Queue {
    return (typeof queue === 'string' ? new Queue(queue) : queue).maybeBind(this.channel);
  }

  /**
   * One queue per name, as kombu's dict of queues: a queue whose name is already there
   * replaces it in its place (consumed, declared and purged once, not once per copy).
   */
  #putQueue(queue: Queue): void {
    const at = this.#queues.findIndex((q) => q.name === queue.name);
    if (at < 0) this.#queues.push(queue);
    else this.#queues[at] = queue;
  }

  /** Runs `fn` after the previous consume/cancel call settled (they change the same tags). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** Declares every queue (with exchange and bindings). */
  async declare(): Promise<void> {
    for (const queue of this.#queues) {
      await queue.declare();
      this.#declared.add(queue);
    }
  }

  /** Starts consuming from every queue not consumed from yet (declaring them first with `autoDeclare`). */
  consume(options: { noAck?: boolean } = {}): Promise<void> {
    return this.#serial(async () => {
      if (this.prefetchCount !== undefined && !this.#qosApplied) await this.qos({ prefetchCount: this.prefetchCount });
      for (const queue of this.#queues) {
        if (this.autoDeclare && !this.#declared.has(queue)) {
          await queue.declare();
          this.#declared.add(queue);
        }
        if (!this.#tags.has(queue.name)) await this.#basicConsume(queue, options.noAck ?? this.noAck ?? queue.noAck ?? false);
      }
    });
  }

  async #basicConsume(queue: Queue, noAck: boolean): Promise<void> {
    const channel = this.channel;
    const consumerTag = `${this.tagPrefix}${nextTag++}`;
    const tag = await channel.consume(
      queue.name,
      { consumerTag, noAck, ...(queue.consumerArguments ? { arguments: queue.consumerArguments } : {}) },
      (raw, epoch) => this.#deliver(raw, epoch, noAck, channel),
    );
    this.#tags.set(queue.name, tag);
  }

  /** Stops consuming from every queue. */
  cancel(): Promise<void> {
    return this.#serial(async () => {
      const tags = [...this.#tags.values()];
      this.#tags.clear();
      // Every tag, even past a failure: a tag forgotten here but left on the channel would be
      // restored by its recovery, consuming for a Consumer that no longer knows it.
      const failures: unknown[] = [];
      for (const tag of tags) await this.channel.cancel(tag).catch((error: unknown) => failures.push(error));
      if (failures.length > 0) throw failures[0];
    });
  }

  /**
   * Stops consuming from `queue` (a Queue or its name) and removes it from {@link queues}, as
   * kombu's `cancel_by_queue`: a later `consume()` does not start on it again.
   */
  cancelByQueue(queue: Queue | string): Promise<void> {
    const name = typeof queue === 'string' ? queue : queue.name;
    return this.#serial(async () => {
      const tag = this.#tags.get(name);
      this.#tags.delete(name);
      this.#queues = this.#queues.filter((q) => q.name !== name);
      if (tag !== undefined) await this.channel.cancel(tag);
    });
  }

  /** True while consuming from `queue`. */
  consumingFrom(queue: Queue | string): boolean {
    return this.#tags.has(typeof queue === 'string' ? queue : queue.name);
  }

  /**
   * Adds a queue (declared now with `autoDeclare`); the next `consume()` starts on it. One of
   * the same name is replaced, as kombu's `add_queue`. Resolves with the bound queue.
   */
  async addQueue(queue: Queue | string): Promise<Queue> {
    const bound = this.#bindQueue(queue);
    if (this.autoDeclare) {
      await bound.declare();
      this.#declared.add(bound);
    }
    this.#putQueue(bound);
    return bound;
  }

  /** Sets the prefetch window (basic.qos); kept across reconnects. */
  async qos(options: { prefetchCount?: number; prefetchSize?: number; applyGlobal?: boolean } = {}): Promise<void> {
    await this.channel.qos(options.prefetchCount ?? 0, options.prefetchSize ?? 0, options.applyGlobal ?? false);
    this.#qosApplied = true;
  }

  /** Redelivers the channel's unacknowledged messages (basic.recover). */
  async recover(options: { requeue?: boolean } = {}): Promise<void> {
    await this.channel.recover(options.requeue ?? false);
  }

  /** Deletes the ready messages of every queue; resolves with how many. */
  async purge(): Promise<number> {
    let total = 0;
    for (const queue of this.#queues) total += await queue.purge();
    return total;
  }

  /** Adds a callback `(body, message)` (kombu's `register_callback`). */
  registerCallback(callback: ConsumerCallback): void {
    this.callbacks.push(callback);
  }

  /**
   * Calls every callback with a decoded message (kombu's `receive`); resolves when the async
   * ones are done. Throws `IllegalStateError` when there are no callbacks.
   */
  receive(body: unknown, message: Message): void | Promise<void> {
    if (this.callbacks.length === 0) throw new IllegalStateError('Consumer does not have any callbacks: use registerCallback() or onMessage.', 'noCallbacks');
    const pending: Promise<void>[] = [];
    for (const callback of this.callbacks) {
      const result = callback(body, message);
      if (result instanceof Promise) pending.push(result);
    }
    if (pending.length > 0) return Promise.all(pending).then(() => undefined);
  }

  #deliver(raw: RawMessage, epoch: number, noAck: boolean, channel: Channel): void {
    const message = new Message(raw, { channel, epoch, noAck, accept: this.accept });
    const onMessage = this.onMessage;
    if (onMessage) {
      this.#run(() => onMessage(message), message);
      return;
    }
    let body: unknown;
    try {
      body = message.decode();
    } catch (error) {
      this.#decodeFailed(message, error);
      return;
    }
    this.#run(() => this.receive(body, message), message);
  }

  #run(fn: () => unknown, message: Message): void {
    try {
      const result = fn();
      if (result instanceof Promise) result.catch((error: unknown) => this.#callbackFailed(error, message));
    } catch (error) {
      this.#callbackFailed(error, message);
    }
  }

  #callbackFailed(error: unknown, message: Message): void {
    this.emit('error', error instanceof Error ? error : new Error(String(error)), message);
    if (message.acknowledged || this.onCallbackError === 'leave') return;
    try {
      message.reject({ requeue: this.onCallbackError === 'requeue' });
    } catch (failure) {
      this.emit('error', failure as Error, message);
    }
  }

  #decodeFailed(message: Message, error: unknown): void {
    const failure = error instanceof SerializationError ? error : new DecodeError(error instanceof Error ? error.message : String(error), { cause: error });
    if (this.onDecodeError) {
      try {
        this.onDecodeError(message, failure);
      } catch (thrown) {
        this.emit('error', thrown instanceof Error ? thrown : new Error(String(thrown)), message);
      }
    } else {
      this.emit('error', failure, message);
    }
    // A missing codec is this process's problem, not the message's: never drop it for that.
    if (!message.acknowledged && !(error instanceof DriverMissingError)) {
      try {
        message.reject({ requeue: false });
      } catch (thrown) {
        this.emit('error', thrown as Error, message);
      }
    }
  }

  /** Cancels the consumers (kombu's `close`); the channel stays open. */
  close(): Promise<void> {
    return this.cancel();
  }
}
