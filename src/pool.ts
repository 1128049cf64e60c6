/**
 * ResourcePool: kombu's `Resource` (the base of its connection, channel and producer pools)
 * as a facade over a pool supervisor actor (machines/pool-machine.ts).
 *
 * Why the hand-off is not in the machine: an XState event to the pool actor costs 3-5 µs and
 * generic-pool does a whole acquire + release in ~0.8 µs (bench/pool-bench.ts measures both),
 * so two events per use would make the pool 5-10x slower than its peer. The split is:
 * - here, plain data: the free stack (LIFO, as kombu), the lent map (resource -> loan) and
 *   the FIFO of waiters. Acquiring a free member and releasing one touch nothing else; a
 *   release with waiters hands the member straight to the first of them.
 * - in the actor: the lifecycle. Members are child actors that create, watch, replace and
 *   destroy their resource; the pool spawns them (never beyond `limit`), retires them on
 *   resize and close, and runs each waiter's timeout as a delayed event. The facade sends it
 *   events only when supply must change (`member.spawn`, `member.retire`, `limit.set`) or a
 *   waiter with a timeout starts or stops waiting.
 * The status (size, in use, free, waiting, members) is computed lazily and published at most
 * once per tick, and only when someone subscribed, so observability costs the hot path a flag.
 * The lifecycle side (actor, member slots, resource I/O) is src/pool-supervisor.ts.
 */
import { EventEmitter } from 'eventemitter3';
import type { Actor } from 'xstate';
import type { poolMachine, PoolState } from '../machines/index.js';
import { ConnectionClosed, IllegalStateError, LimitExceeded, type KombuError } from './errors.js';
import { installObservable, type Observer, type Unsubscribe } from './observable.js';
import type { AcquireOptions, PoolEvents, PoolOptions, ResizeOptions } from './pool-options.js';
import { PoolStatusStore, type PoolStatus } from './pool-status.js';
import { PoolSupervisor, type MemberHooks, type Slot } from './pool-supervisor.js';
import { WaiterQueue } from './pool-waiters.js';
import { checkCount, checkSeconds } from './seconds.js';

export type { MemberStatus, PoolStatus } from './pool-status.js';
export type { AcquireOptions, PoolEvents, PoolOptions, ResizeOptions } from './pool-options.js';

/**
 * The pool machinery shared by {@link ConnectionPool}, {@link ChannelPool} and
 * {@link ProducerPool}; subclasses say how a member is created, watched and destroyed.
 *
 * @example
 * ```ts
 * const pool = conn.Pool({ limit: 5 });
 * const member = await pool.acquire({ block: true, timeout: 2 });
 * try { ... } finally { pool.release(member); }
 * await pool.use((c) => c.channel().then((ch) => ch.close()));
 * ```
 */
export abstract class ResourcePool<R extends object> extends EventEmitter<PoolEvents> {
  readonly #supervisor: PoolSupervisor<R>;
  readonly #free: Slot<R>[] = [];
  /** Resource -> its member, from creation to destruction (never churned on the hot path). */
  readonly #owner = new Map<R, Slot<R>>();
  /** Lent resources whose member died, retired or closed since: their release is just forgotten. */
  readonly #stale = new Set<R>();
  readonly #known = new WeakSet<R>();
  /** Members lent right now. */
  #lentCount = 0;
  readonly #waiters: WaiterQueue<R>;
  readonly #status: PoolStatusStore;
  /** The limit, mirrored from the actor's context for the hot path (0 = none). */
  #limit: number;
  #closed = false;
  #closing: Promise<void> | undefined;

