/**
 * The transport side of one Channel: what its channel actor drives (open and restore a
 * transport channel, watch it, abandon or close it) and what the transport channel reports
 * (its close, returned messages, consumers the broker cancelled).
 *
 * Each transport channel the link opens is an `epoch`: delivery tags belong to one epoch, and
 * an ack for a message of an earlier epoch is dropped (the broker already requeued it when that
 * channel died; acking its tag on the new channel would be a protocol error). The new transport
 * channel is the current one as soon as it exists, so that acks of deliveries to consumers
 * already restored go out while later consumers are still being restored. A broker error the
 * restore then meets that names none of the restore's own methods was provoked by such
 * traffic (an ack of an unknown tag, a publish to a missing exchange): the channel is lost and
 * recovers again, as it would from `open`, instead of counting as a refused restore that ends
 * it (channel-registry.ts).
 *
 * The calls waiting for the channel to be usable (Channel's `whenOpen`, `whenWritable`,
 * channel-waiters.ts) wait here too: they wait for the transport channel this link holds, and
 * are released when it opens, when a recovery has restored its routing (`routed`), or when
 * the broker unblocks the connection.
 *
 * Why a class of its own: it keeps channel.ts to the public facade (declarations, publish,
 * consume, ack), as connection-link.ts does for connection.ts. The actor's
 * implementations are shared by every channel (connection-driver.ts) and reach this link
 * through `channel.link`; the transport listeners are prototype methods registered with the
 * link as their context, so a channel costs this one small object, no closures. The facade's
 * hot path reads `current` and `epoch` straight from here.
 */
import { summarizeError } from '../machines/index.js';
import type { Channel } from './channel.js';
import type { ChannelEvents, ChannelHost, DeliveryHandler } from './channel-types.js';
import { ChannelWaiters } from './channel-waiters.js';
import { ChannelError, ConnectionError, IllegalStateError, KombuError } from './errors.js';
import { checkSeconds } from './seconds.js';
import type { RawMessage, ReturnedMessage, TransportChannel } from './transports/transport.js';

/**
 * @example
 * ```ts
 * const link = new ChannelLink(channel, host);   // made by the Channel, as `channel.link`
 * await link.open(false, signal);                // the channel actor's openChannel
 * link.watch();                                  // its watchChannel
 * ```
 */
export class ChannelLink {
  /** The live transport channel (the newest, while recovering). */
  current: TransportChannel | undefined;
  /** The recovering transport channel once its declarations are restored: publishes may go. */
  routed: TransportChannel | undefined;
  /** The transport channel generation; deliveries carry it. */
  epoch = 0;
  /** The last error that lost or failed the transport channel: what waiters fail with should the channel close for good. */
  lastError: KombuError | undefined;
  /** The transport channel {@link watch} listens to. */
  #watched: TransportChannel | undefined;
  /** Calls waiting for the channel to be usable; made when the first one waits. */
  #waiters: ChannelWaiters | undefined;

  constructor(
    readonly channel: Channel,
    readonly host: ChannelHost,
  ) {}

  /**
   * openChannel actor: a new transport channel, restoring everything when `recover`.
   * A recovery opens it without waiting for the broker where the transport can
   * (`openChannel`): the open, the whole restore and the publishes waiting behind it then go
   * out together, one round trip in all.
   */
  async open(recover: boolean, signal: AbortSignal): Promise<void> {
    const connection = await this.host.whenConnected(signal);
    const early = recover ? connection.openChannel?.() : undefined;
    const channel = early ? early.channel : await connection.createChannel();
    if (signal.aborted) {
      early?.opened.catch(() => undefined);
      await channel.close().catch(() => undefined);
      throw new ChannelError('Channel open was cancelled.', { recoverable: true });
    }
    channel.on('return', this.onTransportReturn, this);
    channel.on('cancel', this.onTransportCancel, this);
    this.epoch += 1;
    this.current = channel;
    const registry = recover ? this.channel.registry : undefined;
    // Routing is restored (or there was none): the publishes waiting at the head of the line
    // go now, behind the restore, instead of after its answers (the broker handles a
    // channel's frames in order, and a consumer does not route). Should the restore fail, a
    // publish whose confirm is lost with the channel is sent again, as after any loss.
    const routed = (): void => {
      if (signal.aborted || !recover) return;
      this.routed = channel;
      this.release();
    };
    try {
      const restored = registry ? registry.restore(channel, (onMessage) => this.wrap(onMessage), routed) : Promise.resolve(routed());
      const [opened, done] = await Promise.allSettled([early?.opened, restored]);
      if (opened.status === 'rejected') throw opened.reason;
      if (done.status === 'rejected') throw done.reason;
      if (signal.aborted) throw new ChannelError('Channel recovery was cancelled.', { recoverable: true });
    } catch (error) {
      // What the calls waiting for this channel fail with, should it now close for good.
      if (error instanceof KombuError) this.lastError = error;
      this.routed = undefined;
      if (this.current === channel) this.current = undefined;
      await channel.close().catch(() => undefined);
      throw error;
    }
    this.routed = undefined;
    if (recover) this.#tell('recovered', { epoch: this.epoch });
  }

