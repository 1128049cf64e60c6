/**
 * One open AMQP connection (an amqplib ChannelModel) as a kombu-ts TransportConnection.
 *
 * Heartbeats. amqplib already runs AMQP heartbeats: it sends a heartbeat frame when it has
 * sent nothing for heartbeat/2 seconds, and declares the broker dead after two whole silent
 * intervals, checked once per interval: between 2 and 3 intervals after the silence began
 * (4-6 s at heartbeat 2). That is too slow for kombu-ts's promise, so `heartbeatCheck()`
 * keeps its own, tighter watch and leaves the sending to amqplib:
 *
 * - It records when bytes last arrived from the broker, from the socket's `data` events.
 *   (amqplib reads the socket in paused mode through `readable`/`read()`; a `data` listener
 *   then only observes each chunk read and does not switch the stream to flowing mode.)
 * - It throws when nothing arrived for more than the heartbeat (the negotiated one, or the
 *   fraction asked for when longer: 1.5 s negotiates 1 s and is judged at 1.5 s). RabbitMQ checks
 *   every heartbeat/2 whether it sent anything and sends a heartbeat frame if not, so its
 *   longest natural silence is just under one heartbeat (measured: up to 1.7 s at
 *   heartbeat 2). "Silent for more than one heartbeat" is the tightest bound that never
 *   blames a live broker on a low-jitter link; py-amqp waits two heartbeats, which cannot
 *   keep the 2.5 s promise at heartbeat 2. The margin against network jitter is thin; a
 *   broker far away with a jittery link wants a longer heartbeat.
 * - The connection machine calls the check every heartbeat/rate seconds. Detection happens
 *   within heartbeat + heartbeat/rate seconds of the last byte: at heartbeat 2 and checks
 *   every 0.4 s, within 2.4 s of a stall.
 * - Node timers fire late when the event loop is blocked, and a blocked loop has not read
 *   the socket either. A check that comes more than twice its interval (2 * heartbeat/rate)
 *   after the previous one therefore leaves judgement to the next check instead of blaming
 *   the broker for our own stall.
 *
 * On a timeout the socket is destroyed with the HeartbeatTimeout, so the connection really
 * ends: the check throws it, and the `close` event reports the same error object. If
 * amqplib's own (slower) check fires first, `close` reports a HeartbeatTimeout too.
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { EventEmitter } from 'eventemitter3';
import { ChannelError, ConnectionClosed, ConnectionError, HeartbeatTimeout, type KombuError } from '../errors.js';
import { Latch } from '../latch.js';
import { afterSeconds } from '../seconds.js';
import { AmqpChannel, type ChannelOwner } from './amqp-channel.js';
import { type BrokerInfo, mapConnectionError, rethrowLater } from './amqp-errors.js';
import {
  acceptLongLongHeaders, coalesceWrites, type ConnectionInternals, openConfirmChannel, openConfirmChannelEarly, releaseHandshake,
} from './amqplib-internals.js';
import type { TransportConnection, TransportConnectionEvents } from './transport.js';

const ignore = (): void => undefined;

/** Each amqplib connection's AmqpConnection, for the shared listeners. */
const owners = new WeakMap<ChannelModel, AmqpConnection>();

export interface AmqpConnectionOptions {
  broker: BrokerInfo;
  /** Seconds `close()` waits for the broker's close-ok before destroying the socket. */
  closeTimeout: number;
  /**
   * The heartbeat asked for, seconds (fractions allowed): silence is judged against it when
   * it is longer than the negotiated (whole-second) one.
   */
  requestedHeartbeat?: number;
}

/**
 * A TransportConnection over amqplib; made by the amqp transport's `connect()`.
 *
 * @example
 * ```ts
 * const conn = await amqpTransport.connect({ ...params, heartbeat: 10 }, signal);
 * conn.on('close', (error) => error && console.warn('lost:', error.name, error.message));
 * const timer = setInterval(() => conn.heartbeatCheck(2), 5_000); // heartbeat / rate
 * ```
 */
