/**
 * How one AMQP channel ends, and what its failed calls and confirms reject with.
 *
 * How a channel ends, and what its `close` carries (emitted once):
 * - the broker closed it (404, 406...): amqplib emits `error` (with code, classId, methodId)
 *   and then `close`; we report a {@link ChannelError}.
 * - the connection died: amqplib closes every channel and only then emits the connection's
 *   `close`. The channel therefore learns the cause from its connection
 *   (`AmqpChannel.connectionLost`), which reports a ConnectionError.
 * - our own `close()`: no error.
 * Pending operations (RPCs, confirms, drain waits) settle with that same error, so a publish
 * whose channel dies before the confirm rejects with the ChannelError or ConnectionError.
 *
 * Why a class of its own: what a failed call rejects with depends on this state only (the
 * broker's refusal, whether and how the channel ended), so the attribution lives beside it
 * and amqp-channel.ts keeps to the calls themselves. A channel costs this one small object.
 */
import { ChannelError, type KombuError, MessageNacked, OperationalError } from '../errors.js';
import { Latch } from '../latch.js';
import { mapChannelError, overtaken, refusedPublishExchange } from './amqp-errors.js';

/** basic.publish's class and method ids, as a broker's refusal names them. */
const BASIC_PUBLISH = [60, 40] as const;

/**
 * @example
 * ```ts
 * const end = new ChannelEnd(channelId);                    // made by its AmqpChannel
 * await end.rpc('purge queue', () => ch.purgeQueue('q'));    // fails with the broker's reason, or how the channel ended
 * ```
 */
export class ChannelEnd {
  /** False once the channel has ended. */
  open = true;
  /** Our own `close()` is under way. */
  closing = false;
  /** The broker's close of the channel (amqplib's `error` event), once it came. */
  refusal: ChannelError | undefined;
  /** How the channel ended (undefined: closed by us, or not ended). */
  reason: KombuError | undefined;
  /** Made when somebody waits for the end while the channel is open (most never do). */
  #waiting: Latch<KombuError | undefined> | undefined;

  constructor(readonly channelId: number) {}

  /** True until the channel closes (or starts to, by our `close()`). */
  get isOpen(): boolean {
    return this.open && !this.closing;
  }

  /** amqplib reported the broker's close of the channel: the first report is the refusal. */
  refused(error: unknown): void {
    this.refusal ??= mapChannelError(error, this.channelId)
      ?? new ChannelError(`Channel ${this.channelId} failed: ${String(error)}`, { cause: error });
  }

  /** Marks the channel ended with `error` (undefined: closed by us); false when it already had. */
  end(error: KombuError | undefined): boolean {
    if (!this.open) return false;
    this.open = false;
    this.reason = error;
    return true;
  }

  /** Settles those waiting for the end (after the channel's own waits, see `AmqpChannel.#finish`). */
  notifyEnded(): void {
    this.#waiting?.settle(this.reason);
  }

  /** Resolves with how the channel ended (undefined: closed by us), once it has. */
  ended(): Promise<KombuError | undefined> {
    if (!this.open) return Promise.resolve(this.reason);
    return (this.#waiting ??= new Latch()).wait();
  }

  assertOpen(operation: string): void {
    if (!this.isOpen) throw this.closedError(operation);
  }

  closedError(operation: string): ChannelError {
    const reason = this.reason;
    return new ChannelError(
      `Channel ${this.channelId} is closed${reason ? ` (${reason.message})` : ''}; cannot ${operation}`,
      reason ? { cause: reason } : {},
    );
  }

  /** Runs one of amqplib's synchronous calls (ack, reject), throwing what its failure means. */
  sync(operation: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      throw this.isOpen
        ? new OperationalError(`Cannot ${operation} on channel ${this.channelId}: ${String(error)}`, { cause: error })
        : this.closedError(operation);
    }
  }

  /** Runs one of amqplib's RPCs on the open channel, rejecting with what its failure means. */
  async rpc<T>(operation: string, call: () => Promise<T>): Promise<T> {
    this.assertOpen(operation);
    try {
      return await call();
    } catch (error) {
      throw await this.operationError(error, operation);
    }
  }

  /** What a failed RPC rejects with: the broker's reason, else how the channel ended. */
  async operationError(error: unknown, operation: string): Promise<KombuError> {
    const id = this.channelId;
    const mapped = mapChannelError(error, id);
    if (mapped) return overtaken(mapped, operation, id) ?? mapped;
    if (error instanceof TypeError) return new OperationalError(`Cannot ${operation} on channel ${id}: ${error.message}`, { cause: error });
    // amqplib rejects pending calls as the channel ends ("Channel ended, no reply will be
    // forthcoming"); the reason is settled within the same tick, so one macrotask suffices.
    const reason = await Promise.race([this.ended(), new Promise<undefined>((resolve) => setImmediate(resolve, undefined))]);
    // This call did not get the broker's close: it was not the one refused (see overtaken).
    if (reason) return (reason instanceof ChannelError ? overtaken(reason, operation, id, false) : undefined) ?? reason;
    return this.isOpen
      ? new ChannelError(`${operation} failed on channel ${id}: ${String(error)}`, { cause: error })
      : this.closedError(operation);
  }

  /** A confirm callback's error: a nack, or the channel ending before the confirm. */
  async confirmError(error: unknown, exchange: string): Promise<KombuError> {
    if (error instanceof Error && error.message === 'message nacked') {
      return new MessageNacked(`The broker nacked a message published on channel ${this.channelId}`, { cause: error });
    }
    const reason = await this.operationError(error, 'publish');
    return this.publishOvertaken(exchange) ?? reason;
  }

  /**
   * A publish to `exchange` failed because the broker closed this channel over something
   * else: another message, one to an exchange it refused, or a call of another method (a
   * restore's queue.declare the publish was sent behind, an ack of an unknown tag). Not this
   * message's refusal, only its confirm lost (it may or may not have been routed). A
   * recoverable ChannelError, so that it is sent again on the reopened channel, as after a
   * lost connection; undefined otherwise.
   */
  publishOvertaken(exchange: string): ChannelError | undefined {
    const refusal = this.refusal;
    if (refusal?.classId === undefined) return undefined;
    const publishRefused = refusal.classId === BASIC_PUBLISH[0] && refusal.methodId === BASIC_PUBLISH[1];
    // A refused publish whose exchange cannot be read from the broker's text may be this one.
    const refused = publishRefused ? refusedPublishExchange(refusal) : undefined;
    if (publishRefused && (refused === undefined || refused === exchange)) return undefined;
    return new ChannelError(
      `Channel ${this.channelId} was closed before this message was confirmed, by the broker's refusal of another message or call (${refusal.message})`,
      { recoverable: true },
    );
  }
}