  /** watchChannel action: reports the transport channel's death to the actor until {@link unwatch}. */
  watch(): void {
    this.unwatch();
    const channel = this.current;
    if (!channel) {
      queueMicrotask(() => this.#reportLost(new ChannelError('Channel vanished before it was watched.', { recoverable: true })));
      return;
    }
    // A prototype method with this link as its context: no closures per channel.
    this.#watched = channel;
    channel.on('close', this.onTransportClose, this);
    if (!channel.isOpen) {
      queueMicrotask(() => this.#watched === channel && this.onTransportClose(new ChannelError('Channel closed while opening.', { recoverable: true })));
    }
  }

  /** unwatchChannel action. */
  unwatch(): void {
    const channel = this.#watched;
    this.#watched = undefined;
    channel?.off('close', this.onTransportClose, this);
  }

  /** @internal Listener of the watched transport channel's `close`. */
  onTransportClose(error?: KombuError): void {
    const channel = this.#watched;
    if (!error || !channel) return;
    this.lastError = error;
    // A lost connection closes its channels first and reports its own loss right after, in
    // the same tick; the connection then suspends this channel. Reporting the loss here too
    // would start a recovery bound to fail on the dead connection: leave it a microtask.
    if (error instanceof ConnectionError) queueMicrotask(() => this.#watched === channel && this.#reportLost(error));
    else this.#reportLost(error);
  }

  /** @internal Listener of the transport channel's `return` (a mandatory message found no queue). */
  onTransportReturn(message: ReturnedMessage): void {
    this.channel.emit('return', message);
  }

  /** @internal Listener of the transport channel's `cancel` (the broker cancelled a consumer). */
  onTransportCancel(consumerTag: string): void {
    if (this.current) this.#onBrokerCancel(this.current, consumerTag);
  }

  #reportLost(error: KombuError): void {
    this.channel.actor?.send({ type: 'channel.lost', error: summarizeError(error) });
  }

  /** abandonChannel action. */
  abandon(): void {
    const channel = this.current;
    this.current = undefined;
    channel?.removeAllListeners();
    if (channel?.isOpen) channel.close().catch(() => undefined);
  }

  /** closeChannel actor. */
  async closeTransport(): Promise<void> {
    const channel = this.current;
    this.current = undefined;
    if (channel?.isOpen) await channel.close();
  }

  #onBrokerCancel(channel: TransportChannel, consumerTag: string): void {
    const registry = this.channel.registry;
    const queue = registry?.queueOf(consumerTag);
    if (!registry || queue === undefined) return;
    this.#tell('consumerCancelled', { consumerTag, queue });
    registry.resume(channel, consumerTag, (onMessage) => this.wrap(onMessage)).catch((error: unknown) => {
      // The channel or its connection was lost under the resume: the consumer is still
      // registered, and the recovery that follows restores it. Only a refusal is news.
      if (error instanceof KombuError && error.recoverable) return;
      this.channel.emit('error', error instanceof KombuError ? error : new ChannelError(String(error), { cause: error }));
    });
  }

  /**
   * Emits to the application's listeners from inside the channel's own work (a recovery, a
   * resume): a listener that throws must not fail that work (a failed recovery closes the
   * channel for good). Its error goes to the `error` listeners, else to its own turn of the
   * event loop as an uncaught exception.
   */
  #tell<E extends 'recovered' | 'consumerCancelled'>(event: E, payload: Parameters<ChannelEvents[E]>[0]): void {
    const channel = this.channel;
    try {
      (channel.emit as (event: E, payload: unknown) => boolean)(event, payload);
    } catch (error) {
      try {
        if (channel.listenerCount('error') === 0) throw error;
        channel.emit('error', error instanceof KombuError ? error : new ChannelError(`A '${event}' listener failed: ${String(error)}`, { cause: error }));
      } catch (thrown) {
        setImmediate(() => {
          throw thrown;
        });
      }
    }
  }

