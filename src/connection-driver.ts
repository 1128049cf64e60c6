/**
 * The connection machine with its implementations, provided once per process.
 *
 * Why once: `machine.provide()` builds a new machine (every state node, transition and
 * closure of the connection, heartbeat and channel machines). Done for each Connection, as
 * it first was, it cost tens of KiB per connection. Here the implementations are shared, and
 * each finds the Connection it works for through its actor system: every connection actor
 * tree (the connection, its heartbeat, its channels and their invoked actors) has a system of
 * its own, and `createConnectionActor` registers the Connection's driver for it.
 *
 * The driver is plain functions over the Connection's private state; nothing of it enters
 * the machines' context, which inspectors see.
 */
import { createActor, fromPromise, type Actor, type ActorSystem, type InspectionEvent, type Observer } from 'xstate';
import {
  channelMachine, connectionMachine, heartbeatMachine, summarizeError, type ConnectionEvent, type ConnectionInput,
} from '../machines/index.js';
import type { Channel } from './channel.js';
import { IllegalStateError } from './errors.js';
import { longClock } from './seconds.js';

export type TransportReport = Extract<ConnectionEvent, { type: 'transport.lost' | 'transport.blocked' | 'transport.unblocked' }>;

/** What the shared machine implementations ask of one Connection. */
export interface ConnectionDriver {
  /** Opens the transport connection to broker `hostIndex`. */
  connectTransport(hostIndex: number, signal: AbortSignal): Promise<void>;
  /** Reports the live connection's loss and flow control to the connection actor until {@link unwatch}. */
  watch(): void;
  unwatch(): void;
  /** Closes the live transport connection gracefully. */
  closeTransport(): Promise<void>;
  /** Drops the dead transport connection. */
  abandonTransport(): void;
  /** One heartbeat check; throws HeartbeatTimeout when the peer went silent. */
  heartbeatCheck(): void;
  /** The channel facade of `channelId`, if it is still known. */
  channel(channelId: number): Channel | undefined;
}

const drivers = new WeakMap<ActorSystem<never>, ConnectionDriver>();

function driverOf(system: unknown): ConnectionDriver {
  const driver = drivers.get(system as ActorSystem<never>);
  if (!driver) throw new IllegalStateError('This actor belongs to no Connection.', 'closed');
  return driver;
}

function channelOf(system: unknown, channelId: number): Channel {
  const channel = driverOf(system).channel(channelId);
  if (!channel) throw new IllegalStateError(`Channel ${channelId} is not known to this connection.`, 'closed');
  return channel;
}

const drivenMachine = connectionMachine.provide({
  actors: {
    connectTransport: fromPromise<void, { hostIndex: number; attempt: number }>(({ input, signal, system }) =>
      driverOf(system).connectTransport(input.hostIndex, signal)),
    closeTransport: fromPromise<void>(({ system }) => driverOf(system).closeTransport()),
    heartbeat: heartbeatMachine.provide({
      actors: {
        checkHeartbeat: fromPromise<void>(async ({ system }) => {
          driverOf(system).heartbeatCheck();
        }),
      },
    }),
    channel: channelMachine.provide({
      actors: {
        openChannel: fromPromise<void, { channelId: number; recover: boolean }>(({ input, signal, system }) =>
          channelOf(system, input.channelId).link.open(input.recover, signal)),
        closeChannel: fromPromise<void, { channelId: number }>(({ input, system }) =>
          driverOf(system).channel(input.channelId)?.link.closeTransport() ?? Promise.resolve()),
      },
      actions: {
        abandonChannel: ({ context, system }) => driverOf(system).channel(context.channelId)?.link.abandon(),
        watchChannel: ({ context, system }) => driverOf(system).channel(context.channelId)?.link.watch(),
        unwatchChannel: ({ context, system }) => driverOf(system).channel(context.channelId)?.link.unwatch(),
      },
    }),
  },
  actions: {
    abandonTransport: ({ system }) => driverOf(system).abandonTransport(),
    watchTransport: ({ system }) => driverOf(system).watch(),
    unwatchTransport: ({ system }) => driverOf(system).unwatch(),
  },
});

/** A (not yet started) connection actor driven by `driver`. */
export function createConnectionActor(
  driver: ConnectionDriver,
  input: ConnectionInput,
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void),
): Actor<typeof connectionMachine> {
  const actor = createActor(drivenMachine, { input, clock: longClock, ...(inspect ? { inspect } : {}) });
  drivers.set(actor.system as ActorSystem<never>, driver);
  return actor as unknown as Actor<typeof connectionMachine>;
}
