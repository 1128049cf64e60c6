/**
 * kombu's simple interface (kombu/simple.py): a queue you `put()` to and `get()` from, like
 * Python's `queue.Queue`, over a Producer and a Consumer.
 *
 * `new SimpleQueue(conn, 'jobs')` declares a direct exchange `jobs`, a queue `jobs` and the
 * binding `jobs`. A blocking `get()` starts a consumer and waits for its next delivery; the
 * deliveries it has not returned yet wait in a local buffer (unacknowledged) and are given
 * back to the broker by `close()` (those of a channel lost since are dropped: the broker
 * delivers them again). `get()` decodes the message before returning it: one that
 * cannot be decoded (content type not in `accept`, corrupt body) is rejected and the error is
 * thrown, as kombu raises it from `get()`. `SimpleBuffer` is the ephemeral variant: a
 * non-durable, auto-delete queue consumed without acknowledgements.
 */
import type { Channel } from './channel.js';
import type { Connection } from './connection.js';
import { Consumer } from './consumer.js';
import { DriverMissingError, Empty, IllegalStateError } from './errors.js';
import { Exchange, type ExchangeOptions } from './exchange.js';
import type { Message } from './message.js';
import { Producer, type ProducerPublishOptions } from './producer.js';
import { Queue, type QueueOptions } from './queue.js';
import { afterSeconds, checkSeconds, type Timer } from './seconds.js';
import { DEFAULT_ACCEPT } from './serialization.js';

/** Options of {@link SimpleQueue} and {@link SimpleBuffer}. */
export interface SimpleQueueOptions {
  /** Get without acknowledgements (SimpleQueue: false, SimpleBuffer: true). */
  noAck?: boolean;
  /** Options of the queue made from a name. */
  queueOpts?: QueueOptions;
  /** Arguments of the queue made from a name (kombu's `queue_args`). */
  queueArgs?: Record<string, unknown>;
  /** Options of the exchange made from a name (default: direct). */
  exchangeOpts?: ExchangeOptions;
  serializer?: string;
  compression?: string;
  /**
   * What `get()` decodes. Default: what `put()` writes, i.e. `json`, `text/plain` (string
   * bodies) and `serializer` when given (bytes, `application/data`, always pass).
   */
  accept?: Iterable<string>;
}

interface Defaults {
  noAck: boolean;
  queueOpts: QueueOptions;
  exchangeOpts: ExchangeOptions;
}

const QUEUE_DEFAULTS: Defaults = { noAck: false, queueOpts: {}, exchangeOpts: { type: 'direct' } };
const BUFFER_DEFAULTS: Defaults = {
  noAck: true,
  queueOpts: { durable: false, autoDelete: true },
  exchangeOpts: { type: 'direct', durable: false, deliveryMode: 'transient', autoDelete: true },
};

/**
 * A persistent queue with a `queue.Queue`-like API (kombu's `SimpleQueue`).
 *
 * @example
 * ```ts
 * const queue = conn.SimpleQueue('jobs');
 * await queue.put({ id: 1 });
 * const message = await queue.get({ timeout: 5 }); // throws Empty after 5 s
 * console.log(message.payload);                    // { id: 1 }
 * message.ack();
 * await queue.close();
 * ```
 */
export class SimpleQueue {
  readonly queue: Queue;
  readonly exchange: Exchange;
  readonly producer: Producer;
  readonly consumer: Consumer;
  readonly noAck: boolean;
  readonly #buffer: Message[] = [];
  readonly #waiters = new Set<{ resolve: (message: Message) => void; reject: (error: Error) => void }>();
  #consuming: Promise<void> | undefined;
  #declared: Promise<string> | undefined;
  #closed = false;

  constructor(channelOrConnection: Channel | Connection, nameOrQueue: string | Queue, options: SimpleQueueOptions = {}, defaults: Defaults = QUEUE_DEFAULTS) {
    this.noAck = options.noAck ?? defaults.noAck;
    let routingKey: string;
    if (nameOrQueue instanceof Queue) {
      this.queue = nameOrQueue;
      this.exchange = nameOrQueue.exchange ?? new Exchange('');
      // A queue on the default exchange is reached by its name.
      routingKey = nameOrQueue.routingKey || (this.exchange.name === '' ? nameOrQueue.name : '');
    } else {
      this.exchange = new Exchange(nameOrQueue, { ...defaults.exchangeOpts, ...(options.exchangeOpts ?? {}) });
      const queueOpts = { ...defaults.queueOpts, ...(options.queueOpts ?? {}) };
      const queueArguments = { ...(queueOpts.queueArguments ?? {}), ...(options.queueArgs ?? {}) };
      this.queue = new Queue(nameOrQueue, { ...queueOpts, exchange: this.exchange, routingKey: nameOrQueue, queueArguments });
      routingKey = nameOrQueue;
    }
    this.consumer = new Consumer(channelOrConnection, [this.queue], {
      // A SimpleQueue reads back what its own put() writes (kombu's accepts every enabled
      // type): with the consumers' json-only default, put('hello') was refused by get() and
      // rejected, i.e. lost.
      accept: options.accept ?? [...DEFAULT_ACCEPT, 'text/plain', ...(options.serializer ? [options.serializer] : [])],
      noAck: this.noAck,
      autoDeclare: false,
      onMessage: (message) => this.#receive(message),
    });
    this.queue = this.consumer.queues[0] ?? this.queue;
    this.producer = new Producer(this.consumer.channel, {
      exchange: this.exchange,
      routingKey,
      ...(options.serializer ? { serializer: options.serializer } : {}),
      ...(options.compression ? { compression: options.compression } : {}),
    });
  }

  /** The channel used. */
  get channel(): Channel {
    return this.consumer.channel;
  }

