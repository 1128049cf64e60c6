import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, SimulatedClock } from 'xstate';
import { connectionMachine, type ConnectionEvent, type ErrorSummary } from '../../../machines/index.js';
import { definedTransitions, plan, type Ev } from './model.js';

const recoverable: ErrorSummary = { name: 'ConnectionError', message: 'refused', code: 'ECONNREFUSED', recoverable: true };
const fatal: ErrorSummary = { name: 'AccessRefused', message: 'bad credentials', code: 403, recoverable: false };
const input = {
  hosts: ['memory://a/', 'memory://b/'],
  heartbeat: 0,
  heartbeatRate: 4,
  autoReconnect: true,
  schedule: { maxRetries: 3, intervalStart: 1, intervalStep: 1, intervalMax: 2 },
};

/** The events the model may take; actor-completion events stand in for the invoked actors. */
const events = (allowFatal: boolean): Ev[] => [
  { type: 'connect' },
  { type: 'close' },
  { type: 'cancel', error: recoverable },
  { type: 'xstate.done.actor.connect' },
  { type: 'xstate.error.actor.connect', error: recoverable },
  ...(allowFatal ? [{ type: 'xstate.error.actor.connect', error: fatal }] : []),
  { type: 'xstate.done.actor.close' },
  { type: 'xstate.error.actor.close', error: recoverable },
  { type: 'xstate.after.0.connection.failover' },
  { type: 'xstate.after.backoffDelay.connection.backoff' },
  { type: 'transport.lost', error: recoverable },
  { type: 'heartbeat.missed', error: recoverable },
  { type: 'transport.blocked', reason: 'low memory' },
  { type: 'transport.unblocked' },
  { type: 'channel.open', channelId: 1 },
  { type: 'channel.closed', channelId: 1 },
];

// The state key leaves out what only self-loops change (channels, blocked): those edges are
// covered by the adjacency pass below, and keeping them in the key multiplies simple paths.
const serializeState = (s: { value: unknown; context: { retries: number; autoReconnect: boolean } }): string =>
  JSON.stringify([s.value, s.context.retries, s.context.autoReconnect]);

const machinePlan = (autoReconnect: boolean) =>
  plan(connectionMachine, { events: events(true), input: { ...input, autoReconnect }, serializeState: serializeState as never });

/** A live actor whose invoked actors the test settles by hand, on a simulated clock. */
function liveActor(autoReconnect: boolean) {
  const clock = new SimulatedClock();
  const pending: Record<string, { resolve: () => void; reject: (e: unknown) => void } | undefined> = {};
  const settleByHand = (name: string) => () => new Promise<void>((resolve, reject) => (pending[name] = { resolve, reject }));
  const machine = connectionMachine.provide({
    actors: {
      connectTransport: fromPromise<void, { hostIndex: number; attempt: number }>(settleByHand('connect')),
      closeTransport: fromPromise<void>(settleByHand('close')),
    },
  });
  const actor = createActor(machine, { input: { ...input, autoReconnect }, clock });
  actor.start();
  const flush = () => new Promise((r) => setImmediate(r));
  async function run(event: Ev): Promise<void> {
    switch (event.type) {
      case 'xstate.done.actor.connect':
        pending.connect?.resolve();
        break;
      case 'xstate.error.actor.connect':
        pending.connect?.reject(event.error);
        break;
      case 'xstate.done.actor.close':
        pending.close?.resolve();
        break;
      case 'xstate.error.actor.close':
        pending.close?.reject(event.error);
        break;
      // A delayed event only exists while its state is active: elsewhere it is a no-op.
      case 'xstate.after.0.connection.failover':
        if (actor.getSnapshot().value === 'failover') clock.increment(0);
        break;
      case 'xstate.after.backoffDelay.connection.backoff':
        if (actor.getSnapshot().value === 'backoff') clock.increment(actor.getSnapshot().context.delay * 1000);
        break;
      default:
        actor.send(event as ConnectionEvent);
    }
    await flush();
  }
  return { actor, run };
}

