/**
 * The entities of one `memory://` broker: exchanges, queues and bindings, with RabbitMQ's
 * rules for declaring, binding, routing (alternate exchanges included) and dead-lettering.
 * Publishing only enqueues; the {@link DeliveryPump} feeds consumers later.
 *
 * Expired messages that have somewhere to go (`x-dead-letter-exchange`) are dead-lettered on
 * time (memory-expiry.ts); other expired messages are only dropped, lazily, which nobody can
 * tell apart. A message whose TTL has run out as it arrives (TTL 0) may still go to a consumer
 * that can take it at once (RabbitMQ's rule): here, in the next delivery-pump run.
 *
 * Errors are thrown as {@link BrokerRefusal} (AMQP code + RabbitMQ-like text); the channel
 * that made the request turns them into `ChannelError` and closes, as AMQP does.
 */
import { randomBytes } from 'node:crypto';
import type { ExchangeDeclaration, ExchangeType, MessageProperties, QueueDeclaration, QueueDeclareOk } from './transport.js';
import { MemoryQueue, type IncomingMessage, type MemoryConsumer, type StoredMessage } from './memory-queue.js';
import { DeliveryPump } from './memory-pump.js';
import { ExpiryTimers } from './memory-expiry.js';
import { checkExchangeRedeclare, checkQueueRedeclare } from './memory-redeclare.js';
import {
  BrokerRefusal,
  ReplyCode,
  argumentsEqual,
  copyProperties,
  headersMatch,
  isDeadLetterCycle,
  splitWords,
  topicMatches,
  withDeath,
  type DeathReason,
  type MemoryExchange,
} from './memory-routing.js';

type Exchange = MemoryExchange<MemoryQueue>;

const EXCHANGE_TYPES: readonly ExchangeType[] = ['direct', 'topic', 'fanout', 'headers'];
/** RabbitMQ's predeclared exchanges: name, type, internal. */
const BUILTIN: readonly [string, ExchangeType, boolean][] = [
  ['', 'direct', false],
  ['amq.direct', 'direct', false],
  ['amq.fanout', 'fanout', false],
  ['amq.topic', 'topic', false],
  ['amq.headers', 'headers', false],
  ['amq.match', 'headers', false],
  ['amq.rabbitmq.trace', 'topic', true],
];

const refuse = (code: number, text: string) => new BrokerRefusal(code, text);
const notFound = (kind: string, name: string) => refuse(ReplyCode.NOT_FOUND, `NOT_FOUND - no ${kind} '${name}' in vhost '/'`);
/** Exchanges, queues and bindings of one broker, and the pump that feeds consumers. */
export class MemoryVhost {
  private readonly exchanges = new Map<string, Exchange>();
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly pump: DeliveryPump;
  /** Per queue with a dead-letter exchange: the timer that dead-letters its expired heads. */
  private readonly expiry: ExpiryTimers;

  constructor(readonly now: () => number) {
    const expired = (queue: MemoryQueue, message: StoredMessage): void => this.deadLetter(queue, message, 'expired');
    this.pump = new DeliveryPump(now, expired);
    this.expiry = new ExpiryTimers(now, expired);
    this.addBuiltins();
  }

