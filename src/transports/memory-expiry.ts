/**
 * Dead-lettering on time for the `memory://` broker. RabbitMQ dead-letters expired messages
 * as their TTL runs out even if nobody touches their queue (the TTL + DLX delayed-retry
 * pattern), so every queue with `x-dead-letter-exchange` and an expiring head gets one
 * timer, armed for the earliest expiry at its heads (one per priority level), unref'd, and
 * cleared when the queue is deleted or the broker reset. No timer per message.
 */
import { afterMs, type Timer } from '../seconds.js';
import type { MemoryQueue, StoredMessage } from './memory-queue.js';

/** The expiry timers of one broker's queues. */
export class ExpiryTimers {
  private readonly timers = new Map<MemoryQueue, { at: number; timer: Timer }>();

  constructor(
    private readonly now: () => number,
    private readonly onExpired: (queue: MemoryQueue, message: StoredMessage) => void,
  ) {}

  /** (Re)arms the queue's timer for its earliest expiring head, if it dead-letters. */
  arm(queue: MemoryQueue): void {
    if (queue.deleted || queue.deadLetterExchange === undefined) return;
    const at = queue.nextExpiry();
    const armed = this.timers.get(queue);
    if (armed && armed.at === at) return;
    this.disarm(queue);
    if (at === undefined) return;
    // afterMs: a TTL past Node's timer limit (~24.8 days) would fire after 1 ms, re-arm, and spin.
    const timer = afterMs(Math.max(0, at - this.now()), () => {
      this.timers.delete(queue);
      if (queue.deleted) return;
      queue.expireHeads(this.now(), (m) => this.onExpired(queue, m));
      this.arm(queue);
    }, { unref: true });
    this.timers.set(queue, { at, timer });
  }

  /** Clears the queue's timer (the queue was deleted). */
  disarm(queue: MemoryQueue): void {
    this.timers.get(queue)?.timer.cancel();
    this.timers.delete(queue);
  }

  /** Clears every timer (broker reset). */
  reset(): void {
    for (const { timer } of this.timers.values()) timer.cancel();
    this.timers.clear();
  }
}
