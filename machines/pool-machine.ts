/**
 * A pool as a supervisor: the lifecycle of its members and the clocks of its waiters.
 *
 *   pool:    running -> closing -> closed
 *   member:  creating -> ready -> (died) -> replacing -> creating ...
 *               |  ^                          (a member is restarted in place: same id,
 *       (failed) v  | (retryDelay)              new resource)
 *              backoff          any -> (retire) -> retiring -> retired
 *
 * What the supervisor owns: how many members exist (never more than `limit`; preloaded on
 * start), restarting a member whose resource died (a connection failed for good, a channel
 * closed by the broker), retrying a member whose creation failed (0.1 s doubling to 5 s;
 * an irrecoverable failure retires it), retiring members on resize and close, and the timeout
 * of each waiting acquirer (a delayed `waiter.expire`, cancelled when the waiter is served).
 *
 * What it does not own: which ready member is lent and which is free. That hand-off is the
 * hot path (an acquire and a release per use, ~0.8 µs in generic-pool) and an XState event
 * costs 3-5 µs, so src/pool.ts keeps the free stack, the lent set and the FIFO of waiters in plain
 * arrays and tells this machine only about lifecycle: `member.spawn` when demand exceeds
 * supply, `member.retire` when a member must go, `waiter.wait`/`waiter.served` for waiters
 * with a timeout. Members report back through the `memberReady`, `memberDown`,
 * `memberFailed` and `memberRemoved` actions, which src/ provides.
 *
 * No I/O here: `createMember`, `watchMember` and `destroyMember` are placeholders provided by
 * src/pool.ts with `machine.provide()`; the context holds ids and counters only.
 */
import { assign, enqueueActions, fromCallback, fromPromise, sendParent, setup, type ActorRefFrom } from 'xstate';
import { summarizeError, type ErrorSummary } from './connection-machine.js';

export interface PoolMemberInput {
  memberId: string;
}

export interface PoolMemberContext extends PoolMemberInput {
  /** Times the member's resource died and was replaced. */
  restarts: number;
  /** Failed creations in a row. */
  failures: number;
  lastError: ErrorSummary | undefined;
}

export type PoolMemberEvent = { type: 'retire' } | { type: 'member.died'; error: ErrorSummary };

/** One member of a pool: creates its resource, watches it, replaces it when it dies. */
export const poolMemberMachine = setup({
  types: {
    context: {} as PoolMemberContext,
    events: {} as PoolMemberEvent,
    input: {} as PoolMemberInput,
  },
  actors: {
    /** Creates (and for connections, connects) the member's resource; `restart` after a death or failure. */
    createMember: fromPromise<void, { memberId: string; restart: boolean }>(async () => {
      throw new Error('createMember must be provided');
    }),
    /** Reports `member.died` when the resource can no longer serve (failed, closed). */
    watchMember: fromCallback<PoolMemberEvent, { memberId: string }>(() => undefined),
    /** Closes the member's resource, if any (also settles a creation in flight). */
    destroyMember: fromPromise<void, { memberId: string }>(async () => undefined),
  },
  actions: {
    recordFailure: assign(({ context, event }) => ({
      failures: context.failures + 1,
      lastError: summarizeError('error' in event ? event.error : undefined),
    })),
    recordDeath: assign(({ context, event }) => ({
      restarts: context.restarts + 1,
      lastError: 'error' in event ? (event.error as ErrorSummary) : context.lastError,
    })),
    reportReady: sendParent(({ context }) => ({ type: 'member.ready' as const, memberId: context.memberId })),
    reportDown: sendParent(({ context }) => ({ type: 'member.down' as const, memberId: context.memberId, error: context.lastError })),
    reportFailed: sendParent(({ context }) => ({ type: 'member.failed' as const, memberId: context.memberId, error: context.lastError })),
  },
  guards: {
    irrecoverable: ({ event }) => !summarizeError('error' in event ? event.error : undefined).recoverable,
  },
  delays: {
    retryDelay: ({ context }) => Math.min(100 * 2 ** Math.max(context.failures - 1, 0), 5000),
  },
}).createMachine({
  id: 'poolMember',
  context: ({ input }) => ({ memberId: input.memberId, restarts: 0, failures: 0, lastError: undefined }),
  initial: 'creating',
  on: { retire: '.retiring' },
  states: {
    creating: {
      invoke: {
        id: 'create',
        src: 'createMember',
        input: ({ context }) => ({ memberId: context.memberId, restart: context.restarts + context.failures > 0 }),
        onDone: { target: 'ready', actions: [assign({ failures: 0 }), 'reportReady'] },
        onError: [
          { guard: 'irrecoverable', target: 'retiring', actions: ['recordFailure', 'reportFailed'] },
          { target: 'backoff', actions: ['recordFailure', 'reportFailed'] },
        ],
      },
    },
    backoff: {
      after: { retryDelay: 'creating' },
    },
    ready: {
      invoke: { id: 'watch', src: 'watchMember', input: ({ context }) => ({ memberId: context.memberId }) },
      on: { 'member.died': { target: 'replacing', actions: ['recordDeath', 'reportDown'] } },
    },
    replacing: {
      invoke: {
        id: 'destroy',
        src: 'destroyMember',
        input: ({ context }) => ({ memberId: context.memberId }),
        onDone: 'creating',
        onError: 'creating',
      },
    },
    retiring: {
      on: { retire: {} },
      invoke: {
        id: 'destroy',
        src: 'destroyMember',
        input: ({ context }) => ({ memberId: context.memberId }),
        onDone: 'retired',
        onError: 'retired',
      },
    },
    // Not `final`: the pool stops the member on `member.retired` (a final child would also send
    // `xstate.done.actor.*` to a pool that may have closed by then).
    retired: {
      entry: sendParent(({ context }) => ({ type: 'member.retired' as const, memberId: context.memberId })),
      on: { retire: {} },
    },
  },
});

