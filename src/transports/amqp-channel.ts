/**
 * One kombu-ts channel over an amqplib ConfirmChannel.
 *
 * Why a confirm channel always: the default producer waits for publisher confirms, and a
 * channel cannot leave confirm mode once in it; `publish(..., { confirm: false })` simply does
 * not wait for the ack.
 *
 * How a channel ends, what its `close` carries and what its failed calls and confirms reject
 * with: amqp-channel-end.ts.
 *
 * The publish path (confirms, backpressure, publishes held behind pipelined calls):
 * amqp-publish.ts.
 *
 * Acks are coalesced: those made in one tick go together at its end, as one multiple ack where
 * that settles nothing the application has not acked (amqp-acks.ts).
 */
import type { ConfirmChannel, Message } from 'amqplib';
import { EventEmitter } from 'eventemitter3';
import { ChannelError, type KombuError } from '../errors.js';
import { afterSeconds } from '../seconds.js';
import { AckBatch } from './amqp-acks.js';
import { ChannelEnd } from './amqp-channel-end.js';
import { rethrowLater } from './amqp-errors.js';
import { type AmqplibMessage, toRawMessage, toReturnedMessage } from './amqp-properties.js';
import { ChannelPublisher } from './amqp-publish.js';
import type {
  ConsumeOptions, ExchangeDeclaration, MessageProperties, PublishOptions, QueueDeclaration, QueueDeclareOk,
  RawMessage, TransportChannel, TransportChannelEvents,
} from './transport.js';

// AMQP method ids (class << 16 | method) for the two calls amqplib's API cannot express:
// qos with a prefetch size, and recover without requeue.
const BASIC_QOS = 0x3c000a;
const BASIC_QOS_OK = 0x3c000b;
const BASIC_RECOVER = 0x3c006e;
const BASIC_RECOVER_OK = 0x3c006f;

/** The slice of amqplib's channel internals used here (not in its typings). */
interface ChannelInternals {
  ch: number;
  rpc(method: number, fields: Record<string, unknown>, expect: number): Promise<unknown>;
}

/** What a channel needs from its connection. */
export interface ChannelOwner {
  /** Seconds `close()` waits for the broker's close-ok before giving up on it. */
  readonly closeTimeout: number;
  channelClosed(channel: AmqpChannel): void;
}

/** Each amqplib channel's AmqpChannel, for the shared listeners. */
const owners = new WeakMap<ConfirmChannel, AmqpChannel>();

/**
 * A TransportChannel over an amqplib ConfirmChannel; made by `AmqpConnection.createChannel()`.
 *
 * @example
 * ```ts
 * const channel = await conn.createChannel();
 * channel.on('close', (error) => error && console.warn('channel lost:', error.code, error.message));
 * await channel.declareQueue({ name: 'tasks', durable: true, exclusive: false, autoDelete: false, arguments: {}, passive: false });
 * await channel.publish(Buffer.from('{}'), { contentType: 'application/json' }, '', 'tasks', { confirm: true });
 * ```
 */
export class AmqpChannel extends EventEmitter<TransportChannelEvents> implements TransportChannel {
  readonly id: number;
  readonly #ch: ConfirmChannel;
  readonly #owner: ChannelOwner;
  /** Whether and how the channel ended, and so what its failed calls reject with. */
  readonly #end: ChannelEnd;
  /** The publish path; made by the first publish (a consuming channel has none). */
  #publisher: ChannelPublisher | undefined;
  /** Deliveries to ack and acks to coalesce; made by the first delivery that needs an ack (a publishing channel has none). */
  #acks: AckBatch | undefined;

