/**
 * Liveness of a connection, checked `rate` times per heartbeat interval.
 *
 * Why a child actor and not a driver timer: the connection machine owns every reconnect, so a
 * dead peer must become an event the machine sees (`heartbeat.missed`), and the check must
 * stop the moment the connection leaves `connected` (stopping this child cancels its delay:
 * no timer outlives the state). The check itself (`checkHeartbeat`) is the transport's
 * `heartbeatCheck(rate)`, supplied by src/: it sends a heartbeat if one is due and fails when
 * nothing came from the broker for longer than the negotiated interval.
 */
import { sendParent, fromPromise, setup } from 'xstate';
import { summarizeError } from './connection-machine.js';

export interface HeartbeatInput {
  /** Seconds between checks; 0 turns heartbeats off. */
  interval: number;
}

export const heartbeatMachine = setup({
  types: {
    context: {} as HeartbeatInput,
    input: {} as HeartbeatInput,
  },
  actors: {
    /** Runs one check; rejects (with HeartbeatTimeout) when the peer missed its heartbeats. */
    checkHeartbeat: fromPromise<void>(async () => undefined),
  },
  guards: {
    enabled: ({ context }) => context.interval > 0,
  },
  delays: {
    interval: ({ context }) => context.interval * 1000,
  },
}).createMachine({
  id: 'heartbeat',
  context: ({ input }) => ({ interval: input.interval }),
  initial: 'starting',
  states: {
    starting: {
      always: [{ guard: 'enabled', target: 'waiting' }, { target: 'off' }],
    },
    waiting: {
      after: { interval: 'checking' },
    },
    checking: {
      invoke: {
        id: 'check',
        src: 'checkHeartbeat',
        onDone: 'waiting',
        onError: {
          target: 'missed',
          actions: sendParent(({ event }) => ({ type: 'heartbeat.missed' as const, error: summarizeError(event.error) })),
        },
      },
    },
    missed: {},
    off: {},
  },
});
