/**
 * Channel: a thin facade over one channel actor (machines/channel-machine.ts).
 *
 * The hot path (publish, deliver, ack) goes straight to the live transport channel when the
 * actor says `open`; otherwise calls wait until it is open again (or reject when it can no
 * longer open). The facade remembers what was declared through it (exchanges, queues,
 * bindings, qos, consumers) so that the actor's `recovering` state can restore all of it on a
 * new transport channel after a channel error or a reconnect.
 *
 * What the actor drives (opening and restoring a transport channel, watching it, closing it)
 * is the channel's link (channel-link.ts, `channel.link`), which also holds the live transport
 * channel and its epoch (deliveries carry the epoch, and an ack of an earlier epoch is
 * dropped) and the calls waiting for it. The facade reads both straight from the link on the
 * hot path. Its types are in channel-types.ts.
 *
 * A publish made while the channel is down, or while the broker blocks the connection (flow
 * control, `connection.blocked`), waits (`whenWritable`), bounded in number and time
 * (channel-waiters.ts; Producer passes `maxBufferedMessages` and `publishTimeout`); one whose
 * channel died under it is sent again once the channel is back.
 */
import { EventEmitter } from 'eventemitter3';
import type { ActorRefFrom } from 'xstate';
import type { channelMachine, ErrorSummary } from '../machines/index.js';
import { ChannelLink } from './channel-link.js';
import { ChannelRegistry } from './channel-registry.js';
import type { ChannelEvents, ChannelHost, ChannelPublishOptions, ChannelState, DeliveryHandler } from './channel-types.js';
import { checkSeconds } from './seconds.js';
import { ChannelError, ConnectionClosed, ConnectionError, IllegalStateError, KombuError } from './errors.js';
import type {
  ConsumeOptions,
  ExchangeDeclaration,
  MessageProperties,
  QueueDeclaration,
  QueueDeclareOk,
  RawMessage,
  TransportChannel,
} from './transports/transport.js';

export type { ChannelEvents, ChannelHost, ChannelPublishOptions, ChannelState, DeliveryHandler } from './channel-types.js';

/**
 * A channel of a {@link Connection}. Get one with `await conn.channel()` or `conn.defaultChannel`.
 *
 * @example
 * ```ts
 * const channel = await conn.channel();
 * await channel.declareQueue({ name: 'tasks', durable: true, exclusive: false, autoDelete: false, arguments: {}, passive: false });
 * await channel.publish(Buffer.from('hi'), { contentType: 'text/plain' }, '', 'tasks');
 * await channel.close();
 * ```
 */
export class Channel extends EventEmitter<ChannelEvents> {
  readonly channelId: number;
  #host: ChannelHost;
  /**
   * The transport side, which the channel actor drives (channel-link.ts). Private, read
   * through {@link link}: a public field would be printed by util.inspect, and through the
   * link's host the connection's brokers, passwords and all.
   */
  readonly #link: ChannelLink;
  #actor: ActorRefFrom<typeof channelMachine> | undefined;
  /** What was declared through this channel; made on the first declaration. */
  #registry: ChannelRegistry<DeliveryHandler> | undefined;
  #state: ChannelState = 'opening';

  /** @internal Created by Connection. */
  constructor(channelId: number, host: ChannelHost) {
    super();
    this.channelId = channelId;
    this.#host = host;
    this.#link = new ChannelLink(this, host);
  }

  /** @internal Attaches the actor spawned for this channel. */
  attach(actor: ActorRefFrom<typeof channelMachine>): void {
    this.#actor = actor;
    // No `complete` handler: an actor stopped before its final state is stopped by its
    // connection's end, which calls connectionEnded(). (Each handler costs two functions.)
    actor.subscribe({
      next: (snapshot) => this.#onState(snapshot.value as ChannelState, snapshot.context.lastError),
      error: () => this.#onState('closed', undefined),
    });
    this.#onState(actor.getSnapshot().value as ChannelState, undefined);
  }

  /** @internal The transport side, which the channel actor drives (channel-link.ts). */
  get link(): ChannelLink {
    return this.#link;
  }

  /** The channel actor's state. */
  get state(): ChannelState {
    return this.#state;
  }

  /** The channel actor (for inspection). */
  get actor(): ActorRefFrom<typeof channelMachine> | undefined {
    return this.#actor;
  }

  /** True while the transport channel is open and usable. */
  get isOpen(): boolean {
    return this.#state === 'open' && this.#link.current?.isOpen === true;
  }

  /** The transport channel generation; deliveries carry it. */
  get epoch(): number {
    return this.#link.epoch;
  }