  /** A consumer's delivery callback on the current epoch: hands each message over with that epoch, then tells the host (for `drainEvents`). */
  wrap(onMessage: DeliveryHandler): (message: RawMessage) => void {
    const epoch = this.epoch;
    return (message) => {
      try {
        onMessage(message, epoch);
      } finally {
        this.host.notifyDelivery();
      }
    };
  }

  // --- The calls waiting for a usable transport channel (Channel's whenOpen, whenWritable) ---

  /** Publishes waiting for the channel to come back. */
  get buffered(): number {
    return this.#waiters?.buffered ?? 0;
  }

  /**
   * Hands the open transport channel to the waiters (publishes only if the connection is not
   * blocked): when the channel opens, when the broker unblocks the connection, and when a
   * recovery has restored routing (`routed`). While recovering, only the publishes at the head
   * of the line go: the broker may have unblocked the connection after they were held.
   */
  release(): void {
    const current = this.current;
    if (!current || !this.#waiters) return;
    const state = this.channel.state;
    if (state === 'recovering') {
      const routed = this.#publishable();
      if (!routed) return;
      this.#waiters.releasePublishes(routed);
    } else if (state === 'open') {
      this.#waiters.release(current, this.host.isBlocked());
    } else {
      return;
    }
    // No one left waiting: later publishes may go straight on (see whenWritable).
    if (this.#waiters.empty) this.#waiters = undefined;
  }

  /** While recovering: the new transport channel once its routing is restored, if publishes may go on it (open, not blocked). */
  #publishable(): TransportChannel | undefined {
    const routed = this.routed;
    if (this.channel.state !== 'recovering' || !routed || routed !== this.current || !routed.isOpen || this.host.isBlocked()) return undefined;
    return routed;
  }

  /** Channel.whenOpen: the open transport channel, waiting through recovery; rejects once closed. */
  whenOpen(): Promise<TransportChannel> {
    const current = this.current;
    const state = this.channel.state;
    if (state === 'open' && current?.isOpen) return Promise.resolve(current);
    if (state === 'closed' || state === 'closing') {
      return Promise.reject(new IllegalStateError(`Channel ${this.channel.channelId} is ${state}.`, state));
    }
    const failure = this.host.failure();
    if (failure) return Promise.reject(failure);
    return (this.#waiters ??= new ChannelWaiters(this.channel.channelId)).operation();
  }

  /** Channel.whenWritable: the open transport channel, a publish waiting for it bounded by `maxBuffered` and `timeout`. */
  whenWritable(options: { maxBuffered?: number | undefined; timeout?: number | undefined }): Promise<TransportChannel> {
    try {
      checkSeconds(options.timeout, 'publish timeout');
    } catch (error) {
      return Promise.reject(error);
    }
    const current = this.current;
    const state = this.channel.state;
    if (state === 'open' && current?.isOpen && !this.host.isBlocked()) return Promise.resolve(current);
    // Recovering, routing restored, consumers not yet: a publish goes unless an operation waits before it.
    const routed = this.#waiters ? undefined : this.#publishable();
    if (routed) return Promise.resolve(routed);
    if (state === 'closed' || state === 'closing') {
      return Promise.reject(new IllegalStateError(`Cannot publish: channel ${this.channel.channelId} is ${state}.`, state));
    }
    const failure = this.host.failure();
    if (failure) return Promise.reject(failure);
    return (this.#waiters ??= new ChannelWaiters(this.channel.channelId)).publish(options);
  }

  /** Rejects the calls waiting for this channel (it closed, or its connection closed or failed for good). */
  failWaiters(error: Error): void {
    const waiters = this.#waiters;
    this.#waiters = undefined;
    waiters?.fail(error);
  }
}