  protected constructor(options: PoolOptions = {}) {
    super();
    const limit = checkCount(options.limit ?? 0, 'limit');
    this.#limit = limit;
    const preload = checkCount(options.preload ?? 0, 'preload');
    this.#status = new PoolStatusStore(() => this.#view(), (status) => this.emit('status', status), () => this.listenerCount('status') > 0);
    const hooks: MemberHooks<R> = {
      create: (signal) => this.create(signal),
      destroy: (resource) => this.destroy(resource),
      isAlive: (resource) => this.isAlive(resource),
      watch: (resource, onDeath, onChange) => this.watch(resource, onDeath, onChange),
      adopt: (resource, slot) => {
        this.#known.add(resource);
        this.#owner.set(resource, slot);
        this.attachRelease(resource, async () => this.release(resource));
      },
      disown: (resource) => {
        this.#owner.delete(resource);
        // A holder still has it (lent when it died or the pool closed): its own `release()`
        // must still reach us, to be forgotten below, instead of leaking its loan.
        if (!this.#stale.has(resource)) this.detachRelease(resource);
      },
    };
    this.#supervisor = new PoolSupervisor<R>({ limit, preload }, hooks, {
      ready: (slot) => this.#offer(slot),
      down: (slot) => this.#takeOut(slot),
      failed: (slot, error) => this.#onFailed(slot, error),
      removed: (slot) => {
        this.#takeOut(slot);
        this.#demand();
      },
      expired: (waiterId) => this.#onExpired(waiterId),
      changed: () => this.#status.touch(),
      member: (event) => this.emit('member', event),
    }, options.inspect);
    this.#waiters = new WaiterQueue<R>((waiterId) => this.#supervisor.waiterServed(waiterId));
  }

  /** Starts the pool actor (preloading members): subclasses call it last in their constructor. */
  protected start(): void {
    this.#supervisor.start();
  }

  /** Creates one member's resource (connecting it); aborts when `signal` does. */
  protected abstract create(signal: AbortSignal): Promise<R>;
  /** Closes a member's resource. */
  protected abstract destroy(resource: R): Promise<void>;
  /** False once the resource can no longer serve (failed, closed). */
  protected abstract isAlive(resource: R): boolean;
  /** Calls `onDeath` when the resource dies, `onChange` on any state change; returns the unsubscribe. */
  protected abstract watch(resource: R, onDeath: (error: unknown) => void, onChange: () => void): () => void;
  /** The resource's own machine state, for the status. */
  protected abstract stateOf(resource: R): string;

  /** Makes `resource.release()` give it back (kombu sets `R.release`); undone by {@link detachRelease}. */
  protected attachRelease(resource: R, release: () => Promise<void>): void {
    Object.defineProperty(resource, 'release', { value: release, configurable: true, writable: true, enumerable: false });
  }

  protected detachRelease(resource: R): void {
    delete (resource as { release?: unknown }).release;
  }

  /** A ready, unlent member: to the first waiter, else onto the free stack (or retired if over the limit). */
  #offer(slot: Slot<R>): void {
    const resource = slot.resource;
    if (resource === undefined || slot.state !== 'ready') return;
    if (slot.retire || this.#overLimit()) return this.#retire(slot);
    if (!this.isAlive(resource)) return this.#markDown(slot);
    const waiter = this.#waiters.next();
    this.#status.touch();
    if (!waiter) {
      this.#free.push(slot);
      return;
    }
    this.#lend(slot, resource);
    waiter.resolve(resource);
  }

  #lend(slot: Slot<R>, resource: R): void {
    slot.lent = true;
    slot.loan += 1;
    this.#lentCount += 1;
    this.#status.touch();
  }

  /** No longer free, no longer lent (its resource died or it retires). */
  #takeOut(slot: Slot<R>): void {
    const index = this.#free.indexOf(slot);
    if (index >= 0) this.#free.splice(index, 1);
    if (slot.lent) {
      slot.lent = false;
      this.#lentCount -= 1;
      if (slot.resource !== undefined) this.#stale.add(slot.resource);
    }
    this.#status.touch();
  }

  #markDown(slot: Slot<R>): void {
    this.#takeOut(slot);
    this.#supervisor.markDown(slot);
  }

  #retire(slot: Slot<R>): void {
    this.#takeOut(slot);
    this.#supervisor.retire(slot);
  }

  #onFailed(slot: Slot<R> | undefined, error: KombuError): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    // Who asked not to wait hears of it; blocking waiters keep waiting (their timeout bounds
    // it) unless the failure is for good, which the oldest waiter hears.
    this.#waiters.rejectOne(error, !error.recoverable);
    if (slot) this.#status.touch();
  }

  #onExpired(waiterId: number): void {
    this.#status.touch();
    this.#waiters.expire(waiterId)?.reject(new LimitExceeded(`No pool member free within the timeout (limit ${this.limit}).`));
  }

  #overLimit(): boolean {
    return this.#limit > 0 && this.#supervisor.active > this.#limit;
  }

  /** Spawns members while waiters outnumber the members on their way. */
  #demand(): void {
    this.#status.touch();
    if (this.#closed) return;
    const need = this.#waiters.length - this.#supervisor.coming;
    if (need > 0 && (this.#limit === 0 || this.#supervisor.slots.size < this.#limit)) this.#supervisor.spawn(need);
  }

  /**
   * Acquires a member: a free one (the most recently released, as kombu), else a new one while
   * under the limit, else `block: false` rejects with `LimitExceeded` at once and `block: true`
   * waits in FIFO order, at most `timeout` seconds (then `LimitExceeded`; `Infinity`: no limit;
   * 0: no wait; NaN or negative: `ConfigurationError`). Never resolves with a
   * dead member.
   *
   * @example
   * ```ts
   * const conn = await pool.acquire({ block: true, timeout: 5 });
   * try { await (await conn.channel()).publish(body, props, '', 'tasks'); } finally { await conn.release(); }
   * ```
   */
  acquire(options: AcquireOptions = {}): Promise<R> {
    if (this.#closed) return Promise.reject(new IllegalStateError('Acquire on a closed pool.', this.state));
    while (this.#free.length > 0) {
      const slot = this.#free.pop() as Slot<R>;
      const resource = slot.resource as R;
      if (!this.isAlive(resource)) {
        this.#markDown(slot);
        continue;
      }
      this.#lend(slot, resource);
      return Promise.resolve(resource);
    }
    return this.#wait(options);
  }

  #wait(options: AcquireOptions): Promise<R> {
    const block = options.block ?? false;
    const limit = this.limit;
    const atLimit = limit > 0 && this.#supervisor.slots.size >= limit;
    if (!block && atLimit && this.#supervisor.coming <= this.#waiters.length) {
      return Promise.reject(new LimitExceeded(`Pool limit ${limit} reached: every member is in use.`));
    }
    const timeout = options.timeout;
    try {
      checkSeconds(timeout, 'timeout');
    } catch (error) {
      return Promise.reject(error);
    }
    // Infinity: waits like no timeout at all (no timer in the pool actor).
    const timed = timeout !== undefined && timeout !== Infinity;
    return new Promise<R>((resolve, reject) => {
      const waiter = this.#waiters.add(block, timed, resolve, reject);
      if (timed) this.#supervisor.waiterWait(waiter.id, timeout);
      this.#status.touch();
      this.#demand();
    });
  }

  /**
   * Gives a member back (kombu's `release`); the member's own `release()` does the same.
   * Releasing twice, or a resource this pool did not lend, throws `IllegalStateError`.
   *
   * @example
   * ```ts
   * const conn = await pool.acquire({ block: true });
   * pool.release(conn);               // or: await conn.release()
   * ```
   */
  release(resource: R): void {
    const slot = this.#owner.get(resource);
    if (slot !== undefined && slot.lent && slot.resource === resource) {
      slot.lent = false;
      this.#lentCount -= 1;
      this.#status.touch();
      this.#offer(slot);
      return;
    }
    // Lent before its member died, retired or the pool closed: just forget it.
    if (this.#stale.delete(resource)) {
      if (!this.#owner.has(resource)) this.detachRelease(resource);
      this.#status.touch();
      return;
    }
    const why = this.#known.has(resource) ? 'was already released' : 'does not belong to this pool';
    throw new IllegalStateError(`Cannot release: the resource ${why}.`, this.state);
  }

  /**
   * Acquires a member, runs `fn` with it and releases it, even when `fn` throws. Waits for a
   * member unless told `block: false` (default `block: true` here).
   *
   * @example
   * ```ts
   * const n = await pool.use(async (conn) => (await conn.channel()).purgeQueue('tasks'), { timeout: 5 });
   * ```
   */
  async use<T>(fn: (resource: R) => T | Promise<T>, options: AcquireOptions = {}): Promise<T> {
    const resource = await this.acquire({ block: true, ...options });
    const slot = this.#owner.get(resource);
    const loan = slot?.loan;
    try {
      return await fn(resource);
    } finally {
      // Unless `fn` gave it back itself (it may be lent to someone else by now).
      if ((slot?.lent && slot.resource === resource && slot.loan === loan) || this.#stale.has(resource)) this.release(resource);
    }
  }

  /**
   * Resolves once the preloaded members are ready (at once without `preload`); rejects when
   * creating one fails.
   *
   * @example
   * ```ts
   * const pool = await conn.Pool({ limit: 10, preload: 2 }).ready();
   * ```
   */
  ready(): Promise<this> {
    if (this.#closed) return Promise.reject(new IllegalStateError('The pool is closed.', this.state));
    return this.#supervisor.ready().then(() => this);
  }

  /**
   * Changes the limit (kombu's `resize`). Shrinking while members are in use throws
   * `IllegalStateError` unless `force` (close every member) or `ignoreErrors` (members over the
   * limit retire as they come back). Growing serves waiting acquirers at once.
   *
   * @example
   * ```ts
   * pool.resize(2, { ignoreErrors: true });   // or: pool.limit = 2
   * ```
   */
  resize(limit: number, options: ResizeOptions = {}): void {
    const next = checkCount(limit, 'limit');
    const previous = this.limit;
    let reset = options.reset ?? false;
    // kombu's test (`0 < limit < self._limit`): from no limit to one is not refused.
    const shrinking = next > 0 && next < previous;
    if (shrinking && this.inUse > 0 && !options.ignoreErrors) {
      if (!options.force) throw new IllegalStateError(`Cannot shrink the pool while members are in use: was ${previous}, now ${next}.`, this.state);
      reset = true;
    }
    if (this.#closed) return;
    this.#supervisor.setLimit(next);
    this.#limit = next;
    if (reset) {
      for (const slot of [...this.#supervisor.slots.values()]) if (slot.state !== 'retiring') this.#retire(slot);
    } else if (this.#overLimit()) {
      // Least recently used first: the bottom of the LIFO stack.
      for (const slot of [...this.#free]) if (this.#overLimit()) this.#retire(slot);
      for (const slot of [...this.#supervisor.slots.values()]) if (slot.state === 'creating' && this.#overLimit()) this.#retire(slot);
    }
    this.#demand();
  }

  /**
   * Closes every member (in use or not) and rejects waiting acquirers with `ConnectionClosed`;
   * leaves no timer, socket or actor behind. Safe to call twice.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void pool.close());
   * ```
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const error = new ConnectionClosed('The pool was closed while waiting for a member.');
    this.#waiters.rejectAll(error);
    for (const slot of this.#supervisor.slots.values()) this.#takeOut(slot);
    this.#closing = this.#supervisor.close().then(() => this.#status.complete());
    return this.#closing;
  }

  /** kombu's `force_close_all`: the same as {@link close}. */
  forceCloseAll(): Promise<void> {
    return this.close();
  }

  #view(): PoolStatus {
    const members = this.#supervisor.describe((resource) => this.stateOf(resource));
    return { state: this.state, limit: this.#limit, size: members.length, inUse: this.inUse, free: this.#free.length, waiting: this.#waiters.length, members };
  }

  /** The limit (0 = none). Setting it resizes as kombu's `limit` setter does. */
  get limit(): number {
    return this.#limit;
  }
  set limit(limit: number) {
    this.resize(limit);
  }
  /** The pool actor's state: `running`, `closing`, `closed`. */
  get state(): PoolState {
    return this.#supervisor.state;
  }
  /** Members alive (free, in use, being created or replaced). */
  get size(): number {
    return this.#supervisor.slots.size;
  }
  get inUse(): number {
    return this.#lentCount + this.#stale.size;
  }
  get free(): number {
    return this.#free.length;
  }
  get waiting(): number {
    return this.#waiters.length;
  }
  /** The pool actor (XState), for inspection; members are its children. */
  get actor(): Actor<typeof poolMachine> {
    return this.#supervisor.actor;
  }

  /** The current status (stable reference between changes: fit for `useSyncExternalStore`). */
  getSnapshot = (): PoolStatus => this.#status.get();

  /** Subscribes to status changes; calls `listener` at once with the current status. */
  subscribe = (listener: ((status: PoolStatus) => void) | Observer<PoolStatus>): Unsubscribe => this.#status.subscribe(listener);
}

installObservable(ResourcePool.prototype);