  #receive(message: Message): void {
    const waiter = this.#waiters.values().next().value;
    if (waiter) {
      this.#waiters.delete(waiter);
      waiter.resolve(message);
    } else this.#buffer.push(message);
  }

  /** Declares the exchange, queue and binding once (the channel restores them after a reconnect). */
  async #ready(): Promise<void> {
    if (this.#closed) throw new IllegalStateError('This SimpleQueue is closed.', 'closed');
    this.#declared ??= this.queue.declare();
    try {
      await this.#declared;
    } catch (error) {
      this.#declared = undefined;
      throw error;
    }
  }

  /**
   * The oldest buffered message that is still ours. A message delivered on a transport channel
   * since lost (an earlier epoch, or the channel is down now) is dropped: the broker puts it
   * back in the queue and delivers it again, so handing it out would give the same message
   * twice (and its ack would send nothing). No-ack messages are never redelivered: kept.
   */
  #nextBuffered(): Message | undefined {
    const channel = this.channel;
    for (;;) {
      const message = this.#buffer.shift();
      if (!message || message.noAck || (message.epoch === channel.epoch && channel.isOpen)) return message;
    }
  }

  /**
   * Decodes before handing out: an undecodable message is rejected and its error thrown (one
   * whose codec is not installed here is left unacknowledged instead: it is not corrupt).
   */
  #handOut(message: Message): Message {
    try {
      message.decode();
    } catch (error) {
      if (!message.acknowledged && !(error instanceof DriverMissingError)) message.reject();
      throw error;
    }
    return message;
  }

  /**
   * The next message. With `block` (default) waits for one, up to `timeout` seconds (default
   * and `Infinity`: forever; 0: only a message already there), and throws `Empty` when none
   * came; without `block` it is {@link getNowait}. A timeout that is no number of seconds >= 0
   * is a `ConfigurationError`.
   */
  async get(options: { block?: boolean; timeout?: number } = {}): Promise<Message> {
    checkSeconds(options.timeout, 'timeout');
    if (options.block === false) return this.getNowait();
    await this.#ready();
    this.#consuming ??= this.consumer.consume({ noAck: this.noAck });
    try {
      await this.#consuming;
    } catch (error) {
      this.#consuming = undefined;
      throw error;
    }
    const buffered = this.#nextBuffered();
    if (buffered) return this.#handOut(buffered);
    const { timeout } = options;
    if (timeout !== undefined && timeout <= 0) throw new Empty(`Queue ${this.queue.name} is empty.`);
    const message = await new Promise<Message>((resolve, reject) => {
      let timer: Timer | undefined;
      const waiter = {
        resolve: (m: Message): void => {
          timer?.cancel();
          resolve(m);
        },
        reject: (e: Error): void => {
          timer?.cancel();
          reject(e);
        },
      };
      this.#waiters.add(waiter);
      if (timeout !== undefined) {
        timer = afterSeconds(timeout, () => {
          this.#waiters.delete(waiter);
          reject(new Empty(`No message in queue ${this.queue.name} within ${timeout} s.`));
        });
      }
    });
    return this.#handOut(message);
  }

  /** The next message without waiting (a buffered one, else `basic.get`); throws `Empty` when there is none. */
  async getNowait(): Promise<Message> {
    const buffered = this.#nextBuffered();
    if (buffered) return this.#handOut(buffered);
    await this.#ready();
    const message = await this.queue.get({ noAck: this.noAck, accept: this.consumer.accept });
    if (!message) throw new Empty(`Queue ${this.queue.name} is empty.`);
    return this.#handOut(message);
  }

  /** Publishes `body` to the queue (options as `Producer.publish`). */
  async put(body: unknown, options: ProducerPublishOptions = {}): Promise<void> {
    await this.#ready();
    await this.producer.publish(body, options);
  }

  /** Messages ready in the broker's queue (not those buffered here). */
  async qsize(): Promise<number> {
    await this.#ready();
    const ok = await this.queue.queueDeclare({ passive: true });
    return ok.messageCount;
  }

  /** Deletes the ready messages (and acknowledges the buffered ones); resolves with how many. */
  async clear(): Promise<number> {
    // Declared first, as kombu's SimpleQueue declares its queue when made: purging a queue
    // that does not exist yet is a 404 that closes the channel.
    await this.#ready();
    const buffered: Message[] = [];
    for (let message = this.#nextBuffered(); message; message = this.#nextBuffered()) buffered.push(message);
    for (const message of buffered) if (!message.acknowledged) message.ack();
    return buffered.length + (await this.consumer.purge());
  }

  /** Cancels the consumer and gives the buffered messages back to the broker. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closed = new IllegalStateError('The SimpleQueue was closed while waiting.', 'closed');
    for (const waiter of this.#waiters) waiter.reject(closed);
    this.#waiters.clear();
    await this.#consuming?.catch(() => undefined);
    await this.consumer.cancel().catch(() => undefined);
    for (const message of this.#buffer.splice(0)) if (!message.acknowledged) message.requeue();
    await this.producer.close();
  }
}

/**
 * An ephemeral SimpleQueue (kombu's `SimpleBuffer`): a non-durable, auto-delete queue and
 * exchange, transient messages, no acknowledgements.
 *
 * @example
 * ```ts
 * const buffer = conn.SimpleBuffer('events');
 * await buffer.put({ type: 'tick' });
 * const message = await buffer.get({ timeout: 1 });
 * await buffer.close();
 * ```
 */
export class SimpleBuffer extends SimpleQueue {
  constructor(channelOrConnection: Channel | Connection, nameOrQueue: string | Queue, options: SimpleQueueOptions = {}) {
    super(channelOrConnection, nameOrQueue, options, BUFFER_DEFAULTS);
  }
}
