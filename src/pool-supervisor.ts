/**
 * The lifecycle half of a pool: runs the pool supervisor actor (machines/pool-machine.ts),
 * supplies its member actors' I/O (create, watch, destroy a resource) and keeps one `Slot` per
 * member actor. It knows whether a member is being created, ready or retiring; it does not
 * know whether a ready member is free or lent: that is src/pool.ts's hot path.
 *
 * Member actors start synchronously inside the pool actor's transition, before `send()` or
 * `start()` returns, so a slot is made on first sight from whichever side sees it first.
 */
import { createActor, fromCallback, fromPromise, type Actor, type ActorOptions, type AnyActorLogic } from 'xstate';
import { poolMachine, poolMemberMachine, summarizeError, type ErrorSummary, type PoolMemberEvent, type PoolState } from '../machines/index.js';
import { ConnectionClosed, KombuError } from './errors.js';
import type { MemberStatus } from './pool-status.js';
import { longClock } from './seconds.js';

/** @internal One member as the facade sees it. */
export interface Slot<R> {
  id: string;
  state: 'creating' | 'ready' | 'retiring';
  /** Lent right now. */
  lent: boolean;
  /** Retire it when it comes back. */
  retire: boolean;
  resource: R | undefined;
  /** The creation in flight: destroying a member waits for it (it cleans up after itself). */
  creation: Promise<void> | undefined;
  /** Its actor's transitions are being followed. */
  observed: boolean;
  /** Times lent (tells one loan of the same resource from the next). */
  loan: number;
}

/** @internal How members' resources are made and followed (supplied by the pool subclass). */
export interface MemberHooks<R> {
  create(signal: AbortSignal): Promise<R>;
  destroy(resource: R): Promise<void>;
  isAlive(resource: R): boolean;
  watch(resource: R, onDeath: (error: unknown) => void, onChange: () => void): () => void;
  /** A new resource joined the pool (attach its own `release()`). */
  adopt(resource: R, slot: Slot<R>): void;
  /** A resource leaves the pool (detach its `release()`). */
  disown(resource: R): void;
}

/** @internal What the supervisor reports to the pool. */
export interface SupervisorListener<R> {
  ready(slot: Slot<R>): void;
  down(slot: Slot<R>): void;
  failed(slot: Slot<R> | undefined, error: KombuError): void;
  removed(slot: Slot<R>): void;
  expired(waiterId: number): void;
  changed(): void;
  member(event: { memberId: string; from: string; to: string }): void;
}