describe('connection machine (model-based)', () => {
  it('the replayed paths cover every transition the machine defines', () => {
    const defined = definedTransitions(connectionMachine);
    const covered = new Set<unknown>([...machinePlan(true).taken, ...machinePlan(false).taken]);
    const missing = [...defined].filter(([t]) => !covered.has(t)).map(([, name]) => name);
    expect(missing).toEqual([]);
    expect(defined.size).toBeGreaterThan(20);
  });

  for (const autoReconnect of [true, false]) {
    it(`replays every simple path on a live actor (autoReconnect ${autoReconnect})`, async () => {
      const { paths } = machinePlan(autoReconnect);
      expect(paths.length).toBeGreaterThan(20);
      for (const path of paths) {
        const { actor, run } = liveActor(autoReconnect);
        for (const step of path.steps) {
          if (step.event.type === 'xstate.init') continue;
          await run(step.event);
          expect({ after: step.event.type, value: actor.getSnapshot().value }).toEqual({ after: step.event.type, value: step.state.value });
          expect(actor.getSnapshot().context.retries).toBe((step.state.context as { retries: number }).retries);
        }
        actor.stop();
      }
    });
  }
});

describe('connection machine (scenarios on a simulated clock)', () => {
  it('fails over at once and backs off only after a full round, with growing, capped delays', async () => {
    const { actor, run } = liveActor(true);
    const seen: string[] = [];
    actor.subscribe((s) => seen.push(`${String(s.value)}@${s.context.hostIndex}`));
    await run({ type: 'connect', schedule: { maxRetries: undefined, intervalStart: 1, intervalStep: 1, intervalMax: 2 } });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      await run({ type: 'xstate.error.actor.connect', error: recoverable });
      const s = actor.getSnapshot();
      if (s.value === 'backoff') {
        delays.push(s.context.delay);
        await run({ type: 'xstate.after.backoffDelay.connection.backoff' });
      } else {
        expect(s.value).toBe('failover');
        await run({ type: 'xstate.after.0.connection.failover' });
      }
    }
    expect(delays).toEqual([1, 2, 2]);
    expect(seen.slice(0, 6)).toEqual(['connecting@0', 'failover@1', 'connecting@1', 'backoff@0', 'connecting@0', 'failover@1']);
    actor.stop();
  });

  it('ends in failed after maxRetries, and at once on an irrecoverable error', async () => {
    const { actor, run } = liveActor(true);
    await run({ type: 'connect', schedule: { maxRetries: 1, intervalStart: 0, intervalStep: 0, intervalMax: 0 } });
    await run({ type: 'xstate.error.actor.connect', error: recoverable });
    await run({ type: 'xstate.after.0.connection.failover' });
    await run({ type: 'xstate.error.actor.connect', error: recoverable });
    expect(actor.getSnapshot().value).toBe('failed');
    await run({ type: 'connect' });
    await run({ type: 'xstate.error.actor.connect', error: fatal });
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().context.lastError).toMatchObject({ name: 'AccessRefused', recoverable: false });
    actor.stop();
  });

  it('close during backoff cancels the timer and ends with no child left', async () => {
    const { actor, run } = liveActor(true);
    await run({ type: 'connect', schedule: { maxRetries: undefined, intervalStart: 30, intervalStep: 0, intervalMax: 30 } });
    await run({ type: 'xstate.error.actor.connect', error: recoverable });
    await run({ type: 'xstate.after.0.connection.failover' });
    await run({ type: 'xstate.error.actor.connect', error: recoverable });
    expect(actor.getSnapshot().value).toBe('backoff');
    await run({ type: 'close' });
    await run({ type: 'xstate.done.actor.close' });
    expect(actor.getSnapshot().status).toBe('done');
    expect(Object.keys(actor.getSnapshot().children)).toEqual([]);
  });

  it('watches the transport and runs a heartbeat child only while connected, and only when heartbeats are on', async () => {
    for (const heartbeat of [0, 2]) {
      const calls: string[] = [];
      const machine = connectionMachine.provide({
        actors: {
          connectTransport: fromPromise<void, { hostIndex: number; attempt: number }>(async () => undefined),
          closeTransport: fromPromise<void>(async () => undefined),
        },
        actions: {
          watchTransport: () => calls.push('watch'),
          unwatchTransport: () => calls.push('unwatch'),
        },
      });
      const actor = createActor(machine, { input: { ...input, heartbeat }, clock: new SimulatedClock() });
      actor.start();
      actor.send({ type: 'connect' });
      await new Promise((r) => setImmediate(r));
      expect(actor.getSnapshot().value).toBe('connected');
      expect(calls).toEqual(['watch']);
      expect(Object.keys(actor.getSnapshot().children)).toEqual(heartbeat > 0 ? ['heartbeat'] : []);
      actor.send({ type: 'transport.lost', error: recoverable });
      expect(calls).toEqual(['watch', 'unwatch']);
      expect(Object.keys(actor.getSnapshot().children)).not.toContain('heartbeat');
      actor.stop();
    }
  });
});
