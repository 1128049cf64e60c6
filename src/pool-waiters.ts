/**
 * The FIFO of acquirers waiting for a pool member. Plain data on the hot path: only a waiter
 * with a timeout involves the pool actor (its timer is a delayed event there), and leaving the
 * queue by any way but that timer cancels it (`onServed`).
 */

/** @internal */
export interface Waiter<R> {
  id: number;
  /** Asked to wait (`block: true`); a non-blocking acquirer only waits for a member being created. */
  block: boolean;
  timed: boolean;
  resolve: (resource: R) => void;
  reject: (error: Error) => void;
}

/** @internal */
export class WaiterQueue<R> {
  readonly #items: Waiter<R>[] = [];
  readonly #onServed: (waiterId: number) => void;
  #nextId = 1;

  /** `onServed(id)` cancels the timer of a timed waiter that leaves the queue. */
  constructor(onServed: (waiterId: number) => void) {
    this.#onServed = onServed;
  }

  get length(): number {
    return this.#items.length;
  }

  add(block: boolean, timed: boolean, resolve: (resource: R) => void, reject: (error: Error) => void): Waiter<R> {
    const waiter: Waiter<R> = { id: this.#nextId++, block, timed, resolve, reject };
    this.#items.push(waiter);
    return waiter;
  }

  /** Takes the oldest waiter (its timer cancelled), to be served. */
  next(): Waiter<R> | undefined {
    const waiter = this.#items.shift();
    if (waiter?.timed) this.#onServed(waiter.id);
    return waiter;
  }

  /** Takes the waiter whose timer ran out (if it still waits). */
  expire(waiterId: number): Waiter<R> | undefined {
    const index = this.#items.findIndex((w) => w.id === waiterId);
    return index >= 0 ? this.#items.splice(index, 1)[0] : undefined;
  }

  /** Rejects the oldest non-blocking waiter, or the oldest of all with `anyone`. */
  rejectOne(error: Error, anyone: boolean): boolean {
    const index = anyone ? 0 : this.#items.findIndex((w) => !w.block);
    const waiter = index >= 0 ? this.#items.splice(index, 1)[0] : undefined;
    if (!waiter) return false;
    if (waiter.timed) this.#onServed(waiter.id);
    waiter.reject(error);
    return true;
  }

  /** Rejects everyone (the pool is closing: its actor cancels every timer). */
  rejectAll(error: Error): void {
    for (const waiter of this.#items.splice(0)) waiter.reject(error);
  }
}