  declareExchange(d: ExchangeDeclaration): void {
    const existing = this.exchanges.get(d.name);
    if (d.passive) {
      if (!existing) throw notFound('exchange', d.name);
      return;
    }
    // Checked before anything else, and a connection error (the channel escalates it), as on RabbitMQ.
    if (!EXCHANGE_TYPES.includes(d.type)) throw refuse(ReplyCode.COMMAND_INVALID, `COMMAND_INVALID - unknown exchange type '${String(d.type)}'`);
    if (d.name === '') throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - operation not permitted on the default exchange`);
    if (existing) {
      checkExchangeRedeclare(existing, d);
      return;
    }
    if (d.name.startsWith('amq.')) throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - exchange name '${d.name}' contains reserved prefix 'amq.*'`);
    this.exchanges.set(d.name, {
      name: d.name,
      type: d.type,
      durable: d.durable,
      autoDelete: d.autoDelete,
      internal: d.internal ?? false,
      arguments: { ...d.arguments },
      bindings: [],
      hadBinding: false,
    });
  }

  deleteExchange(name: string, ifUnused: boolean): void {
    if (name === '' || name.startsWith('amq.')) throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - operation not permitted on exchange '${name}'`);
    const exchange = this.exchanges.get(name);
    if (!exchange) return;
    if (ifUnused && exchange.bindings.length > 0) throw refuse(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - exchange '${name}' in vhost '/' in use`);
    this.exchanges.delete(name);
  }

  declareQueue(d: QueueDeclaration, owner: object): QueueDeclareOk {
    const existing = d.name === '' ? undefined : this.liveQueue(d.name);
    if (existing) {
      this.checkExclusive(existing, owner);
      if (!d.passive) checkQueueRedeclare(existing, d);
      existing.lastUsed = this.now();
      return this.declareOk(existing);
    }
    if (d.passive) throw notFound('queue', d.name);
    if (d.name.startsWith('amq.')) throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - queue name '${d.name}' contains reserved prefix 'amq.*'`);
    const name = d.name === '' ? `amq.gen-${randomBytes(16).toString('base64url')}` : d.name;
    const queue = new MemoryQueue(
      { name, durable: d.durable, exclusive: d.exclusive, autoDelete: d.autoDelete, arguments: d.arguments, owner: d.exclusive ? owner : undefined },
      this.now(),
    );
    this.queues.set(name, queue);
    return this.declareOk(queue);
  }

  bindQueue(queueName: string, exchangeName: string, routingKey: string, args: Record<string, unknown>, owner: object): void {
    const queue = this.requireQueue(queueName, owner);
    const exchange = this.requireExchange(exchangeName);
    if (exchange.name === '') throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - operation not permitted on the default exchange`);
    const same = exchange.bindings.some((b) => b.queue === queue && b.routingKey === routingKey && argumentsEqual(b.args, args));
    if (same) return;
    exchange.bindings.push({ queue, routingKey, args: { ...args }, words: splitWords(routingKey) });
    exchange.hadBinding = true;
  }

  unbindQueue(queueName: string, exchangeName: string, routingKey: string, args: Record<string, unknown>, owner: object): void {
    if (exchangeName === '') throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - operation not permitted on the default exchange`);
    // As RabbitMQ: unbinding what is not there (queue, exchange or binding) is done already,
    // even on another connection's exclusive queue; removing a binding of one is 405.
    const queue = this.liveQueue(queueName);
    const exchange = this.exchanges.get(exchangeName);
    if (!queue || !exchange) return;
    const index = exchange.bindings.findIndex((b) => b.queue === queue && b.routingKey === routingKey && argumentsEqual(b.args, args));
    if (index < 0) return;
    this.checkExclusive(queue, owner);
    exchange.bindings.splice(index, 1);
    this.autoDeleteExchange(exchange);
  }

  deleteQueue(name: string, options: { ifUnused?: boolean; ifEmpty?: boolean }, owner: object): number {
    const queue = this.liveQueue(name);
    if (!queue) return 0;
    this.checkExclusive(queue, owner);
    if (options.ifUnused && queue.consumers.length > 0) throw refuse(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - queue '${name}' in vhost '/' in use`);
    this.reap(queue);
    if (options.ifEmpty && queue.messageCount > 0) throw refuse(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - queue '${name}' in vhost '/' is not empty`);
    return this.removeQueue(queue);
  }

  purgeQueue(name: string, owner: object): number {
    const queue = this.requireQueue(name, owner);
    this.reap(queue);
    return queue.purge();
  }

  /**
   * Routes a message; returns how many queues it was routed to, and whether one refused it
   * (`x-overflow` reject-publish: the publisher gets a nack). Body and properties are copied here.
   */
  publish(body: Buffer, properties: MessageProperties, exchangeName: string, routingKey: string): { routed: number; refused: boolean } {
    const exchange = this.requireExchange(exchangeName);
    if (exchange.internal) throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - cannot publish to internal exchange '${exchangeName}' in vhost '/'`);
    if (properties.expiration !== undefined && !/^\d+$/.test(String(properties.expiration))) {
      throw refuse(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - invalid expiration '${String(properties.expiration)}'`);
    }
    const targets = this.route(exchange, routingKey, properties.headers ?? {});
    if (targets.size === 0) return { routed: 0, refused: false };
    const stored = Buffer.from(body);
    const props = copyProperties(properties);
    const now = this.now();
    let refused = false;
    for (const queue of targets) {
      const taken = this.enqueue(queue, { body: stored, properties: props, exchange: exchangeName, routingKey, redelivered: false, expiresAt: queue.expiryFor(props, now) });
      refused ||= !taken;
    }
    return { routed: targets.size, refused };
  }

  /** Takes one message (basic.get); `messageCount` is what is left. */
  get(name: string, owner: object): { queue: MemoryQueue; message: StoredMessage; messageCount: number } | undefined {
    const queue = this.requireQueue(name, owner);
    queue.lastUsed = this.now();
    const message = queue.shift(this.now(), (m) => this.deadLetter(queue, m, 'expired'));
    return message && { queue, message, messageCount: queue.messageCount };
  }

  /** The queue a consumer may consume from, or a refusal (404, 405, 403 exclusive use). */
  consumerQueue(name: string, owner: object, exclusive: boolean): MemoryQueue {
    const queue = this.requireQueue(name, owner);
    if (queue.consumers.some((c) => c.exclusive) || (exclusive && queue.consumers.length > 0)) {
      throw refuse(ReplyCode.ACCESS_REFUSED, `ACCESS_REFUSED - queue '${name}' in vhost '/' in exclusive use`);
    }
    return queue;
  }

  addConsumer(consumer: MemoryConsumer): void {
    consumer.queue.addConsumer(consumer);
    consumer.queue.lastUsed = this.now();
    this.schedule(consumer.queue);
  }

  /** Removes a consumer; an auto-delete queue goes with its last consumer. */
  removeConsumer(consumer: MemoryConsumer): void {
    const queue = consumer.queue;
    queue.removeConsumer(consumer);
    queue.lastUsed = this.now();
    if (queue.autoDelete && queue.hadConsumer && queue.consumers.length === 0 && !queue.deleted) this.removeQueue(queue);
  }

  /** Puts an unacknowledged message back in its place in its queue, flagged redelivered. */
  requeue(queue: MemoryQueue, message: StoredMessage): void {
    if (queue.deleted) return;
    queue.unshift({ ...message, redelivered: true });
    this.schedule(queue);
    this.expiry.arm(queue);
  }

  /** Dead-letters (or drops, without `x-dead-letter-exchange`) a message leaving `queue`. */
  deadLetter(queue: MemoryQueue, message: IncomingMessage, reason: DeathReason): void {
    const exchange = queue.deadLetterExchange === undefined ? undefined : this.exchanges.get(queue.deadLetterExchange);
    if (!exchange) return;
    const routingKey = queue.deadLetterRoutingKey ?? message.routingKey;
    const { expiration, ...rest } = message.properties;
    const headers = withDeath(rest.headers, { queue: queue.name, reason, exchange: message.exchange, routingKey: message.routingKey, nowMs: this.now(), expiration });
    const properties: MessageProperties = { ...rest, headers };
    const now = this.now();
    for (const target of this.route(exchange, routingKey, headers)) {
      if (isDeadLetterCycle(headers, target.name)) continue;
      this.enqueue(target, { body: message.body, properties, exchange: exchange.name, routingKey, redelivered: false, expiresAt: target.expiryFor(properties, now) });
    }
  }

  /** Deletes the exclusive queues of a connection that closed. */
  ownerClosed(owner: object): void {
    for (const queue of [...this.queues.values()]) if (queue.owner === owner) this.removeQueue(queue);
  }

  /** Counts of a queue (expired messages reaped first), or undefined when there is none. */
  queueInfo(name: string): QueueDeclareOk | undefined {
    const queue = this.liveQueue(name);
    return queue && this.declareOk(queue);
  }

  exchangeNames(): string[] {
    return [...this.exchanges.keys()];
  }

  queueNames(): string[] {
    return [...this.queues.keys()];
  }

  /** Marks a queue as having work for its consumers and schedules the pump. */
  schedule(queue: MemoryQueue): void {
    this.pump.schedule(queue);
  }

  /** Stops (true) or restarts (false) deliveries, for stalled-broker tests. */
  setPaused(paused: boolean): void {
    this.pump.setPaused(paused, this.queues.values());
  }

  /** Forgets every entity and cancels a pending pump. */
  reset(): void {
    this.pump.reset();
    this.expiry.reset();
    for (const queue of this.queues.values()) queue.deleted = true;
    this.queues.clear();
    this.exchanges.clear();
    this.addBuiltins();
  }

  private route(exchange: Exchange, routingKey: string, headers: Readonly<Record<string, unknown>>, seen = new Set<string>()): Set<MemoryQueue> {
    const targets = new Set<MemoryQueue>();
    if (exchange.name === '') {
      const queue = this.liveQueue(routingKey);
      if (queue) targets.add(queue);
      return targets;
    }
    const words = exchange.type === 'topic' ? splitWords(routingKey) : [];
    for (const binding of exchange.bindings) {
      if (binding.queue.expires !== undefined && this.liveQueue(binding.queue.name) !== binding.queue) continue;
      const matched =
        exchange.type === 'fanout' ||
        (exchange.type === 'direct' && binding.routingKey === routingKey) ||
        (exchange.type === 'topic' && topicMatches(binding.words, words)) ||
        (exchange.type === 'headers' && headersMatch(binding.args, headers));
      if (matched) targets.add(binding.queue);
    }
    const alternate = exchange.arguments['alternate-exchange'];
    if (targets.size === 0 && typeof alternate === 'string' && !seen.has(alternate)) {
      const next = this.exchanges.get(alternate);
      seen.add(exchange.name);
      if (next) return this.route(next, routingKey, headers, seen);
    }
    return targets;
  }

  /** Adds a message to a queue; false when the queue refused it (`x-overflow` reject-publish*). */
  private enqueue(queue: MemoryQueue, incoming: IncomingMessage): boolean {
    if (queue.refuses(incoming)) {
      if (queue.overflow === 'reject-publish-dlx') this.deadLetter(queue, incoming, 'maxlen');
      return false;
    }
    // Dead on arrival (TTL 0): deliverable only in the pump's next run, if a consumer can take it.
    const doa = incoming.expiresAt !== undefined && incoming.expiresAt <= this.now();
    const message = doa ? { ...incoming, graceRun: this.pump.nextRun } : incoming;
    for (const dropped of queue.push(message)) this.deadLetter(queue, dropped, 'maxlen');
    this.schedule(queue);
    this.expiry.arm(queue);
    return true;
  }

  private removeQueue(queue: MemoryQueue): number {
    const count = queue.messageCount;
    queue.deleted = true;
    queue.purge();
    this.queues.delete(queue.name);
    this.pump.forget(queue);
    this.expiry.disarm(queue);
    for (const exchange of [...this.exchanges.values()]) {
      const before = exchange.bindings.length;
      for (let i = exchange.bindings.length - 1; i >= 0; i--) if (exchange.bindings[i]!.queue === queue) exchange.bindings.splice(i, 1);
      if (exchange.bindings.length !== before) this.autoDeleteExchange(exchange);
    }
    for (const consumer of queue.consumers.splice(0)) consumer.channel.brokerCancel(consumer);
    return count;
  }

  private autoDeleteExchange(exchange: Exchange): void {
    if (exchange.autoDelete && exchange.hadBinding && exchange.bindings.length === 0) this.exchanges.delete(exchange.name);
  }

  /** The queue by name, after `x-expires` has had its say. */
  private liveQueue(name: string): MemoryQueue | undefined {
    const queue = this.queues.get(name);
    if (queue?.expires !== undefined && queue.consumers.length === 0 && this.now() - queue.lastUsed >= queue.expires) {
      this.removeQueue(queue);
      return undefined;
    }
    return queue;
  }

  private requireQueue(name: string, owner: object): MemoryQueue {
    const queue = this.liveQueue(name);
    if (!queue) throw notFound('queue', name);
    this.checkExclusive(queue, owner);
    return queue;
  }

  private requireExchange(name: string): Exchange {
    const exchange = this.exchanges.get(name);
    if (!exchange) throw notFound('exchange', name);
    return exchange;
  }

  private checkExclusive(queue: MemoryQueue, owner: object): void {
    if (queue.owner !== undefined && queue.owner !== owner) {
      throw refuse(ReplyCode.RESOURCE_LOCKED, `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${queue.name}' in vhost '/'`);
    }
  }

  private reap(queue: MemoryQueue): void {
    queue.sweep(this.now(), (m) => this.deadLetter(queue, m, 'expired'));
  }

  private declareOk(queue: MemoryQueue): QueueDeclareOk {
    this.reap(queue);
    return { queue: queue.name, messageCount: queue.messageCount, consumerCount: queue.consumers.length };
  }

  private addBuiltins(): void {
    for (const [name, type, internal] of BUILTIN) {
      this.exchanges.set(name, { name, type, durable: true, autoDelete: false, internal, arguments: {}, bindings: [], hadBinding: false });
    }
  }
}