export type PoolMemberState = 'creating' | 'backoff' | 'ready' | 'replacing' | 'retiring' | 'retired';
export type PoolMemberActor = ActorRefFrom<typeof poolMemberMachine>;

export interface PoolInput {
  /** Most members at once; 0 = no limit. */
  limit: number;
  /** Members created on start (capped at `limit`). */
  preload: number;
}

export interface PoolContext extends PoolInput {
  /** Members alive (creating, ready, replacing or retiring), oldest first. */
  memberIds: string[];
  nextMemberId: number;
  /** Members ever spawned. */
  spawned: number;
}

export type PoolEvent =
  | { type: 'member.spawn'; count?: number }
  | { type: 'member.retire'; memberId: string }
  | { type: 'limit.set'; limit: number }
  | { type: 'waiter.wait'; waiterId: number; timeout: number }
  | { type: 'waiter.served'; waiterId: number }
  | { type: 'waiter.expire'; waiterId: number }
  | { type: 'close' }
  | { type: 'member.ready'; memberId: string }
  | { type: 'member.down'; memberId: string; error: ErrorSummary | undefined }
  | { type: 'member.failed'; memberId: string; error: ErrorSummary | undefined }
  | { type: 'member.retired'; memberId: string };

const timerId = (waiterId: number): string => `waiter-${waiterId}`;
const crashedMember = (event: { type: string }): string => event.type.slice('xstate.error.actor.'.length);
const memberOf = (event: PoolEvent): string => ('memberId' in event ? event.memberId : '');

