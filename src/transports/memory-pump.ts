/**
 * The delivery pump of the `memory://` broker: moves ready messages to consumers.
 *
 * Why deliveries are asynchronous: a publish (or ack, requeue, qos, new consumer) only marks
 * the queue "dirty"; the pump, scheduled with `queueMicrotask`, hands messages over later. So
 * a consumer callback never runs inside `publish()` (no re-entrancy surprises, the ordering of
 * a real broker), and microtasks still run under `vi.useFakeTimers()`, whose defaults leave
 * them alone. One pump delivers at most {@link MAX_BATCH} messages, then yields to I/O with a
 * `setImmediate` it keeps a handle on, so `reset()` can cancel it: nothing outlives a reset.
 *
 * Each delivery asks the consumer's channel first (`canDeliver`: open, under prefetch), and
 * consumers of a queue are served round-robin. While paused (a stalled broker), nothing moves;
 * resuming marks every queue dirty again.
 */
import type { MemoryQueue, StoredMessage } from './memory-queue.js';

/** Deliveries per pump before yielding to I/O. */
export const MAX_BATCH = 1000;

export class DeliveryPump {
  private readonly dirty = new Set<MemoryQueue>();
  private state: 'idle' | 'scheduled' | 'running' = 'idle';
  private immediate: NodeJS.Immediate | undefined;
  /** Bumped by reset(): a pump scheduled before it does nothing. */
  private epoch = 0;
  private paused = false;
  /** Runs so far: a message that arrived dead (TTL 0) may go out in the run after its arrival. */
  private runs = 0;

  constructor(
    private readonly now: () => number,
    private readonly onExpired: (queue: MemoryQueue, message: StoredMessage) => void,
  ) {}

  /** Marks a queue as having work for its consumers and schedules a pump if none is due. */
  schedule(queue: MemoryQueue): void {
    if (queue.consumers.length === 0 || queue.messageCount === 0) return;
    this.dirty.add(queue);
    if (this.state !== 'idle' || this.paused) return;
    this.state = 'scheduled';
    const epoch = this.epoch;
    queueMicrotask(() => this.run(epoch));
  }

  /** The number of the next run that has not started yet. */
  get nextRun(): number {
    return this.runs + 1;
  }

  /** Forgets a deleted queue. */
  forget(queue: MemoryQueue): void {
    this.dirty.delete(queue);
  }

  /** Stops (true) or restarts (false) deliveries; restarting looks at every queue again. */
  setPaused(paused: boolean, queues: Iterable<MemoryQueue>): void {
    this.paused = paused;
    if (!paused) for (const queue of queues) this.schedule(queue);
  }

  /** Cancels any scheduled pump and forgets every queue. */
  reset(): void {
    this.epoch++;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.state = 'idle';
    this.dirty.clear();
    this.paused = false;
  }

  private run(epoch: number): void {
    if (epoch !== this.epoch) return;
    this.immediate = undefined;
    this.state = 'running';
    this.runs++;
    let budget = MAX_BATCH;
    for (const queue of this.dirty) {
      if (this.paused || budget <= 0) break;
      this.dirty.delete(queue);
      budget -= this.drain(queue, budget);
    }
    if (epoch !== this.epoch) return;
    this.state = 'idle';
    if (this.dirty.size === 0 || this.paused) return;
    this.state = 'scheduled';
    if (budget > 0) queueMicrotask(() => this.run(epoch));
    else this.immediate = setImmediate(() => this.run(epoch));
  }

  private drain(queue: MemoryQueue, budget: number): number {
    let delivered = 0;
    const now = this.now();
    while (delivered < budget && !this.paused && !queue.deleted && queue.messageCount > 0) {
      const consumer = queue.nextConsumer((c) => c.channel.canDeliver(c));
      if (!consumer) break;
      const message = queue.shift(now, (m) => this.onExpired(queue, m), this.runs);
      if (!message) break;
      consumer.channel.deliver(consumer, queue, message);
      delivered++;
    }
    if (delivered >= budget && queue.messageCount > 0) this.dirty.add(queue);
    return delivered;
  }
}
