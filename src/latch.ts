/**
 * A one-shot outcome (a channel or connection has ended, and why) that allocates no promise
 * until somebody waits for it: most transport connections and channels are never awaited
 * closed, and a pending promise with its resolver costs about 200 bytes each.
 *
 * @example
 * ```ts
 * const closed = new Latch<Error | undefined>();
 * socket.once('close', () => closed.settle(undefined));
 * const reason = await closed.wait();
 * ```
 */
export class Latch<T> {
  #settled = false;
  #value: T | undefined;
  #promise: Promise<T> | undefined;
  #resolve: ((value: T) => void) | undefined;

  /** Settles with `value`; later calls are ignored. */
  settle(value: T): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#value = value;
    this.#resolve?.(value);
    this.#resolve = undefined;
  }

  /** Resolves with the value once settled. */
  wait(): Promise<T> {
    if (this.#settled) return this.#promise ?? Promise.resolve(this.#value as T);
    return (this.#promise ??= new Promise<T>((resolve) => (this.#resolve = resolve)));
  }
}