const noop = (): void => undefined;
/** Actions never throw (an exception there orphans children): a listener's bug surfaces on its own. */
const safely = (fn: () => void): void => {
  try {
    fn();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
};

/** @internal */
export class PoolSupervisor<R> {
  readonly actor: Actor<typeof poolMachine>;
  readonly slots = new Map<string, Slot<R>>();
  /** Members on their way to `ready` (created, restarted). */
  coming = 0;
  /** Members retiring (still counted by the actor against the limit). */
  retiring = 0;
  readonly #hooks: MemberHooks<R>;
  readonly #listener: SupervisorListener<R>;
  readonly #preload: number;
  readonly #readyWaiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>();
  #everReady = 0;
  #closed = false;

  constructor(input: { limit: number; preload: number }, hooks: MemberHooks<R>, listener: SupervisorListener<R>, inspect: ActorOptions<AnyActorLogic>['inspect'] | undefined) {
    this.#hooks = hooks;
    this.#listener = listener;
    this.#preload = input.preload;
    this.actor = createActor(this.#provide(), { input, clock: longClock, ...(inspect ? { inspect } : {}) });
    this.actor.subscribe({ next: () => listener.changed(), error: noop });
  }

  start(): void {
    this.actor.start();
    this.#sync();
  }

  get limit(): number {
    return this.actor.getSnapshot().context.limit;
  }
  get state(): PoolState {
    return this.actor.getSnapshot().value as PoolState;
  }
  /** Members not retiring. */
  get active(): number {
    return this.slots.size - this.retiring;
  }

  /** Every member as the status shows it; `stateOf` gives a resource's own machine state. */
  describe(stateOf: (resource: R) => string): MemberStatus[] {
    const children = this.actor.getSnapshot().children;
    return [...this.slots.values()].map((slot) => {
      const snapshot = children[slot.id]?.getSnapshot() as { value?: unknown; context?: { restarts?: number } } | undefined;
      return {
        id: slot.id,
        state: String(snapshot?.value ?? 'retired'),
        resource: slot.resource === undefined ? undefined : stateOf(slot.resource),
        inUse: slot.lent,
        restarts: snapshot?.context?.restarts ?? 0,
      };
    });
  }

  /** Resolves once the preloaded members were ready; rejects when creating one fails or on close. */
  ready(): Promise<void> {
    const limit = this.limit;
    if (this.#everReady >= (limit > 0 ? Math.min(this.#preload, limit) : this.#preload)) return Promise.resolve();
    if (this.#closed) return Promise.reject(new ConnectionClosed('The pool is closed.'));
    return new Promise((resolve, reject) => this.#readyWaiters.add({ resolve, reject }));
  }

  #settleReady(error: Error | undefined): void {
    for (const waiter of this.#readyWaiters) {
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
    this.#readyWaiters.clear();
  }

  spawn(count: number): void {
    if (count <= 0 || this.#closed) return;
    this.actor.send({ type: 'member.spawn', count });
    this.#sync();
  }

  retire(slot: Slot<R>): void {
    if (slot.state === 'creating') this.coming -= 1;
    if (slot.state !== 'retiring') this.retiring += 1;
    slot.state = 'retiring';
    slot.retire = true;
    this.actor.send({ type: 'member.retire', memberId: slot.id });
  }

  /** A ready member found dead: back to `creating`, and its actor told (it may not know yet). */
  markDown(slot: Slot<R>): void {
    if (slot.state !== 'ready') return;
    slot.state = 'creating';
    this.coming += 1;
    const error = summarizeError(new ConnectionClosed('Pool member is no longer alive.'));
    this.actor.getSnapshot().children[slot.id]?.send({ type: 'member.died', error });
  }

  setLimit(limit: number): void {
    this.actor.send({ type: 'limit.set', limit });
  }

  waiterWait(waiterId: number, timeout: number): void {
    this.actor.send({ type: 'waiter.wait', waiterId, timeout });
  }

  waiterServed(waiterId: number): void {
    this.actor.send({ type: 'waiter.served', waiterId });
  }

  /** Retires every member and resolves when the actor is done. */
  close(): Promise<void> {
    this.#closed = true;
    this.#settleReady(new ConnectionClosed('The pool was closed before its members were ready.'));
    return new Promise<void>((resolve) => {
      if (this.actor.getSnapshot().status !== 'active') return resolve();
      this.actor.subscribe({ complete: () => resolve(), error: () => resolve() });
      this.actor.send({ type: 'close' });
    });
  }

  #provide() {
    const member = poolMemberMachine.provide({
      actors: {
        createMember: fromPromise<void, { memberId: string; restart: boolean }>(({ input, signal }) => this.#create(input.memberId, signal)),
        watchMember: fromCallback<PoolMemberEvent, { memberId: string }>(({ input, sendBack }) => this.#watch(input.memberId, sendBack)),
        destroyMember: fromPromise<void, { memberId: string }>(({ input }) => this.#destroy(input.memberId)),
      },
    });
    const withSlot = (memberId: string, fn: (slot: Slot<R>) => void): void => {
      const slot = this.slots.get(memberId);
      if (slot) safely(() => fn(slot));
    };
    return poolMachine.provide({
      actors: { member },
      actions: {
        memberReady: (_, { memberId }) =>
          withSlot(memberId, (slot) => {
            if (slot.state !== 'creating' || !slot.resource) return;
            slot.state = 'ready';
            this.coming -= 1;
            this.#everReady += 1;
            if (this.#readyWaiters.size > 0 && this.#everReady >= Math.min(this.#preload, this.limit || this.#preload)) this.#settleReady(undefined);
            this.#listener.ready(slot);
          }),
        memberDown: (_, { memberId }) =>
          withSlot(memberId, (slot) => {
            if (slot.state === 'ready') {
              slot.state = 'creating';
              this.coming += 1;
            }
            this.#listener.down(slot);
          }),
        memberFailed: (_, { memberId, error }) => safely(() => this.#failed(memberId, error)),
        memberRemoved: (_, { memberId }) =>
          withSlot(memberId, (slot) => {
            // Normally destroyed already; a crashed member actor still holds its resource.
            if (slot.resource !== undefined) void this.#destroy(memberId).catch(noop);
            this.slots.delete(memberId);
            if (slot.state === 'creating') this.coming -= 1;
            if (slot.state === 'retiring') this.retiring -= 1;
            this.#listener.removed(slot);
          }),
        waiterExpired: (_, { waiterId }) => safely(() => this.#listener.expired(waiterId)),
      },
    });
  }

  #failed(memberId: string, summary: ErrorSummary | undefined): void {
    const error = new KombuError(summary?.message ?? 'Pool member could not be created.', {
      ...(summary?.code !== undefined ? { code: summary.code } : {}),
      recoverable: summary?.recoverable ?? false,
    });
    Object.defineProperty(error, 'name', { value: summary?.name ?? 'KombuError' });
    const slot = this.slots.get(memberId);
    // An irrecoverable failure retires the member (the actor is on its way to `retiring`).
    if (!error.recoverable && slot && slot.state === 'creating') {
      slot.state = 'retiring';
      this.coming -= 1;
      this.retiring += 1;
    }
    this.#settleReady(error);
    this.#listener.failed(slot, error);
  }

  /** Registers the members the actor spawned, and follows their actors' transitions. */
  #sync(): void {
    const snapshot = this.actor.getSnapshot();
    for (const id of snapshot.context.memberIds) {
      const slot = this.#slotFor(id);
      const child = snapshot.children[id];
      if (slot.observed || !child) continue;
      slot.observed = true;
      let from = String(child.getSnapshot().value);
      child.subscribe({
        next: (next) => {
          const to = String(next.value);
          if (to === from) return;
          this.#listener.member({ memberId: id, from, to });
          from = to;
          this.#listener.changed();
        },
        error: noop,
      });
    }
    this.#listener.changed();
  }

  #slotFor(id: string): Slot<R> {
    let slot = this.slots.get(id);
    if (!slot) {
      slot = { id, state: 'creating', resource: undefined, creation: undefined, lent: false, retire: false, observed: false, loan: 0 };
      this.slots.set(id, slot);
      this.coming += 1;
    }
    return slot;
  }

  async #create(memberId: string, signal: AbortSignal): Promise<void> {
    const slot = this.#slotFor(memberId);
    const creation = (async () => {
      const resource = await this.#hooks.create(signal);
      if (signal.aborted || this.#closed) {
        await this.#hooks.destroy(resource).catch(noop);
        throw new ConnectionClosed('The pool member was retired while it was being created.');
      }
      slot.resource = resource;
      this.#hooks.adopt(resource, slot);
    })();
    slot.creation = creation.catch(noop);
    await creation;
  }

  #watch(memberId: string, sendBack: (event: PoolMemberEvent) => void): () => void {
    const resource = this.slots.get(memberId)?.resource;
    const died = (error: unknown): void => sendBack({ type: 'member.died', error: summarizeError(error ?? new ConnectionClosed('Pool member closed.')) });
    if (resource === undefined || !this.#hooks.isAlive(resource)) {
      queueMicrotask(() => died(new ConnectionClosed('The pool member died before it was watched.')));
      return noop;
    }
    return this.#hooks.watch(resource, died, () => this.#listener.changed());
  }

  async #destroy(memberId: string): Promise<void> {
    const slot = this.slots.get(memberId);
    if (!slot) return;
    await slot.creation;
    const resource = slot.resource;
    slot.resource = undefined;
    slot.creation = undefined;
    if (resource === undefined) return;
    this.#hooks.disown(resource);
    await this.#hooks.destroy(resource);
  }
}
