/**
 * The lifecycle of one broker connection, as kombu's Connection lives it.
 *
 *   idle -> connecting -> connected -> (lost) -> connecting ...
 *                 |  ^
 *   (one broker   v  |  (full round failed: sleep, then next round)
 *    failed)  failover   backoff
 *
 * A failed attempt moves to the next broker at once (`failover`, a real state so that
 * subscribers see it) and sleeps (`backoff`) only after a full round over every broker, as
 * kombu's `ensure_connection` does. Irrecoverable errors (refused credentials, unknown vhost)
 * and exhausted retries end in `failed`; `close` from anywhere goes through `closing` to the
 * final `closed`.
 *
 * No I/O here: `connectTransport`, `closeTransport`, `watchTransport`/`unwatchTransport` and
 * `abandonTransport` are placeholders that src/connection-driver.ts supplies with
 * `machine.provide()`.
 *
 * Memory: a live actor costs a few KiB, so `connected` watches the transport with entry/exit
 * actions rather than an invoked callback actor, and spawns the `heartbeat` child only when
 * heartbeats are on (kombu's default is off). The exit actions end both, whatever the way out.
 *
 * The context holds only serialisable lifecycle data (masked broker URLs, counters, error summaries): it is what
 * inspectors and dashboards see, so no secret and no socket may enter it.
 */
import { assign, enqueueActions, fromPromise, setup, spawnChild, stopChild, type ActorRefFrom } from 'xstate';
import { channelMachine } from './channel-machine.js';
import { heartbeatMachine } from './heartbeat-machine.js';

/** A serialisable summary of an error (the real error stays in the facade). */
export interface ErrorSummary {
  name: string;
  message: string;
  code: string | number | undefined;
  recoverable: boolean;
}

/** The numeric retry schedule (see src/retry.ts): seconds; `maxRetries` undefined = forever. */
export interface Schedule {
  maxRetries: number | undefined;
  intervalStart: number;
  intervalStep: number;
  intervalMax: number;
}

export interface ConnectionInput {
  /** Masked URLs of the brokers, in the order the failover strategy gives. */
  hosts: readonly string[];
  /** Seconds; 0 disables heartbeats. */
  heartbeat: number;
  /** Heartbeat checks per heartbeat interval. */
  heartbeatRate: number;
  /** Reconnect by itself when a live connection is lost. */
  autoReconnect: boolean;
  /** Schedule of automatic reconnects. */
  schedule: Schedule;
}

export interface ConnectionContext extends ConnectionInput {
  hostIndex: number;
  /** Broker failed over from, while in `failover`/`backoff`. */
  previousHostIndex: number | undefined;
  /** Attempts made in the current cycle (1 on the first attempt). */
  attempt: number;
  /** Failed attempts in the current cycle. */
  retries: number;
  /** The schedule of the current cycle (connect(), ensureConnection(), or a reconnect). */
  cycle: Schedule;
  /** Seconds of the current (or last) backoff. */
  delay: number;
  lastError: ErrorSummary | undefined;
  blocked: boolean;
  /** The broker's reason for blocking (RabbitMQ: "low on memory"...), while blocked. */
  blockedReason: string | undefined;
  channelIds: number[];
}

export type ConnectionEvent =
  | { type: 'connect'; schedule?: Schedule }
  | { type: 'close' }
  | { type: 'cancel'; error: ErrorSummary }
  | { type: 'transport.lost'; error: ErrorSummary }
  | { type: 'transport.blocked'; reason: string }
  | { type: 'transport.unblocked' }
  | { type: 'heartbeat.missed'; error: ErrorSummary }
  | { type: 'channel.open'; channelId: number }
  | { type: 'channel.closed'; channelId: number };

/** Turns anything thrown into a serialisable summary; unknown errors are not recoverable. */
export function summarizeError(error: unknown): ErrorSummary {
  const e = error as { name?: unknown; message?: unknown; code?: unknown; recoverable?: unknown } | undefined;
  const code = e?.code;
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(error),
    code: typeof code === 'string' || typeof code === 'number' ? code : undefined,
    recoverable: e?.recoverable === true,
  };
}

