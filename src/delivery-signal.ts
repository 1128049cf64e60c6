/**
 * kombu's `drain_events` for a Node library: deliveries run their consumers' callbacks as
 * they arrive (nothing waits in a queue for the caller to pull), and `drainEvents()` resolves
 * when one has happened. A delivery that arrived while nobody was draining is counted, so
 * `publish(); await drainEvents()` does not miss a message that came back before the await.
 */
import { ConnectionClosed, TimeoutError } from './errors.js';
import { afterSeconds, checkSeconds, type Timer } from './seconds.js';

/**
 * @example
 * ```ts
 * const signal = new DeliverySignal();
 * const drained = signal.wait({ timeout: 5 }, () => false);
 * signal.notify(); // a consumer callback ran: `drained` resolves
 * ```
 */
export class DeliverySignal {
  #waiters: Set<(error?: Error) => void> | undefined;
  /** Deliveries that happened while nobody was draining: each later wait takes one. */
  #undrained = 0;

  /** One delivery happened. */
  notify(): void {
    const waiters = this.#waiters;
    if (!waiters || waiters.size === 0) {
      this.#undrained += 1;
      return;
    }
    this.#waiters = undefined;
    for (const wake of waiters) wake();
  }

  /**
   * Resolves at the next delivery (or at once for one not drained yet); rejects with
   * `TimeoutError` after `timeout` seconds (`Infinity`: never; 0: unless one is already
   * there), and with `ConnectionClosed` when woken by {@link close} (`isClosed` says which).
   * A timeout that is no number of seconds >= 0 rejects with `ConfigurationError`, waiting for nothing.
   */
  wait(options: { timeout?: number | undefined }, isClosed: () => boolean): Promise<void> {
    try {
      checkSeconds(options.timeout, 'drainEvents timeout');
    } catch (error) {
      return Promise.reject(error);
    }
    const { timeout } = options;
    if (this.#undrained > 0) {
      this.#undrained -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      let timer: Timer | undefined;
      const wake = (error?: Error): void => {
        timer?.cancel();
        if (error) reject(error);
        else if (isClosed()) reject(new ConnectionClosed('The connection was closed while draining events.'));
        else resolve();
      };
      (this.#waiters ??= new Set()).add(wake);
      if (timeout !== undefined) {
        timer = afterSeconds(timeout, () => {
          this.#waiters?.delete(wake);
          reject(new TimeoutError(`No event within ${timeout} s.`));
        });
      }
    });
  }

  /** Wakes every waiter (they reject: the connection is closed). */
  close(): void {
    const waiters = this.#waiters;
    this.#waiters = undefined;
    if (waiters) for (const wake of waiters) wake();
  }

  /** Rejects every waiter with `error` (the connection failed for good). */
  fail(error: Error): void {
    const waiters = this.#waiters;
    this.#waiters = undefined;
    if (waiters) for (const wake of waiters) wake(error);
  }
}
