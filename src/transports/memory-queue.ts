/**
 * One queue of the in-process `memory://` broker: its ready messages and its consumers.
 *
 * Why it looks like this:
 * - Priorities are buckets (one deque per level up to `x-max-priority`), read highest first;
 *   a message's priority is capped at the maximum, as RabbitMQ does.
 * - TTL (`x-message-ttl` and per-message `expiration`) is fixed when the message enters the
 *   queue, and expired messages are discarded when they reach the head of the queue (RabbitMQ's
 *   rule for per-message TTL). No timer per message: the broker keeps one per queue whose
 *   expired messages must be dead-lettered on time (see memory-vhost.ts).
 * - `x-max-length` drops from the head (the oldest of the lowest priority first) and hands the
 *   dropped messages back so the broker can dead-letter them; with `x-overflow`
 *   `reject-publish(-dlx)` a full queue refuses new messages instead (the broker nacks them).
 * - Consumers are served round-robin; the broker asks each consumer's channel whether it may
 *   take one more (prefetch), so the queue knows nothing about channels.
 */
import type { MessageProperties, RawMessage } from './transport.js';
import { queueArguments, type Overflow } from './memory-queue-arguments.js';

export type { Overflow } from './memory-queue-arguments.js';

/** A message in a queue: bytes and properties copied at publish, never shared with the caller. */
export interface StoredMessage {
  readonly body: Buffer;
  readonly properties: MessageProperties;
  readonly exchange: string;
  readonly routingKey: string;
  readonly redelivered: boolean;
  /** Absolute time (ms, broker clock) after which the message is dead; undefined = never. */
  readonly expiresAt: number | undefined;
  /**
   * For a message whose TTL had run out as it arrived (TTL 0): the last delivery-pump run
   * that may still hand it to a consumer, as RabbitMQ delivers it if a consumer can take it
   * at once. Any later look at it finds it expired.
   */
  readonly graceRun?: number;
  /** Its place in its queue (set by the queue): a requeued message goes back there. */
  readonly seq: number;
}

/** A message on its way into a queue, which gives it its place. */
export type IncomingMessage = Omit<StoredMessage, 'seq'>;

/** What the queue needs of a consumer's channel. */
export interface DeliveryTarget {
  /** Whether the channel may take one more message for `consumer` (open, under prefetch). */
  canDeliver(consumer: MemoryConsumer): boolean;
  /** Hands a message over (the channel numbers it and remembers it until acked). */
  deliver(consumer: MemoryConsumer, queue: MemoryQueue, message: StoredMessage): void;
  /** The broker cancelled the consumer (its queue was deleted). */
  brokerCancel(consumer: MemoryConsumer): void;
}

/** One consumer of a queue. */
export interface MemoryConsumer {
  readonly tag: string;
  readonly queue: MemoryQueue;
  readonly channel: DeliveryTarget;
  readonly noAck: boolean;
  readonly exclusive: boolean;
  readonly onMessage: (message: RawMessage) => void;
  /** The channel's per-consumer prefetch (qos global=false) when the consumer started; 0 = none. */
  readonly prefetch: number;
  /** Its deliveries not yet acked (noAck deliveries never count). */
  unacked: number;
}

/** A double-ended queue on a growable ring buffer: O(1) at both ends. */
class Deque<T> {
  private items: (T | undefined)[] = new Array<T | undefined>(16);
  private head = 0;
  length = 0;

  push(item: T): void {
    if (this.length === this.items.length) this.grow();
    this.items[(this.head + this.length) % this.items.length] = item;
    this.length++;
  }

  unshift(item: T): void {
    if (this.length === this.items.length) this.grow();
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = item;
    this.length++;
  }

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.items[this.head];
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.length--;
    return item;
  }

  /** Inserts `item` before the first item from the head that `before(existing)` says it precedes. */
  insert(item: T, before: (existing: T) => boolean): void {
    const skipped: T[] = [];
    for (let head = this.peek(); head !== undefined && !before(head); head = this.peek()) skipped.push(this.shift() as T);
    this.unshift(item);
    for (let i = skipped.length - 1; i >= 0; i--) this.unshift(skipped[i] as T);
  }

  /** Keeps the items `keep` accepts, in order; returns the others. */
  filter(keep: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    while (this.length > 0) {
      const item = this.shift() as T;
      (keep(item) ? kept : removed).push(item);
    }
    for (const item of kept) this.push(item);
    return removed;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.items.length * 2);
    for (let i = 0; i < this.length; i++) next[i] = this.items[(this.head + i) % this.items.length];
    this.items = next;
    this.head = 0;
  }
}