  #onState(to: ChannelState, error: ErrorSummary | undefined): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    if (to === 'open') this.#link.release();
    if (to === 'closed') {
      const reason = this.#link.lastError ?? new ChannelError(`Channel ${this.channelId} is closed.`, { recoverable: false });
      this.#link.failWaiters(reason);
      this.#link.current = undefined;
      this.#host.forgetChannel(this.channelId);
    }
    this.emit('state', { from, to, error });
  }

  /** @internal What was declared through this channel, if anything was: what the link restores. */
  get registry(): ChannelRegistry<DeliveryHandler> | undefined {
    return this.#registry;
  }

  get #declared(): ChannelRegistry<DeliveryHandler> {
    return (this.#registry ??= new ChannelRegistry());
  }

  #nameOf(queue: string): string {
    return this.#registry ? this.#registry.nameOf(queue) : queue;
  }

  async #live(): Promise<TransportChannel> {
    const current = this.#link.current;
    return this.#state === 'open' && current?.isOpen ? current : this.#link.whenOpen();
  }

  async declareExchange(declaration: ExchangeDeclaration): Promise<void> {
    await (await this.#live()).declareExchange(declaration);
    if (!declaration.passive) this.#declared.exchangeDeclared(declaration);
  }

  async deleteExchange(name: string, options?: { ifUnused?: boolean }): Promise<void> {
    await (await this.#live()).deleteExchange(name, options);
    this.#registry?.exchangeDeleted(name);
  }

  async declareQueue(declaration: QueueDeclaration): Promise<QueueDeclareOk> {
    const ok = await (await this.#live()).declareQueue(declaration);
    if (!declaration.passive) this.#declared.queueDeclared(declaration, ok);
    return ok;
  }

  async bindQueue(queue: string, exchange: string, routingKey: string, args?: Record<string, unknown>): Promise<void> {
    await (await this.#live()).bindQueue(this.#nameOf(queue), exchange, routingKey, args);
    this.#declared.bound(queue, exchange, routingKey, args);
  }

  async unbindQueue(queue: string, exchange: string, routingKey: string, args?: Record<string, unknown>): Promise<void> {
    await (await this.#live()).unbindQueue(this.#nameOf(queue), exchange, routingKey, args);
    this.#registry?.unbound(queue, exchange, routingKey, args);
  }

  async deleteQueue(name: string, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number> {
    const channel = await this.#live();
    // The broker cancels the queue's consumers, on every channel of this connection, around
    // its delete-ok. Deleted through this connection on purpose: none is resumed, and no
    // recovery declares the queue again (a consumer cancelled by anybody else is resumed).
    const channels = this.#host.channels.includes(this) ? this.#host.channels : [...this.#host.channels, this];
    for (const each of channels) each.#registry?.queueDeleting(name, true);
    try {
      const count = await channel.deleteQueue(this.#nameOf(name), options);
      for (const each of channels) each.#registry?.queueDeleted(name);
      return count;
    } finally {
      for (const each of channels) each.#registry?.queueDeleting(name, false);
    }
  }

  async purgeQueue(name: string): Promise<number> {
    return (await this.#live()).purgeQueue(this.#nameOf(name));
  }

  /** Publishes waiting for this channel to come back (see {@link whenWritable}). */
  get buffered(): number {
    return this.#link.buffered;
  }

  /** Resolves with the open transport channel, waiting through recovery; rejects once closed. */
  whenOpen(): Promise<TransportChannel> {
    return this.#link.whenOpen();
  }

  /**
   * Resolves with the open transport channel. While the channel is down (reconnecting) or the
   * broker blocks the connection, the caller waits as one of at most `maxBuffered` buffered
   * publishes, for at most `timeout` seconds: beyond either it rejects with `LimitExceeded` /
   * `TimeoutError`. Waiters are released in order once the reopened channel's declarations
   * and bindings are restored (its consumers may still be being restored) and the connection
   * is not blocked.
   */
  whenWritable(options: { maxBuffered?: number | undefined; timeout?: number | undefined } = {}): Promise<TransportChannel> {
    return this.#link.whenWritable(options);
  }

  /**
   * Publishes raw bytes; resolves when the transport took (or confirmed) the message. While the
   * channel is down the publish waits for it, bounded by `maxBuffered` and `timeout`. A publish
   * whose channel died before the confirm is sent again after the recovery (at least once).
   */
  publish(body: Buffer, properties: MessageProperties, exchange: string, routingKey: string, options: ChannelPublishOptions = {}): Promise<void> {
    try {
      checkSeconds(options.timeout, 'publish timeout');
    } catch (error) {
      return Promise.reject(error);
    }
    const current = this.#link.current;
    if (this.#state !== 'open' || current?.isOpen !== true || this.#host.isBlocked()) {
      return this.#publishWaiting(body, properties, exchange, routingKey, options, undefined);
    }
    // The hot path: straight to the open transport channel (its PublishOptions ignore the
    // buffering bounds), with one handler that only runs if the publish fails.
    const started = options.timeout === undefined ? 0 : Date.now();
    let sent: Promise<void>;
    try {
      sent = current.publish(body, properties, exchange, routingKey, options);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.catch((error: unknown) => {
      const deadline = options.timeout === undefined ? undefined : started + options.timeout * 1000;
      if (!this.#lostUnderneath(error) || (deadline !== undefined && Date.now() >= deadline)) throw error;
      return this.#publishWaiting(body, properties, exchange, routingKey, options, deadline);
    });
  }

  async #publishWaiting(
    body: Buffer, properties: MessageProperties, exchange: string, routingKey: string, options: ChannelPublishOptions, until: number | undefined,
  ): Promise<void> {
    const { maxBuffered, timeout, ...transportOptions } = options;
    const deadline = until ?? (timeout === undefined ? undefined : Date.now() + timeout * 1000);
    for (;;) {
      const left = deadline === undefined ? undefined : Math.max(0, (deadline - Date.now()) / 1000);
      const channel = await this.#link.whenWritable({ maxBuffered, timeout: left });
      try {
        return await channel.publish(body, properties, exchange, routingKey, transportOptions);
      } catch (error) {
        // The channel died under this publish (its connection dropped before the confirm, or
        // the channel was closed beneath us): the broker may or may not have the message, so
        // it is sent again on the healed channel — at least once, never silently lost. A broker
        // refusal (404 no exchange, a nack) is not retried: it would fail the same way.
        if (!this.#lostUnderneath(error) || (deadline !== undefined && Date.now() >= deadline)) throw error;
      }
    }
  }

  #lostUnderneath(error: unknown): boolean {
    if (this.#state === 'closing' || this.#state === 'closed') return false;
    if (error instanceof ConnectionError) return error.recoverable;
    if (error instanceof ChannelError && error.code === undefined) {
      return !(error.cause instanceof KombuError) || error.cause.recoverable || error.cause instanceof ConnectionError;
    }
    return false;
  }

  async get(queue: string, options: { noAck: boolean }): Promise<{ message: RawMessage; epoch: number } | undefined> {
    const channel = await this.#live();
    const epoch = this.#link.epoch;
    const message = await channel.get(this.#nameOf(queue), options);
    return message ? { message, epoch } : undefined;
  }

  /** Starts a consumer that survives channel errors and reconnects. Resolves with its tag. */
  async consume(queue: string, options: ConsumeOptions, onMessage: DeliveryHandler): Promise<string> {
    const channel = await this.#live();
    const tag = await channel.consume(this.#nameOf(queue), options, this.#link.wrap(onMessage));
    this.#declared.consumerAdded(tag, queue, options, onMessage);
    return tag;
  }

  /** Cancels a consumer: the broker stops delivering to it, and no recovery restores it. */
  async cancel(consumerTag: string): Promise<void> {
    this.#registry?.consumerRemoved(consumerTag);
    const current = this.#link.current;
    if (!current?.isOpen) return;
    // A cancel that fails because its transport channel ended has done its work: the consumer
    // ended with that channel, and no recovery restores it.
    if (this.#state === 'open') return current.cancel(consumerTag).catch((error: unknown) => {
      if (current.isOpen) throw error;
    });
    // Recovering: the restore may have registered it on the new channel already (and cancels
    // it there itself if it had not yet); the recovery answers for the channel's errors.
    if (this.#state === 'recovering') await current.cancel(consumerTag).catch(() => undefined);
  }

  /** Acks `deliveryTag` of `epoch`; a tag of an earlier epoch is dropped (already requeued). Returns whether it was sent. */
  ack(deliveryTag: number | string, multiple = false, epoch = this.#link.epoch): boolean {
    const link = this.#link;
    if (epoch !== link.epoch || !link.current?.isOpen) return false;
    link.current.ack(deliveryTag, multiple);
    return true;
  }

  /** Rejects `deliveryTag` of `epoch` (see {@link ack}). */
  reject(deliveryTag: number | string, requeue: boolean, epoch = this.#link.epoch): boolean {
    const link = this.#link;
    if (epoch !== link.epoch || !link.current?.isOpen) return false;
    link.current.reject(deliveryTag, requeue);
    return true;
  }

  async qos(prefetchCount: number, prefetchSize?: number, global?: boolean): Promise<void> {
    await (await this.#live()).qos(prefetchCount, prefetchSize, global);
    this.#declared.qos(prefetchCount, prefetchSize, global);
  }

  async recover(requeue = true): Promise<void> {
    await (await this.#live()).recover(requeue);
  }

  /** Closes the channel; safe to call twice. */
  async close(): Promise<void> {
    const actor = this.#actor;
    if (!actor || this.#state === 'closed') return;
    // What waits for the channel ends because of this close, not with an earlier loss's error.
    this.#link.failWaiters(new IllegalStateError(`Channel ${this.channelId} was closed.`, 'closing'));
    await new Promise<void>((resolve) => {
      const sub = actor.subscribe({ complete: () => resolve(), error: () => resolve() });
      if (actor.getSnapshot().status !== 'active') {
        sub.unsubscribe();
        resolve();
        return;
      }
      actor.send({ type: 'close' });
    });
  }

  /** @internal The connection is closing: fail whatever waits. */
  connectionClosed(): void {
    this.#link.failWaiters(new ConnectionClosed('The connection of this channel is closed.'));
  }

  /** @internal The connection actor is done, and this channel's actor was stopped with it: the channel is closed. */
  connectionEnded(): void {
    this.connectionClosed();
    this.#onState('closed', undefined);
  }
}
