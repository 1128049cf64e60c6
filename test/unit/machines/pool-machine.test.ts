import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, SimulatedClock } from 'xstate';
import { poolMachine, poolMemberMachine, type ErrorSummary, type PoolInput, type PoolMemberEvent } from '../../../machines/index.js';

const lost: ErrorSummary = { name: 'ConnectionError', message: 'connection lost', code: 320, recoverable: true };
const refused: ErrorSummary = { name: 'ConnectionError', message: 'refused', code: 'ECONNREFUSED', recoverable: true };
const denied: ErrorSummary = { name: 'AccessRefused', message: 'bad credentials', code: 403, recoverable: false };

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A pool actor on a simulated clock whose member I/O the test drives: creations wait for
 * `settle()` unless `autoCreate`, deaths are reported with `kill()`, and every placeholder
 * action the facade would supply is logged.
 */
function harness(input: PoolInput, options: { autoCreate?: boolean } = {}) {
  const clock = new SimulatedClock();
  const log: string[] = [];
  const pending = new Map<string, { resolve: () => void; reject: (e: unknown) => void }[]>();
  const watchers = new Map<string, (event: PoolMemberEvent) => void>();
  const member = poolMemberMachine.provide({
    actors: {
      createMember: fromPromise<void, { memberId: string; restart: boolean }>(({ input: i }) => {
        log.push(`create ${i.memberId}${i.restart ? ' (restart)' : ''}`);
        if (options.autoCreate) return Promise.resolve();
        return new Promise<void>((resolve, reject) => pending.set(i.memberId, [...(pending.get(i.memberId) ?? []), { resolve, reject }]));
      }),
      watchMember: fromCallback<PoolMemberEvent, { memberId: string }>(({ input: i, sendBack }) => {
        watchers.set(i.memberId, sendBack);
        return () => watchers.delete(i.memberId);
      }),
      destroyMember: fromPromise<void, { memberId: string }>(async ({ input: i }) => {
        log.push(`destroy ${i.memberId}`);
      }),
    },
  });
  const machine = poolMachine.provide({
    actors: { member },
    actions: {
      memberReady: (_, { memberId }) => log.push(`ready ${memberId}`),
      memberDown: (_, { memberId }) => log.push(`down ${memberId}`),
      memberFailed: (_, { memberId, error }) => log.push(`failed ${memberId} ${error?.name ?? ''}`),
      memberRemoved: (_, { memberId }) => log.push(`removed ${memberId}`),
      waiterExpired: (_, { waiterId }) => log.push(`expired ${waiterId}`),
    },
  });
  const actor = createActor(machine, { input, clock });
  actor.start();
  const members = (): string[] => actor.getSnapshot().context.memberIds;
  const memberState = (id: string): unknown => actor.getSnapshot().children[id]?.getSnapshot().value;
  async function settle(id: string, error?: ErrorSummary): Promise<void> {
    const waiter = pending.get(id)?.shift();
    if (!waiter) throw new Error(`no creation pending for ${id}`);
    if (error) waiter.reject(error);
    else waiter.resolve();
    await flush();
  }
  async function kill(id: string, error: ErrorSummary = lost): Promise<void> {
    const sendBack = watchers.get(id);
    if (!sendBack) throw new Error(`${id} is not being watched`);
    sendBack({ type: 'member.died', error });
    await flush();
  }
  return { actor, clock, log, members, memberState, settle, kill };
}