export interface QueueOptions {
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: Readonly<Record<string, unknown>>;
  /** The connection that owns an exclusive queue. */
  owner: object | undefined;
}

/** A queue of the memory broker. Created by the broker, never by users. */
export class MemoryQueue {
  readonly name: string;
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly owner: object | undefined;
  readonly maxPriority: number;
  readonly messageTtl: number | undefined;
  readonly maxLength: number | undefined;
  /** `x-max-length-bytes`: the most body bytes of ready messages. */
  readonly maxLengthBytes: number | undefined;
  /** `x-single-active-consumer`: only the earliest consumer gets messages; the next takes over when it goes. */
  readonly singleActiveConsumer: boolean;
  /** `x-overflow`: what a full queue does with a new message (RabbitMQ's three modes). */
  readonly overflow: Overflow;
  readonly deadLetterExchange: string | undefined;
  readonly deadLetterRoutingKey: string | undefined;
  /** `x-expires`: ms of disuse after which the queue is deleted. */
  readonly expires: number | undefined;
  lastUsed: number;
  readonly consumers: MemoryConsumer[] = [];
  hadConsumer = false;
  deleted = false;
  private readonly buckets: Deque<StoredMessage>[];
  private roundRobin = 0;
  private lastSeq = 0;
  private size = 0;
  private bytes = 0;

  constructor(options: QueueOptions, now: number) {
    const args = options.arguments;
    this.name = options.name;
    this.durable = options.durable;
    this.exclusive = options.exclusive;
    this.autoDelete = options.autoDelete;
    this.arguments = { ...args };
    this.owner = options.owner;
    const parsed = queueArguments(args, this.name);
    this.maxPriority = parsed.maxPriority;
    this.messageTtl = parsed.messageTtl;
    this.maxLength = parsed.maxLength;
    this.maxLengthBytes = parsed.maxLengthBytes;
    this.overflow = parsed.overflow;
    this.expires = parsed.expires;
    this.deadLetterExchange = parsed.deadLetterExchange;
    this.deadLetterRoutingKey = parsed.deadLetterRoutingKey;
    this.singleActiveConsumer = parsed.singleActiveConsumer;
    this.buckets = Array.from({ length: this.maxPriority + 1 }, () => new Deque<StoredMessage>());
    this.lastUsed = now;
  }

  /** Ready messages (expired ones not yet reaped included). */
  get messageCount(): number {
    return this.size;
  }

  /** When a message entering now expires, from the queue TTL and the message's `expiration`. */
  expiryFor(properties: MessageProperties, now: number): number | undefined {
    const perMessage = properties.expiration === undefined ? undefined : Number(properties.expiration);
    const ttl = perMessage === undefined ? this.messageTtl : this.messageTtl === undefined ? perMessage : Math.min(perMessage, this.messageTtl);
    return ttl === undefined ? undefined : now + ttl;
  }

  /**
   * True when `x-overflow` refuses new messages (`reject-publish*`) and `message` would take
   * the queue past `x-max-length` or `x-max-length-bytes` (RabbitMQ's check: after adding it).
   */
  refuses(message: IncomingMessage): boolean {
    if (this.overflow === 'drop-head') return false;
    return (this.maxLength !== undefined && this.size + 1 > this.maxLength) || (this.maxLengthBytes !== undefined && this.bytes + message.body.length > this.maxLengthBytes);
  }

  /**
   * Appends a message; returns the messages `x-max-length(-bytes)` pushed out (to
   * dead-letter): heads are dropped while the queue is over a limit, so a message larger
   * than `x-max-length-bytes` on its own goes too, as on RabbitMQ.
   */
  push(incoming: IncomingMessage): StoredMessage[] {
    const message: StoredMessage = { ...incoming, seq: ++this.lastSeq };
    this.bucketOf(message).push(message);
    this.added(message);
    const dropped: StoredMessage[] = [];
    while (this.overLimit()) {
      const bucket = this.buckets.find((b) => b.length > 0);
      const head = bucket?.shift();
      if (head === undefined) break;
      this.removed(head);
      dropped.push(head);
    }
    return dropped;
  }

