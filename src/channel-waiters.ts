/**
 * The calls waiting for one Channel to be usable again: operations wait for it to reopen,
 * publishes also for the broker to stop blocking the connection (flow control). Publishes are
 * bounded, at most `maxBuffered` waiting at once and each for at most `timeout` seconds, so
 * that an outage or a memory alarm cannot grow memory without bound: waiting here, not in the
 * socket's buffers, is what makes those bounds hold. Waiters are released in the order they
 * came.
 */
import { LimitExceeded, TimeoutError } from './errors.js';
import { afterSeconds, type Timer } from './seconds.js';
import type { TransportChannel } from './transports/transport.js';

interface Waiter {
  resolve: (channel: TransportChannel) => void;
  reject: (error: Error) => void;
  /** A publish: it also waits while the connection is blocked. */
  publish?: true;
}

/**
 * @example
 * ```ts
 * const waiters = new ChannelWaiters(1);
 * const channel = waiters.publish({ maxBuffered: 10_000, timeout: 5 }); // while reconnecting
 * waiters.release(reopened, false);                                      // `channel` resolves
 * ```
 */
export class ChannelWaiters {
  readonly #channelId: number;
  readonly #waiters = new Set<Waiter>();
  #buffered = 0;

  constructor(channelId: number) {
    this.#channelId = channelId;
  }

  /** Publishes waiting now. */
  get buffered(): number {
    return this.#buffered;
  }

  /** True when nobody waits. */
  get empty(): boolean {
    return this.#waiters.size === 0;
  }

  /** Waits for the channel to reopen. */
  operation(): Promise<TransportChannel> {
    return new Promise((resolve, reject) => this.#waiters.add({ resolve, reject }));
  }

  /**
   * Waits for the channel to be writable, as one of at most `maxBuffered` publishes, for at
   * most `timeout` seconds (`Infinity`: no limit): beyond either it rejects with
   * `LimitExceeded` / `TimeoutError`.
   */
  publish(options: { maxBuffered?: number | undefined; timeout?: number | undefined }): Promise<TransportChannel> {
    const { maxBuffered, timeout } = options;
    if (maxBuffered !== undefined && this.#buffered >= maxBuffered) {
      return Promise.reject(
        new LimitExceeded(`Publish buffer full: ${this.#buffered} messages already wait for channel ${this.#channelId} (reconnecting, or blocked by the broker; maxBufferedMessages is ${maxBuffered}).`),
      );
    }
    this.#buffered += 1;
    return new Promise((resolve, reject) => {
      let timer: Timer | undefined;
      const done = (): void => {
        timer?.cancel();
        this.#buffered -= 1;
      };
      const waiter: Waiter = {
        publish: true,
        resolve: (channel) => {
          done();
          resolve(channel);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      this.#waiters.add(waiter);
      if (timeout !== undefined) {
        timer = afterSeconds(timeout, () => {
          this.#waiters.delete(waiter);
          done();
          reject(new TimeoutError(`Publish timed out after ${timeout} s waiting for channel ${this.#channelId} (reconnecting, or blocked by the broker; publishTimeout).`));
        });
      }
    });
  }

  /** Hands `channel` to the waiters, in order; publishes stay while the connection is `blocked`. */
  release(channel: TransportChannel, blocked: boolean): void {
    for (const waiter of this.#waiters) {
      if (blocked && waiter.publish) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(channel);
    }
  }

  /**
   * Hands `channel` to the publishes at the head of the line, up to the first waiting
   * operation: those may go before the channel is fully restored, and none overtakes a
   * declaration a caller made before it.
   */
  releasePublishes(channel: TransportChannel): void {
    for (const waiter of this.#waiters) {
      if (!waiter.publish) return;
      this.#waiters.delete(waiter);
      waiter.resolve(channel);
    }
  }

  /** Rejects every waiter with `error`. */
  fail(error: Error): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.reject(error);
  }
}
