import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, setup, SimulatedClock, sendTo } from 'xstate';
import { channelMachine, type ErrorSummary } from '../../../machines/index.js';
import { definedTransitions, plan, type Ev } from './model.js';

const channelError: ErrorSummary = { name: 'ChannelError', message: 'NOT_FOUND', code: 404, recoverable: false };
const transient: ErrorSummary = { name: 'ConnectionError', message: 'reset', code: 'ECONNRESET', recoverable: true };
const input = { channelId: 7 };

const events: Ev[] = [
  { type: 'close' },
  { type: 'channel.lost', error: channelError },
  { type: 'connection.lost' },
  { type: 'connection.restored' },
  { type: 'connection.closed' },
  { type: 'xstate.done.actor.open' },
  { type: 'xstate.error.actor.open', error: transient },
  { type: 'xstate.error.actor.open', error: channelError },
  { type: 'xstate.done.actor.recover' },
  { type: 'xstate.error.actor.recover', error: transient },
  { type: 'xstate.error.actor.recover', error: channelError },
  { type: 'xstate.done.actor.close' },
  { type: 'xstate.error.actor.close', error: transient },
  { type: 'xstate.after.retryDelay.channel.retrying' },
];

const serializeState = (s: { value: unknown; context: { attempts: number } }) => JSON.stringify([s.value, Math.min(s.context.attempts, 2)]);
// The pure traversal has no parent to tell: stand the parent notification in with a no-op.
const orphan = channelMachine.provide({ actions: { notifyClosed: () => undefined } });
const channelPlan = () => plan(orphan, { events, input, serializeState: serializeState as never });

/** The channel machine spawned under a parent (it sends `channel.closed` to its parent). */
function liveChannel() {
  const clock = new SimulatedClock();
  const pending: Record<string, { resolve: () => void; reject: (e: unknown) => void } | undefined> = {};
  const byHand = (name: string) => () => new Promise<void>((resolve, reject) => (pending[name] = { resolve, reject }));
  const machine = channelMachine.provide({
    actors: {
      openChannel: fromPromise<void, { channelId: number; recover: boolean }>(({ input: i }) => byHand(i.recover ? 'recover' : 'open')()),
      closeChannel: fromPromise<void, { channelId: number }>(byHand('close')),
    },
  });
  const parent = setup({ actors: { channel: machine } }).createMachine({
    invoke: { id: 'channel', src: 'channel', input },
    on: { forward: { actions: sendTo('channel', ({ event }) => (event as unknown as { inner: Ev }).inner as never) } },
  });
  const root = createActor(parent, { clock });
  root.start();
  const child = () => root.getSnapshot().children['channel'] as { getSnapshot(): { value: unknown; context: { attempts: number } } };
  const flush = () => new Promise((r) => setImmediate(r));
  async function run(event: Ev): Promise<void> {
    const [, what, kind, name] = event.type.split('.');
    if (what === 'done') pending[name ?? '']?.resolve();
    else if (what === 'error') pending[name ?? '']?.reject(event.error);
    else if (kind === 'retryDelay') {
      if (child().getSnapshot().value === 'retrying') clock.increment(Math.min(100 * 2 ** Math.max(child().getSnapshot().context.attempts - 1, 0), 5000));
    } else root.send({ type: 'forward', inner: event } as never);
    await flush();
  }
  return { root, child, run };
}

describe('channel machine (model-based)', () => {
  it('the replayed paths cover every transition the machine defines', () => {
    const defined = definedTransitions(orphan);
    const { taken } = channelPlan();
    expect([...defined].filter(([t]) => !taken.has(t)).map(([, name]) => name)).toEqual([]);
    expect(defined.size).toBeGreaterThan(15);
  });

  it('replays every path on a live actor', async () => {
    const { paths } = channelPlan();
    expect(paths.length).toBeGreaterThan(20);
    for (const path of paths) {
      const { root, child, run } = liveChannel();
      for (const step of path.steps) {
        if (step.event.type === 'xstate.init') continue;
        await run(step.event);
        const live = child()?.getSnapshot().value ?? 'closed';
        expect({ after: step.event.type, value: live }).toEqual({ after: step.event.type, value: step.state.value });
      }
      root.stop();
    }
  });

  it('any channel error reopens the channel, even one whose operation cannot be retried', async () => {
    const { root, child, run } = liveChannel();
    await run({ type: 'xstate.done.actor.open' });
    await run({ type: 'channel.lost', error: channelError });
    expect(child().getSnapshot().value).toBe('recovering');
    await run({ type: 'xstate.done.actor.recover' });
    expect(child().getSnapshot().value).toBe('open');
    root.stop();
  });
});