  /**
   * Puts a message back where it was in its priority level (requeue), before every message
   * published after it: RabbitMQ's classic queues requeue to the original position.
   */
  unshift(message: StoredMessage): void {
    this.bucketOf(message).insert(message, (existing) => existing.seq > message.seq);
    this.added(message);
  }

  /**
   * The next live message, highest priority first; expired heads go to `onExpired`. The
   * delivery pump passes its `run`, in which a TTL-0 message may still be delivered.
   */
  shift(now: number, onExpired: (message: StoredMessage) => void, run?: number): StoredMessage | undefined {
    for (let p = this.buckets.length - 1; p >= 0; p--) {
      const bucket = this.buckets[p]!;
      for (let message = bucket.shift(); message !== undefined; message = bucket.shift()) {
        this.removed(message);
        const graced = run !== undefined && message.graceRun !== undefined && run <= message.graceRun;
        if (message.expiresAt !== undefined && now >= message.expiresAt && !graced) onExpired(message);
        else return message;
      }
    }
    return undefined;
  }

  /** When the earliest head of a priority level expires (RabbitMQ expires messages at the head). */
  nextExpiry(): number | undefined {
    let earliest: number | undefined;
    for (const bucket of this.buckets) {
      const at = bucket.peek()?.expiresAt;
      if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at;
    }
    return earliest;
  }

  /** Removes the expired messages at the heads of the priority levels, handing them to `onExpired`. */
  expireHeads(now: number, onExpired: (message: StoredMessage) => void): void {
    for (const bucket of this.buckets) {
      for (let head = bucket.peek(); head?.expiresAt !== undefined && now >= head.expiresAt; head = bucket.peek()) {
        bucket.shift();
        this.removed(head);
        onExpired(head);
      }
    }
  }

  /** Reaps every expired message, wherever it is (used where an exact count matters). */
  sweep(now: number, onExpired: (message: StoredMessage) => void): void {
    for (const bucket of this.buckets) {
      const expired = bucket.filter((m) => m.expiresAt === undefined || now < m.expiresAt);
      for (const m of expired) this.removed(m);
      expired.forEach(onExpired);
    }
  }

  /** Drops every ready message; returns how many. */
  purge(): number {
    const count = this.size;
    for (const bucket of this.buckets) bucket.filter(() => false);
    this.size = 0;
    this.bytes = 0;
    return count;
  }

  addConsumer(consumer: MemoryConsumer): void {
    this.consumers.push(consumer);
    this.hadConsumer = true;
  }

  removeConsumer(consumer: MemoryConsumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index < 0) return;
    this.consumers.splice(index, 1);
    if (this.roundRobin > index) this.roundRobin--;
  }

  /**
   * The next consumer, round-robin, that `accept` says may take a message now; with
   * `x-single-active-consumer`, only the earliest consumer is ever asked.
   */
  nextConsumer(accept: (consumer: MemoryConsumer) => boolean): MemoryConsumer | undefined {
    if (this.singleActiveConsumer) {
      const active = this.consumers[0];
      return active !== undefined && accept(active) ? active : undefined;
    }
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const index = (this.roundRobin + i) % n;
      const consumer = this.consumers[index]!;
      if (accept(consumer)) {
        this.roundRobin = (index + 1) % n;
        return consumer;
      }
    }
    return undefined;
  }

  private added(message: StoredMessage): void {
    this.size++;
    this.bytes += message.body.length;
  }

  private removed(message: StoredMessage): void {
    this.size--;
    this.bytes -= message.body.length;
  }

  private overLimit(): boolean {
    return (this.maxLength !== undefined && this.size > this.maxLength) || (this.maxLengthBytes !== undefined && this.bytes > this.maxLengthBytes);
  }

  private bucketOf(message: StoredMessage): Deque<StoredMessage> {
    const raw = Math.floor(Number(message.properties.priority ?? 0));
    const priority = Number.isFinite(raw) ? Math.max(0, Math.min(this.maxPriority, raw)) : 0;
    return this.buckets[priority]!;
  }
}
