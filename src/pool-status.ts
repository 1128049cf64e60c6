/**
 * The observable status of a pool, computed lazily.
 *
 * The pool's hot path (acquire, release) only calls `touch()`: a flag, plus one microtask per
 * tick when someone subscribed. The status object is built when it is read (`get()`) or when
 * that microtask publishes it, and a status equal to the previous one keeps the previous
 * reference, so `useSyncExternalStore` sees a stable snapshot between real changes.
 */
import { Store, type Observer, type Unsubscribe } from './observable.js';

/** One member as the status shows it. */
export interface MemberStatus {
  id: string;
  /** The member actor's state: `creating`, `backoff`, `ready`, `replacing`, `retiring`. */
  state: string;
  /** The resource's own machine state (`connected`, `connecting`, `open`...), once created. */
  resource: string | undefined;
  inUse: boolean;
  /** Times the member's resource died and was replaced. */
  restarts: number;
}

/** What `pool.subscribe()` and `pool.getSnapshot()` give. */
export interface PoolStatus {
  /** The pool actor's state: `running`, `closing`, `closed`. */
  state: string;
  /** 0 = no limit. */
  limit: number;
  /** Members alive (free, in use, being created, replaced or retired). */
  size: number;
  inUse: number;
  free: number;
  /** Acquirers waiting for a member. */
  waiting: number;
  members: MemberStatus[];
}

const sameMember = (a: MemberStatus, b: MemberStatus | undefined): boolean =>
  b !== undefined && a.id === b.id && a.state === b.state && a.resource === b.resource && a.inUse === b.inUse && a.restarts === b.restarts;

function sameStatus(a: PoolStatus, b: PoolStatus): boolean {
  return (
    a.state === b.state && a.limit === b.limit && a.size === b.size && a.inUse === b.inUse && a.free === b.free && a.waiting === b.waiting &&
    a.members.length === b.members.length && a.members.every((m, i) => sameMember(m, b.members[i]))
  );
}

/** @internal The lazily computed, batched status of one pool. */
export class PoolStatusStore {
  readonly #read: () => PoolStatus;
  readonly #publish: (status: PoolStatus) => void;
  readonly #listening: () => boolean;
  #store: Store<PoolStatus> | undefined;
  #dirty = true;
  #scheduled = false;
  #observers = 0;
  #done = false;

  /** `publish` gets each new status when `listening()` (or a subscriber) asks for it. */
  constructor(read: () => PoolStatus, publish: (status: PoolStatus) => void, listening: () => boolean) {
    this.#read = read;
    this.#publish = publish;
    this.#listening = listening;
  }

  /** Something changed: recompute on the next read, publish once this tick if anyone listens. */
  touch(): void {
    this.#dirty = true;
    if (!this.#scheduled && !this.#done && (this.#observers > 0 || this.#listening())) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.get();
      });
    }
  }

  get(): PoolStatus {
    if (!this.#store) {
      this.#dirty = false;
      this.#store = new Store(this.#read());
      return this.#store.get();
    }
    if (!this.#dirty || this.#done) return this.#store.get();
    this.#dirty = false;
    const next = this.#read();
    if (!sameStatus(next, this.#store.get())) {
      this.#store.set(next);
      this.#publish(next);
    }
    return this.#store.get();
  }

  subscribe(listener: ((status: PoolStatus) => void) | Observer<PoolStatus>): Unsubscribe {
    this.get();
    const store = this.#store as Store<PoolStatus>;
    if (this.#done) return store.subscribe(listener);
    this.#observers += 1;
    const inner = store.subscribe(listener);
    let active = true;
    const off = (): void => {
      if (!active) return;
      active = false;
      this.#observers -= 1;
      inner();
    };
    return Object.assign(off, { unsubscribe: off });
  }

  /** The pool is closed: publish the last status and end every subscription. */
  complete(): void {
    if (this.#done) return;
    this.#dirty = true;
    this.get();
    this.#done = true;
    this.#store?.complete();
  }
}