export class AmqpConnection extends EventEmitter<TransportConnectionEvents> implements TransportConnection, ChannelOwner {
  /** The amqplib ChannelModel (kombu's `conn.connection`). */
  readonly raw: ChannelModel;
  readonly closeTimeout: number;
  /** Negotiated heartbeat, seconds (0 = off). */
  readonly heartbeat: number;
  /** Seconds of silence that make the broker dead (see the constructor). */
  readonly #silenceLimit: number;
  /** The heartbeat the checks are paced by, seconds: the one asked for, or the negotiated one if longer. */
  readonly #checkPeriod: number;
  readonly #broker: BrokerInfo;
  readonly #internals: ConnectionInternals;
  /** Open channels: few, so an array (made by the first one, sized to it) rather than a Set. */
  #channels: AmqpChannel[] | undefined;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closeError: KombuError | undefined;
  /** Made when somebody waits for the end while the connection is open. */
  #closed: Latch<void> | undefined;
  #lastReceived = performance.now();
  #lastCheck = performance.now();
  /** Records when bytes last arrived; only with heartbeats on. */
  #onData: (() => void) | undefined;

  constructor(model: ChannelModel, options: AmqpConnectionOptions) {
    super();
    this.raw = model;
    this.#broker = options.broker;
    this.closeTimeout = options.closeTimeout;
    this.#internals = model.connection as unknown as ConnectionInternals;
    this.heartbeat = this.#internals.heartbeat ?? 0;
    const requested = options.requestedHeartbeat ?? 0;
    // A fraction asked for (1.5 s negotiates 1 s) is judged as asked; a heartbeat the broker
    // lowered (20 s asked, 10 s negotiated) as negotiated: the broker's frames come that often.
    this.#silenceLimit = this.heartbeat > 0 && Math.floor(requested) === this.heartbeat ? requested : this.heartbeat;
    // The connection machine paces its checks by the heartbeat asked for, not the negotiated one.
    this.#checkPeriod = Math.max(this.heartbeat, requested);
    // The listeners are shared functions that find this connection from amqplib's (their
    // `this`): closures would cost three functions and a context per connection.
    owners.set(model, this);
    // amqplib emits 'error' just before 'close' with the same error; 'close' is enough,
    // but an 'error' without a listener would throw.
    model.on('error', ignore);
    model.on('close', AmqpConnection.#onClose);
    model.on('blocked', AmqpConnection.#onBlocked);
    model.on('unblocked', AmqpConnection.#onUnblocked);
    if (this.heartbeat > 0) {
      this.#onData = () => {
        this.#lastReceived = performance.now();
      };
      this.#internals.stream.on('data', this.#onData);
    }
    coalesceWrites(this.#internals);
    releaseHandshake(this.#internals);
    acceptLongLongHeaders(this.#internals);
  }

  static #onClose(this: ChannelModel, error?: unknown): void {
    const self = owners.get(this);
    if (self) self.#finish(error);
  }

  static #onBlocked(this: ChannelModel, reason: unknown): void {
    const self = owners.get(this);
    if (self) self.#emit('blocked', String(reason));
  }

  static #onUnblocked(this: ChannelModel): void {
    const self = owners.get(this);
    if (self) self.#emit('unblocked');
  }

  /** Opens a channel (in confirm mode). Rejects with ConnectionError when the connection is gone. */
  async createChannel(): Promise<AmqpChannel> {
    this.#assertOpen('open a channel');
    let ch;
    try {
      ch = await openConfirmChannel(this.raw);
    } catch (error) {
      throw this.#openError(error);
    }
    const channel = this.#adopt(ch);
    if (this.#state !== 'open') throw this.#closedError('open a channel');
    return channel;
  }

  /**
   * Opens a channel (in confirm mode) without waiting for the broker's answer: calls made on
   * it go out behind the open, answered in order after it. `opened` settles with that answer
   * (a refusal closes the channel, and its calls fail). Undefined until amqplib's confirm
   * channel class is known, after the process's first channel: use {@link createChannel}.
   * Throws ConnectionError when the connection is gone, and ChannelError as `createChannel`
   * rejects when amqplib cannot open one (no channel number left): its plain Error would end
   * a recovering channel for good instead of letting it retry.
   */
  openChannel(): { channel: AmqpChannel; opened: Promise<void> } | undefined {
    this.#assertOpen('open a channel');
    let early;
    try {
      early = openConfirmChannelEarly(this.raw);
    } catch (error) {
      throw this.#openError(error);
    }
    if (!early) return undefined;
    const channel = this.#adopt(early.channel);
    const opened = early.opened.then(
      () => {
        if (this.#state !== 'open') throw this.#closedError('open a channel');
      },
      (error: unknown) => {
        throw this.#openError(error);
      },
    );
    return { channel, opened };
  }

  #openError(error: unknown): KombuError {
    if (this.#state !== 'open') return this.#closedError('open a channel');
    return new ChannelError(`Could not open a channel on ${this.#broker.url}: ${String(error)}`, { cause: error });
  }

  /** Wraps a new amqplib channel; when the connection is already gone, the channel ends with it. */
  #adopt(ch: ConfirmChannel): AmqpChannel {
    const channel = new AmqpChannel(ch, this);
    if (this.#state !== 'open') channel.connectionLost(this.#closeError);
    else if (this.#channels) this.#channels.push(channel);
    else this.#channels = [channel];
    return channel;
  }

  /**
   * Checks the broker is alive; amqplib sends our heartbeats. Throws HeartbeatTimeout when
   * nothing arrived for more than the heartbeat (see the header comment).
   */
  heartbeatCheck(rate: number): void {
    if (this.#state !== 'open' || this.heartbeat <= 0) return;
    const now = performance.now();
    const sinceCheck = now - this.#lastCheck;
    this.#lastCheck = now;
    const heartbeatMs = this.#silenceLimit * 1000;
    // Called every heartbeat/rate s; twice that late means the event loop was blocked and
    // has not read the socket either: judge at the next check instead.
    const intervalMs = (this.#checkPeriod * 1000) / (Number.isFinite(rate) && rate >= 1 ? rate : 2);
    if (sinceCheck > 2 * intervalMs) return;
    const silentMs = now - this.#lastReceived;
    if (silentMs <= heartbeatMs) return;
    const error = new HeartbeatTimeout(
      `No data from ${this.#broker.url} for ${(silentMs / 1000).toFixed(1)} s (heartbeat ${this.#silenceLimit} s): the broker is unreachable or hung`,
    );
    this.#destroy(error);
    throw error;
  }

  /** Closes the connection (and its channels); no error follows in `close`. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#state === 'open') {
      this.#state = 'closing';
      try {
        this.raw.close().catch(() => {}); // settled through the 'close' event instead
      } catch {
        // amqplib already closed: its 'close' event has been or will be emitted
      }
      const timer = afterSeconds(
        this.closeTimeout,
        () => this.#destroy(new ConnectionClosed(`The broker at ${this.#broker.url} did not answer connection.close`)),
      );
      await this.#ended();
      timer.cancel();
    }
    await this.#ended();
  }

  #ended(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    return (this.#closed ??= new Latch()).wait();
  }

  /** @internal the channel ended; forget it. */
  channelClosed(channel: AmqpChannel): void {
    const at = this.#channels?.indexOf(channel) ?? -1;
    if (at >= 0) this.#channels?.splice(at, 1);
  }

  /** Ends the connection now: amqplib sees a socket error and closes everything. */
  #destroy(error: KombuError): void {
    this.#internals.stream.destroy(error);
    // Should amqplib never notice (a socket already torn down), settle anyway.
    setImmediate(() => this.#finish(error));
  }

  #finish(error: unknown): void {
    if (this.#state === 'closed') return;
    const closedByUs = this.#state === 'closing';
    this.#state = 'closed';
    if (this.#onData) this.#internals.stream.removeListener('data', this.#onData);
    const mapped = closedByUs ? undefined : mapConnectionError(error ?? new Error('Unexpected close'), this.#broker);
    this.#closeError = mapped;
    const channels = this.#channels ?? [];
    this.#channels = undefined;
    for (const channel of channels) channel.connectionLost(mapped);
    this.#closed?.settle();
    this.#emit('close', mapped);
  }

  #emit<E extends keyof TransportConnectionEvents>(event: E, ...args: Parameters<TransportConnectionEvents[E]>): void {
    try {
      (this.emit as (event: E, ...args: unknown[]) => boolean)(event, ...args);
    } catch (error) {
      rethrowLater(error);
    }
  }

  #assertOpen(operation: string): void {
    if (this.#state !== 'open') throw this.#closedError(operation);
  }

  #closedError(operation: string): ConnectionError {
    const reason = this.#closeError;
    if (!reason) return new ConnectionClosed(`The connection to ${this.#broker.url} is closed; cannot ${operation}`);
    return new ConnectionError(`The connection to ${this.#broker.url} was lost (${reason.message}); cannot ${operation}`, {
      cause: reason,
      recoverable: reason.recoverable,
      ...(reason.code === undefined ? {} : { code: reason.code }),
    });
  }
}