  constructor(ch: ConfirmChannel, owner: ChannelOwner) {
    super();
    this.#ch = ch;
    this.#owner = owner;
    this.id = (ch as unknown as ChannelInternals).ch;
    this.#end = new ChannelEnd(this.id);
    // The listeners are shared functions that find this channel from amqplib's (their `this`):
    // closures would cost four functions and a context per channel.
    owners.set(ch, this);
    ch.on('error', AmqpChannel.#onError);
    ch.on('close', AmqpChannel.#onClose);
    ch.on('return', AmqpChannel.#onReturn);
    ch.on('drain', AmqpChannel.#onDrain);
  }

  static #onError(this: ConfirmChannel, error: unknown): void {
    const self = owners.get(this);
    if (self) self.#end.refused(error);
  }

  static #onClose(this: ConfirmChannel): void {
    const self = owners.get(this);
    if (!self) return;
    if (self.#end.closing) self.#finish(undefined);
    else if (self.#end.refusal) self.#finish(self.#end.refusal);
    // Otherwise the connection is going down; it tells us why in a moment (same tick).
    else queueMicrotask(() => self.#finish(new ChannelError(`Channel ${self.id} closed unexpectedly`)));
  }

  static #onReturn(this: ConfirmChannel, message: AmqplibMessage): void {
    const self = owners.get(this);
    if (self) self.#emit('return', toReturnedMessage(message));
  }

  static #onDrain(this: ConfirmChannel): void {
    const self = owners.get(this);
    if (self) self.#publisher?.releaseDrain();
  }

  /** True until the channel closes. */
  get isOpen(): boolean {
    return this.#end.isOpen;
  }

  /** Called by the connection when it ends: settles this channel with the connection's error. */
  connectionLost(error: KombuError | undefined): void {
    this.#finish(this.#end.closing ? undefined : error);
  }

  declareExchange(d: ExchangeDeclaration): Promise<void> {
    return this.#end.rpc('declare exchange', async () => {
      if (d.passive) await this.#ch.checkExchange(d.name);
      else {
        await this.#ch.assertExchange(d.name, d.type, {
          durable: d.durable, autoDelete: d.autoDelete, internal: d.internal ?? false, arguments: d.arguments,
        });
      }
    });
  }

  deleteExchange(name: string, options: { ifUnused?: boolean } = {}): Promise<void> {
    return this.#end.rpc('delete exchange', async () => {
      await this.#ch.deleteExchange(name, { ifUnused: options.ifUnused ?? false });
    });
  }

  declareQueue(d: QueueDeclaration): Promise<QueueDeclareOk> {
    return this.#end.rpc('declare queue', async () => {
      const ok = d.passive
        ? await this.#ch.checkQueue(d.name)
        : await this.#ch.assertQueue(d.name, { durable: d.durable, exclusive: d.exclusive, autoDelete: d.autoDelete, arguments: d.arguments });
      return { queue: ok.queue, messageCount: ok.messageCount, consumerCount: ok.consumerCount };
    });
  }

  bindQueue(queue: string, exchange: string, routingKey: string, args: Record<string, unknown> = {}): Promise<void> {
    return this.#end.rpc('bind queue', async () => {
      await this.#ch.bindQueue(queue, exchange, routingKey, args);
    });
  }

  unbindQueue(queue: string, exchange: string, routingKey: string, args: Record<string, unknown> = {}): Promise<void> {
    return this.#end.rpc('unbind queue', async () => {
      await this.#ch.unbindQueue(queue, exchange, routingKey, args);
    });
  }

  deleteQueue(name: string, options: { ifUnused?: boolean; ifEmpty?: boolean } = {}): Promise<number> {
    return this.#end.rpc('delete queue', async () => {
      const ok = await this.#ch.deleteQueue(name, { ifUnused: options.ifUnused ?? false, ifEmpty: options.ifEmpty ?? false });
      return ok.messageCount;
    });
  }

  purgeQueue(name: string): Promise<number> {
    return this.#end.rpc('purge queue', async () => (await this.#ch.purgeQueue(name)).messageCount);
  }

  publish(body: Buffer, properties: MessageProperties, exchange: string, routingKey: string, options: PublishOptions = {}): Promise<void> {
    return (this.#publisher ??= new ChannelPublisher(this.#ch, this.#end)).publish(body, properties, exchange, routingKey, options);
  }

  async get(queue: string, options: { noAck: boolean }): Promise<RawMessage | undefined> {
    return this.#end.rpc('get', async () => {
      const message = await this.#ch.get(queue, { noAck: options.noAck });
      if (message === false) return undefined;
      if (!options.noAck) this.#ackBatch.received(message.fields.deliveryTag);
      return toRawMessage(message as AmqplibMessage);
    });
  }

  consume(queue: string, options: ConsumeOptions, onMessage: (message: RawMessage) => void): Promise<string> {
    let tag = options.consumerTag;
    const acks = options.noAck ? undefined : this.#ackBatch;
    return this.#end.rpc('consume', async () => {
      const ok = await this.#ch.consume(
        queue,
        (message) => {
          if (message === null) {
            this.#emit('cancel', tag); // the broker cancelled it (queue deleted...)
            return;
          }
          acks?.received(message.fields.deliveryTag);
          try {
            onMessage(toRawMessage(message as AmqplibMessage));
          } catch (error) {
            rethrowLater(error); // never into amqplib's frame loop
          }
        },
        {
          consumerTag: options.consumerTag,
          noAck: options.noAck,
          exclusive: options.exclusive ?? false,
          ...(options.arguments === undefined ? {} : { arguments: options.arguments }),
        },
      );
      tag = ok.consumerTag;
      return ok.consumerTag;
    });
  }

  cancel(consumerTag: string): Promise<void> {
    return this.#end.rpc('cancel', async () => {
      await this.#ch.cancel(consumerTag);
    });
  }

  ack(deliveryTag: number | string, multiple = false): void {
    this.#end.assertOpen('ack');
    const tag = Number(deliveryTag);
    if (!multiple && this.#acks?.defer(tag)) return;
    this.#flushAcks();
    this.#end.sync('ack', () => this.#ch.ack(asMessage(tag), multiple));
    this.#acks?.settled(tag, multiple);
  }

  reject(deliveryTag: number | string, requeue: boolean): void {
    this.#end.assertOpen('reject');
    this.#flushAcks();
    const tag = Number(deliveryTag);
    this.#end.sync('reject', () => this.#ch.reject(asMessage(tag), requeue));
    this.#acks?.settled(tag, false);
  }

  get #ackBatch(): AckBatch {
    return (this.#acks ??= new AckBatch(() => this.#flushQuietly()));
  }

  /** Sends the acks deferred this tick. */
  #flushAcks(): void {
    const frames = this.#acks?.take();
    if (!frames || !this.isOpen) return; // closed: the broker requeues them, the channel is gone
    this.#end.sync('ack', () => {
      if (frames.upTo !== undefined) this.#ch.ack(asMessage(frames.upTo), true);
      for (const tag of frames.single) this.#ch.ack(asMessage(tag), false);
    });
  }

  #flushQuietly(): void {
    try {
      this.#flushAcks();
    } catch {
      // The channel ended under the acks: the broker requeues those messages.
    }
  }

  qos(prefetchCount: number, prefetchSize = 0, global = false): Promise<void> {
    return this.#end.rpc('qos', async () => {
      if (prefetchSize === 0) await this.#ch.prefetch(prefetchCount, global);
      else await this.#internals.rpc(BASIC_QOS, { prefetchCount, prefetchSize, global }, BASIC_QOS_OK);
    });
  }

  recover(requeue: boolean): Promise<void> {
    this.#flushAcks();
    // The broker redelivers (or drops) every unacked message: their tags end here.
    this.#acks?.clear();
    return this.#end.rpc('recover', async () => {
      if (requeue) await this.#ch.recover();
      else await this.#internals.rpc(BASIC_RECOVER, { requeue: false }, BASIC_RECOVER_OK);
    });
  }

  async close(): Promise<void> {
    if (!this.#end.open) return;
    if (!this.#end.closing) {
      this.#flushAcks(); // acks made just before close() still go out, ahead of channel.close
      this.#end.closing = true;
      try {
        this.#ch.close().catch(() => {}); // settled through the 'close' event instead
      } catch {
        // already closing on amqplib's side: the 'close' event follows
      }
    }
    // A broker that never answers close-ok must not hang us (nor the connection's close).
    const timer = afterSeconds(this.#owner.closeTimeout, () => this.#finish(undefined));
    await this.#end.ended();
    timer.cancel();
  }

  get #internals(): ChannelInternals {
    return this.#ch as unknown as ChannelInternals;
  }

  #finish(error: KombuError | undefined): void {
    if (!this.#end.end(error)) return;
    this.#acks?.clear();
    this.#publisher?.releaseDrain();
    this.#end.notifyEnded();
    this.#owner.channelClosed(this);
    this.#emit('close', error);
  }

  #emit<E extends keyof TransportChannelEvents>(event: E, ...args: Parameters<TransportChannelEvents[E]>): void {
    try {
      (this.emit as (event: E, ...args: unknown[]) => boolean)(event, ...args);
    } catch (error) {
      rethrowLater(error);
    }
  }
}

function asMessage(deliveryTag: number | string): Message {
  return { fields: { deliveryTag: Number(deliveryTag) } } as unknown as Message;
}