const nextIndex = (context: ConnectionContext): number => (context.hostIndex + 1) % context.hosts.length;

export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as ConnectionInput,
  },
  actors: {
    /** Opens the transport connection to `hosts[hostIndex]`; rejects with the transport's error. */
    connectTransport: fromPromise<void, { hostIndex: number; attempt: number }>(async () => {
      throw new Error('connectTransport must be provided');
    }),
    /** Closes the live transport connection, if any. */
    closeTransport: fromPromise<void>(async () => undefined),
    heartbeat: heartbeatMachine,
    channel: channelMachine,
  },
  actions: {
    /** Drops the dead transport connection (no graceful close: the peer is gone). */
    abandonTransport: () => undefined,
    /** Starts sending this actor `transport.lost` / `transport.blocked` / `transport.unblocked` of the live connection. */
    watchTransport: () => undefined,
    /** Stops that. */
    unwatchTransport: () => undefined,
    stopHeartbeat: stopChild('heartbeat'),
    startCycle: assign(({ context, event }) => ({
      cycle: event.type === 'connect' && event.schedule ? event.schedule : context.schedule,
      attempt: 1,
      retries: 0,
      previousHostIndex: undefined,
    })),
    recordFailure: assign(({ context, event }) => ({
      retries: context.retries + 1,
      lastError: summarizeError('error' in event ? event.error : undefined),
    })),
    recordLoss: assign(({ context, event }) => ({
      lastError: 'error' in event ? (event.error as ErrorSummary) : undefined,
      cycle: context.schedule,
      attempt: 1,
      retries: 0,
      blocked: false,
      blockedReason: undefined,
      previousHostIndex: undefined,
    })),
    computeDelay: assign(({ context }) => {
      // Runs before recordFailure: this failure completes round number `round` (0-based).
      const round = Math.floor((context.retries + 1) / context.hosts.length) - 1;
      const { intervalStart, intervalStep, intervalMax } = context.cycle;
      return { delay: Math.min(intervalStart + Math.max(round, 0) * intervalStep, intervalMax) };
    }),
    advanceHost: assign(({ context }) => ({
      previousHostIndex: context.hostIndex,
      hostIndex: nextIndex(context),
      attempt: context.attempt + 1,
    })),
    connectedReset: assign({ lastError: undefined, retries: 0, previousHostIndex: undefined }),
    spawnChannel: spawnChild('channel', {
      id: ({ event }) => `channel-${(event as { channelId: number }).channelId}`,
      input: ({ event }) => ({ channelId: (event as { channelId: number }).channelId }),
    }),
    addChannel: assign({
      channelIds: ({ context, event }) => [...context.channelIds, (event as { channelId: number }).channelId],
    }),
    reapChannel: stopChild(({ event }) => `channel-${(event as { channelId: number }).channelId}`),
    removeChannel: assign({
      channelIds: ({ context, event }) => context.channelIds.filter((id) => id !== (event as { channelId: number }).channelId),
    }),
    /** Tells every channel child a connection event (`connection.lost` with the loss's error, `.restored`, `.closed`). */
    tellChannels: ({ context, event, self }, params: { type: 'connection.lost' | 'connection.restored' | 'connection.closed' }) => {
      const children = self.getSnapshot().children as Record<string, { send(event: { type: string; error?: ErrorSummary }): void } | undefined>;
      const told = params.type === 'connection.lost' && 'error' in event ? { type: params.type, error: event.error } : { type: params.type };
      for (const id of context.channelIds) children[`channel-${id}`]?.send(told);
    },
  },
  guards: {
    irrecoverable: ({ event }) => !summarizeError('error' in event ? event.error : undefined).recoverable,
    exhausted: ({ context }) => context.cycle.maxRetries !== undefined && context.retries + 1 > context.cycle.maxRetries,
    roundComplete: ({ context }) => (context.retries + 1) % context.hosts.length === 0,
    autoReconnect: ({ context }) => context.autoReconnect,
  },
  delays: {
    backoffDelay: ({ context }) => context.delay * 1000,
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => ({
    ...input,
    hostIndex: 0,
    previousHostIndex: undefined,
    attempt: 0,
    retries: 0,
    cycle: input.schedule,
    delay: 0,
    lastError: undefined,
    blocked: false,
    blockedReason: undefined,
    channelIds: [],
  }),
  initial: 'idle',
  on: {
    close: '.closing',
    'channel.open': { actions: ['spawnChannel', 'addChannel'] },
    'channel.closed': { actions: ['reapChannel', 'removeChannel'] },
  },
  states: {
    idle: {
      on: { connect: { target: 'connecting', actions: 'startCycle' } },
    },
    connecting: {
      invoke: {
        id: 'connect',
        src: 'connectTransport',
        input: ({ context }) => ({ hostIndex: context.hostIndex, attempt: context.attempt }),
        onDone: { target: 'connected', actions: 'connectedReset' },
        onError: [
          { guard: 'irrecoverable', target: 'failed', actions: 'recordFailure' },
          { guard: 'exhausted', target: 'failed', actions: 'recordFailure' },
          { guard: 'roundComplete', target: 'backoff', actions: ['computeDelay', 'recordFailure'] },
          { target: 'failover', actions: 'recordFailure' },
        ],
      },
      on: {
        cancel: { target: 'failed', actions: assign({ lastError: ({ event }) => event.error }) },
      },
    },
    failover: {
      entry: 'advanceHost',
      // A real state (not `always`) so that subscribers see the switch; it moves on at once.
      after: { 0: 'connecting' },
      on: { cancel: { target: 'failed', actions: assign({ lastError: ({ event }) => event.error }) } },
    },
    backoff: {
      entry: 'advanceHost',
      after: { backoffDelay: 'connecting' },
      on: { cancel: { target: 'failed', actions: assign({ lastError: ({ event }) => event.error }) } },
    },
    connected: {
      entry: [
        { type: 'tellChannels', params: { type: 'connection.restored' } },
        'watchTransport',
        enqueueActions(({ context, enqueue }) => {
          if (context.heartbeat <= 0) return;
          enqueue.spawnChild('heartbeat', { id: 'heartbeat', input: { interval: context.heartbeat / context.heartbeatRate } });
        }),
      ],
      exit: ['unwatchTransport', 'stopHeartbeat'],
      on: {
        'transport.lost': [
          { guard: 'autoReconnect', target: 'connecting', actions: ['abandonTransport', 'recordLoss', { type: 'tellChannels', params: { type: 'connection.lost' } }] },
          { target: 'failed', actions: ['abandonTransport', 'recordLoss', { type: 'tellChannels', params: { type: 'connection.lost' } }] },
        ],
        'heartbeat.missed': [
          { guard: 'autoReconnect', target: 'connecting', actions: ['abandonTransport', 'recordLoss', { type: 'tellChannels', params: { type: 'connection.lost' } }] },
          { target: 'failed', actions: ['abandonTransport', 'recordLoss', { type: 'tellChannels', params: { type: 'connection.lost' } }] },
        ],
        'transport.blocked': { actions: assign({ blocked: true, blockedReason: ({ event }) => event.reason }) },
        'transport.unblocked': { actions: assign({ blocked: false, blockedReason: undefined }) },
      },
    },
    failed: {
      on: { connect: { target: 'connecting', actions: 'startCycle' } },
    },
    closing: {
      entry: { type: 'tellChannels', params: { type: 'connection.closed' } },
      on: { close: {} },
      invoke: {
        id: 'close',
        src: 'closeTransport',
        onDone: 'closed',
        onError: 'closed',
      },
    },
    closed: {
      type: 'final',
    },
  },
});

export type ConnectionActor = ActorRefFrom<typeof connectionMachine>;