export const poolMachine = setup({
  types: {
    context: {} as PoolContext,
    events: {} as PoolEvent,
    input: {} as PoolInput,
  },
  actors: {
    member: poolMemberMachine,
  },
  actions: {
    /** A member's resource is ready to lend (new, or replaced after a death). */
    memberReady: (_, _params: { memberId: string }) => undefined,
    /** A ready member's resource died; the member is replacing it. */
    memberDown: (_, _params: { memberId: string; error: ErrorSummary | undefined }) => undefined,
    /** Creating a member's resource failed (it retries unless the error is irrecoverable). */
    memberFailed: (_, _params: { memberId: string; error: ErrorSummary | undefined }) => undefined,
    /** A member is gone for good (retired or given up). */
    memberRemoved: (_, _params: { memberId: string }) => undefined,
    /** A waiter's timeout ran out before it was served. */
    waiterExpired: (_, _params: { waiterId: number }) => undefined,
    spawnMembers: enqueueActions(({ context, enqueue }, params: { count: number }) => {
      const wanted = Math.max(0, Math.floor(params.count));
      const room = context.limit === 0 ? wanted : Math.min(wanted, context.limit - context.memberIds.length);
      const ids: string[] = [];
      for (let i = 0; i < room; i++) {
        const memberId = `member-${context.nextMemberId + i}`;
        ids.push(memberId);
        enqueue.spawnChild('member', { id: memberId, input: { memberId } });
      }
      if (ids.length > 0) {
        enqueue.assign({
          memberIds: [...context.memberIds, ...ids],
          nextMemberId: context.nextMemberId + ids.length,
          spawned: context.spawned + ids.length,
        });
      }
    }),
    retireMember: enqueueActions(({ context, enqueue }, params: { memberId: string }) => {
      if (context.memberIds.includes(params.memberId)) enqueue.sendTo(params.memberId, { type: 'retire' });
    }),
    retireAll: enqueueActions(({ context, enqueue }) => {
      for (const memberId of context.memberIds) enqueue.sendTo(memberId, { type: 'retire' });
    }),
    reapMember: enqueueActions(({ context, enqueue }, params: { memberId: string }) => {
      enqueue.stopChild(params.memberId);
      enqueue.assign({ memberIds: context.memberIds.filter((id) => id !== params.memberId) });
    }),
    startTimer: enqueueActions(({ enqueue }, params: { waiterId: number; timeout: number }) => {
      enqueue.raise({ type: 'waiter.expire', waiterId: params.waiterId }, { id: timerId(params.waiterId), delay: Math.max(0, params.timeout * 1000) });
    }),
    stopTimer: enqueueActions(({ enqueue }, params: { waiterId: number }) => {
      enqueue.cancel(timerId(params.waiterId));
    }),
  },
  guards: {
    noMembers: ({ context }) => context.memberIds.length === 0,
    lastMember: ({ context, event }) => context.memberIds.length === 1 && context.memberIds[0] === memberOf(event),
  },
}).createMachine({
  id: 'pool',
  context: ({ input }) => ({ ...input, memberIds: [], nextMemberId: 1, spawned: 0 }),
  initial: 'running',
  on: {
    'waiter.expire': { actions: { type: 'waiterExpired', params: ({ event }) => ({ waiterId: event.waiterId }) } },
    'waiter.served': { actions: { type: 'stopTimer', params: ({ event }) => ({ waiterId: event.waiterId }) } },
    'member.down': { actions: { type: 'memberDown', params: ({ event }) => ({ memberId: event.memberId, error: event.error }) } },
    'member.failed': { actions: { type: 'memberFailed', params: ({ event }) => ({ memberId: event.memberId, error: event.error }) } },
    'limit.set': { actions: assign({ limit: ({ event }) => Math.max(0, Math.floor(event.limit)) }) },
    // A member actor that crashed (a bug in a provided actor): drop it rather than take the pool
    // down with it (an unhandled child error would put the pool in status `error`).
    'xstate.error.actor.*': {
      actions: [
        { type: 'reapMember', params: ({ event }: { event: { type: string } }) => ({ memberId: crashedMember(event) }) },
        { type: 'memberRemoved', params: ({ event }: { event: { type: string } }) => ({ memberId: crashedMember(event) }) },
      ],
    },
  },
  states: {
    running: {
      entry: { type: 'spawnMembers', params: ({ context }) => ({ count: context.preload }) },
      on: {
        'member.spawn': { actions: { type: 'spawnMembers', params: ({ event }) => ({ count: event.count ?? 1 }) } },
        'member.retire': { actions: { type: 'retireMember', params: ({ event }) => ({ memberId: event.memberId }) } },
        'member.ready': { actions: { type: 'memberReady', params: ({ event }) => ({ memberId: event.memberId }) } },
        'member.retired': {
          actions: [
            { type: 'reapMember', params: ({ event }) => ({ memberId: event.memberId }) },
            { type: 'memberRemoved', params: ({ event }) => ({ memberId: event.memberId }) },
          ],
        },
        'waiter.wait': { actions: { type: 'startTimer', params: ({ event }) => ({ waiterId: event.waiterId, timeout: event.timeout }) } },
        close: 'closing',
      },
    },
    closing: {
      entry: 'retireAll',
      always: { guard: 'noMembers', target: 'closed' },
      on: {
        // A member that became ready while closing is retired already; nobody may get it.
        'member.retired': [
          {
            guard: 'lastMember',
            target: 'closed',
            actions: [
              { type: 'reapMember', params: ({ event }) => ({ memberId: event.memberId }) },
              { type: 'memberRemoved', params: ({ event }) => ({ memberId: event.memberId }) },
            ],
          },
          {
            actions: [
              { type: 'reapMember', params: ({ event }) => ({ memberId: event.memberId }) },
              { type: 'memberRemoved', params: ({ event }) => ({ memberId: event.memberId }) },
            ],
          },
        ],
      },
    },
    closed: {
      type: 'final',
    },
  },
});

export type PoolState = 'running' | 'closing' | 'closed';
export type PoolActor = ActorRefFrom<typeof poolMachine>;
