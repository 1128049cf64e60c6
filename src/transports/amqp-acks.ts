/**
 * Ack coalescing for one AMQP channel: the bookkeeping, no I/O (the channel sends).
 *
 * Acks made in the same tick are sent together at the end of it, and a run of them that
 * covers every unsettled delivery from the oldest up goes as one `basic.ack` with `multiple`
 * (what a consumer acking each message in order produces): the broker then handles one ack
 * instead of hundreds. The batch knows which deliveries are unsettled (the channel reports each
 * one that arrives with acks required), so a multiple ack never settles a message the
 * application has not acked. The channel sends the waiting acks before any reject, `recover()`
 * or `close()`, so the broker sees every settlement in the order it was made.
 */

/** The acks to send now, in this order. */
export interface AckFrames {
  /** One `basic.ack` with `multiple` up to this tag, when a run of two or more allows it. */
  upTo: number | undefined;
  /** Then one `basic.ack` per tag. */
  single: readonly number[];
}

/**
 * @example
 * ```ts
 * const acks = new AckBatch(() => flush());   // flush() sends acks.take()
 * acks.received(1); acks.received(2); acks.received(3);
 * acks.defer(1); acks.defer(2);                // same tick
 * acks.take();                                 // { upTo: 2, single: [] }: one multiple ack
 * ```
 */
export class AckBatch {
  /** Delivery tags received with acks required and not settled yet, oldest first. */
  readonly #unsettled = new Set<number>();
  /** Tags acked this tick, in the order acked. */
  #acked: number[] = [];
  /** Sends the batch; runs on the next tick after the first deferred ack. */
  readonly #due: () => void;

  constructor(due: () => void) {
    this.#due = due;
  }

  /** A delivery that needs an ack arrived. */
  received(tag: number): void {
    this.#unsettled.add(tag);
  }

  /**
   * Defers the ack of `tag` to the end of this tick. False, and nothing deferred, when `tag`
   * is not an unsettled delivery: the caller sends that ack itself.
   */
  defer(tag: number): boolean {
    if (!this.#unsettled.has(tag)) return false;
    if (this.#acked.length === 0) process.nextTick(this.#due);
    this.#acked.push(tag);
    return true;
  }

  /** Takes the deferred acks as the frames that send them, and counts them settled. */
  take(): AckFrames | undefined {
    const acks = this.#acked;
    if (acks.length === 0) return undefined;
    this.#acked = [];
    const acked = new Set(acks);
    let upTo = -1;
    let run = 0;
    for (const tag of this.#unsettled) {
      if (!acked.has(tag)) break;
      upTo = tag;
      run += 1;
    }
    for (const tag of acks) this.#unsettled.delete(tag);
    return run > 1 ? { upTo, single: acks.filter((tag) => tag > upTo) } : { upTo: undefined, single: acks };
  }

  /** An ack or reject of `tag` was sent; with `multiple`, of every delivery up to it (0 = all). */
  settled(tag: number, multiple: boolean): void {
    if (!multiple) {
      this.#unsettled.delete(tag);
      return;
    }
    for (const open of this.#unsettled) {
      if (tag !== 0 && open > tag) break;
      this.#unsettled.delete(open);
    }
  }

  /** Every delivery ends unsettled (the channel closed, or `recover()` hands them back). */
  clear(): void {
    this.#unsettled.clear();
    this.#acked = [];
  }
}