describe('pool machine', () => {
  it('preloads min(preload, limit) members, each reporting ready once created', async () => {
    const { actor, log, members, memberState, settle } = harness({ limit: 3, preload: 5 });
    expect(members()).toEqual(['member-1', 'member-2', 'member-3']);
    expect(memberState('member-1')).toBe('creating');
    await settle('member-2');
    await settle('member-1');
    expect(log.filter((l) => l.startsWith('ready'))).toEqual(['ready member-2', 'ready member-1']);
    expect(memberState('member-1')).toBe('ready');
    expect(memberState('member-3')).toBe('creating');
    actor.stop();
  });

  it('never spawns beyond the limit; limit 0 means no limit', async () => {
    const limited = harness({ limit: 2, preload: 0 }, { autoCreate: true });
    limited.actor.send({ type: 'member.spawn', count: 5 });
    expect(limited.members()).toHaveLength(2);
    limited.actor.send({ type: 'member.spawn' });
    expect(limited.members()).toHaveLength(2);
    expect(limited.actor.getSnapshot().context.spawned).toBe(2);
    limited.actor.stop();

    const unlimited = harness({ limit: 0, preload: 0 }, { autoCreate: true });
    unlimited.actor.send({ type: 'member.spawn', count: 7 });
    expect(unlimited.members()).toHaveLength(7);
    unlimited.actor.stop();
  });

  it('runs each waiter timeout on the clock, in deadline order; a served waiter is never expired', async () => {
    const { actor, clock, log } = harness({ limit: 1, preload: 0 });
    actor.send({ type: 'waiter.wait', waiterId: 1, timeout: 5 });
    actor.send({ type: 'waiter.wait', waiterId: 2, timeout: 1 });
    actor.send({ type: 'waiter.wait', waiterId: 3, timeout: 3 });
    actor.send({ type: 'waiter.wait', waiterId: 4, timeout: 2 });
    actor.send({ type: 'waiter.served', waiterId: 4 });
    clock.increment(999);
    expect(log.filter((l) => l.startsWith('expired'))).toEqual([]);
    clock.increment(1);
    expect(log.filter((l) => l.startsWith('expired'))).toEqual(['expired 2']);
    clock.increment(4000);
    expect(log.filter((l) => l.startsWith('expired'))).toEqual(['expired 2', 'expired 3', 'expired 1']);
    actor.stop();
  });

  it('an acquire timeout of 0.25 s expires after exactly 250 ms of clock', async () => {
    const { actor, clock, log } = harness({ limit: 1, preload: 0 });
    actor.send({ type: 'waiter.wait', waiterId: 9, timeout: 0.25 });
    clock.increment(249);
    expect(log).not.toContain('expired 9');
    clock.increment(1);
    expect(log).toContain('expired 9');
    actor.stop();
  });

  it('restarts a member whose resource died: down, destroy, create again, ready', async () => {
    const { actor, log, memberState, settle, kill } = harness({ limit: 2, preload: 1 });
    await settle('member-1');
    log.length = 0;
    await kill('member-1');
    expect(log).toEqual(['down member-1', 'destroy member-1', 'create member-1 (restart)']);
    expect(memberState('member-1')).toBe('creating');
    await settle('member-1');
    expect(log.at(-1)).toBe('ready member-1');
    const member = actor.getSnapshot().children['member-1']?.getSnapshot().context as { restarts: number; lastError: ErrorSummary };
    expect(member.restarts).toBe(1);
    expect(member.lastError).toMatchObject({ code: 320 });
    actor.stop();
  });

  it('retries a failed creation after 0.1 s, 0.2 s, 0.4 s...; an irrecoverable failure retires the member', async () => {
    const { actor, clock, log, members, memberState, settle } = harness({ limit: 2, preload: 1 });
    await settle('member-1', refused);
    expect(memberState('member-1')).toBe('backoff');
    expect(log).toContain('failed member-1 ConnectionError');
    clock.increment(99);
    expect(memberState('member-1')).toBe('backoff');
    clock.increment(1);
    expect(memberState('member-1')).toBe('creating');
    await settle('member-1', refused);
    clock.increment(199);
    expect(memberState('member-1')).toBe('backoff');
    clock.increment(1);
    expect(memberState('member-1')).toBe('creating');
    await settle('member-1', denied);
    await flush();
    expect(log.slice(-3)).toEqual(['failed member-1 AccessRefused', 'destroy member-1', 'removed member-1']);
    expect(members()).toEqual([]);
    expect(actor.getSnapshot().children).toEqual({});
    actor.stop();
  });

  it('resizes down while members are in use: lower limit holds, only the retired member is destroyed', async () => {
    const { actor, log, members, settle } = harness({ limit: 3, preload: 3 });
    for (const id of ['member-1', 'member-2', 'member-3']) await settle(id);
    // The facade lends member-1 and member-2, shrinks to 1 and retires the free member-3 now;
    // member-2 retires when it comes back.
    actor.send({ type: 'limit.set', limit: 1 });
    actor.send({ type: 'member.retire', memberId: 'member-3' });
    await flush();
    expect(log.filter((l) => l.startsWith('destroy') || l.startsWith('removed'))).toEqual(['destroy member-3', 'removed member-3']);
    expect(members()).toEqual(['member-1', 'member-2']);
    actor.send({ type: 'member.spawn' });
    expect(members()).toHaveLength(2);
    actor.send({ type: 'member.retire', memberId: 'member-2' });
    await flush();
    expect(members()).toEqual(['member-1']);
    actor.send({ type: 'member.spawn' });
    expect(members()).toEqual(['member-1']);
    actor.send({ type: 'limit.set', limit: 2 });
    actor.send({ type: 'member.spawn' });
    expect(members()).toEqual(['member-1', 'member-4']);
    actor.stop();
  });

  it('close retires every member (creating ones too), then ends with no child and no timer', async () => {
    const { actor, clock, log, settle } = harness({ limit: 3, preload: 3 });
    await settle('member-1');
    await settle('member-2', refused); // in backoff, a timer pending
    actor.send({ type: 'waiter.wait', waiterId: 1, timeout: 30 });
    actor.send({ type: 'close' });
    expect(actor.getSnapshot().value).toBe('closing');
    actor.send({ type: 'member.spawn' });
    await flush();
    expect(actor.getSnapshot().value).toBe('closed');
    expect(actor.getSnapshot().status).toBe('done');
    expect(log.filter((l) => l.startsWith('destroy')).sort()).toEqual(['destroy member-1', 'destroy member-2', 'destroy member-3']);
    expect(Object.keys(actor.getSnapshot().children)).toEqual([]);
    clock.increment(60_000);
    expect(log.filter((l) => l.startsWith('expired') || l.startsWith('create member-2 (restart)'))).toEqual([]);
  });

  it('a member actor that crashes is dropped; the pool keeps running', async () => {
    const crashing = poolMachine.provide({
      actors: {
        member: poolMemberMachine.provide({
          actors: {
            createMember: fromPromise<void, { memberId: string; restart: boolean }>(async () => undefined),
            watchMember: fromCallback<PoolMemberEvent, { memberId: string }>(() => {
              throw new Error('bug in a watcher');
            }),
          },
        }),
      },
    });
    const actor = createActor(crashing, { input: { limit: 2, preload: 1 } });
    actor.start();
    await flush();
    expect(actor.getSnapshot().status).toBe('active');
    expect(actor.getSnapshot().context.memberIds).toEqual([]);
    expect(actor.getSnapshot().children).toEqual({});
    actor.send({ type: 'close' });
    expect(actor.getSnapshot().status).toBe('done');
  });

  it('close with no member ends at once', () => {
    const { actor } = harness({ limit: 3, preload: 0 });
    actor.send({ type: 'close' });
    expect(actor.getSnapshot().status).toBe('done');
  });
});
