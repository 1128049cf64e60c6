/**
 * The lifecycle of one channel, owned by its connection.
 *
 *   opening -> open -> (channel error) -> recovering -> open
 *                 \-> (connection lost) -> suspended -> (connection restored) -> recovering
 *
 * `recovering` reopens the channel and restores what was declared through it (exchanges,
 * queues, bindings, qos, consumers): that work is `openChannel` with `recover: true`,
 * supplied by src/channel-link.ts. Any channel error leads there. A failed reopen waits
 * (`retrying`, growing from 0.1 s to 5 s) and tries again unless its error is irrecoverable
 * (the restore itself was refused, or the connection closed for good). The connection tells its channels
 * `connection.lost` (with its error, kept as `lastError`), `connection.restored` and
 * `connection.closed`; the last ends them.
 *
 * Messages never pass through this machine: publish, deliver and ack go straight to the
 * transport channel while this machine says `open`.
 */
import { assign, fromPromise, sendParent, setup } from 'xstate';
import { summarizeError, type ErrorSummary } from './connection-machine.js';

export interface ChannelInput {
  channelId: number;
}

export interface ChannelContext extends ChannelInput {
  /** Reopen attempts since the channel was last open. */
  attempts: number;
  /** Times the channel was recovered. */
  recoveries: number;
  lastError: ErrorSummary | undefined;
}

export type ChannelEvent =
  | { type: 'close' }
  | { type: 'channel.lost'; error: ErrorSummary }
  /** `error`: why the connection was lost (kept as the channel's `lastError` while suspended). */
  | { type: 'connection.lost'; error?: ErrorSummary }
  | { type: 'connection.restored' }
  | { type: 'connection.closed' };

export const channelMachine = setup({
  types: {
    context: {} as ChannelContext,
    events: {} as ChannelEvent,
    input: {} as ChannelInput,
  },
  actors: {
    /** Opens the transport channel; with `recover`, restores declarations and consumers. */
    openChannel: fromPromise<void, { channelId: number; recover: boolean }>(async () => {
      throw new Error('openChannel must be provided');
    }),
    /** Closes the transport channel. */
    closeChannel: fromPromise<void, { channelId: number }>(async () => undefined),
  },
  actions: {
    recordError: assign(({ context, event }) => ({
      lastError: 'error' in event ? summarizeError(event.error) : context.lastError,
      attempts: context.attempts + 1,
    })),
    opened: assign(({ context }) => ({ attempts: 0, recoveries: context.recoveries + (context.lastError ? 1 : 0), lastError: undefined })),
    /** The connection was lost: its error says why this channel is suspended (and makes the reopen count as a recovery). */
    recordLoss: assign({ lastError: ({ context, event }) => (event.type === 'connection.lost' && event.error ? event.error : context.lastError) }),
    /** Drops the broken transport channel (nothing graceful is possible). */
    abandonChannel: () => undefined,
    /** Starts sending this actor `channel.lost` when the transport channel closes under us. */
    watchChannel: () => undefined,
    /** Stops that. */
    unwatchChannel: () => undefined,
    /** Tells the owning connection, which stops this actor and forgets the channel. */
    notifyClosed: sendParent(({ context }) => ({ type: 'channel.closed' as const, channelId: context.channelId })),
  },
  guards: {
    irrecoverable: ({ event }) => !summarizeError('error' in event ? event.error : undefined).recoverable,
  },
  delays: {
    retryDelay: ({ context }) => Math.min(100 * 2 ** Math.max(context.attempts - 1, 0), 5000),
  },
}).createMachine({
  id: 'channel',
  context: ({ input }) => ({ channelId: input.channelId, attempts: 0, recoveries: 0, lastError: undefined }),
  initial: 'opening',
  on: {
    close: '.closing',
    'connection.closed': '.closed',
  },
  states: {
    opening: {
      invoke: {
        id: 'open',
        src: 'openChannel',
        input: ({ context }) => ({ channelId: context.channelId, recover: false }),
        onDone: { target: 'open', actions: 'opened' },
        onError: [
          { guard: 'irrecoverable', target: 'closed', actions: 'recordError' },
          { target: 'retrying', actions: 'recordError' },
        ],
      },
      on: { 'connection.lost': { target: 'suspended', actions: 'recordLoss' } },
    },
    open: {
      // Entry/exit actions, not an invoked actor: a live actor costs a few KiB per channel.
      entry: 'watchChannel',
      exit: 'unwatchChannel',
      on: {
        // Any channel error reopens the channel: `recoverable` on a ChannelError says whether
        // retrying the failed *operation* can help (a 404 cannot), not whether the channel can.
        'channel.lost': { target: 'recovering', actions: ['abandonChannel', assign({ lastError: ({ event }) => event.error })] },
        'connection.lost': { target: 'suspended', actions: ['abandonChannel', 'recordLoss'] },
      },
    },
    suspended: {
      on: { 'connection.restored': 'recovering' },
    },
    recovering: {
      invoke: {
        id: 'recover',
        src: 'openChannel',
        input: ({ context }) => ({ channelId: context.channelId, recover: true }),
        onDone: { target: 'open', actions: 'opened' },
        onError: [
          { guard: 'irrecoverable', target: 'closed', actions: 'recordError' },
          { target: 'retrying', actions: 'recordError' },
        ],
      },
      on: { 'connection.lost': { target: 'suspended', actions: 'recordLoss' } },
    },
    retrying: {
      after: { retryDelay: 'recovering' },
      on: { 'connection.lost': { target: 'suspended', actions: 'recordLoss' }, 'connection.restored': 'recovering' },
    },
    closing: {
      on: { close: {} },
      invoke: {
        id: 'close',
        src: 'closeChannel',
        input: ({ context }) => ({ channelId: context.channelId }),
        onDone: 'closed',
        onError: 'closed',
      },
    },
    closed: {
      type: 'final',
      entry: 'notifyClosed',
    },
  },
});
