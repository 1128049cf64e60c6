/**
 * What a Connection shows of its lifecycle: the status object behind `subscribe()` and
 * `getSnapshot()`, and the typed events a state change emits. Both are derived from the
 * connection actor's state and context alone (masked URLs and error summaries), so nothing
 * here can leak a password, and both are plain functions that tests can drive directly.
 * `emitAll` hands those events to the application's listeners, one throwing listener at a time.
 */
import type { ConnectionContext, ErrorSummary } from '../machines/index.js';
import type { EventEmitter } from 'eventemitter3';
import { KombuError } from './errors.js';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'failover' | 'failed' | 'closing' | 'closed';

/** What `subscribe()` and `getSnapshot()` give: the lifecycle, serialisable, password-free. */
export interface ConnectionStatus {
  state: ConnectionState;
  connected: boolean;
  /** Masked URL of the broker in use (or being tried). */
  host: string;
  attempt: number;
  retries: number;
  /** Seconds of the current (or last) backoff. */
  delay: number;
  /** True while the broker blocks publishing on this connection (flow control). */
  blocked: boolean;
  lastError: ErrorSummary | undefined;
  channels: number;
}

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  host: string;
  attempt: number;
  error: ErrorSummary | undefined;
}

/** Typed events of a Connection. */
export interface ConnectionEvents {
  state: (change: StateChange) => void;
  connected: (event: { host: string; attempt: number }) => void;
  disconnected: (event: { host: string; error: ErrorSummary | undefined }) => void;
  backoff: (event: { delay: number; host: string; attempt: number; error: ErrorSummary | undefined }) => void;
  failover: (event: { from: string; to: string; error: ErrorSummary | undefined }) => void;
  /** The broker blocks publishing (RabbitMQ: a memory or disk alarm); `reason` is the broker's. */
  blocked: (event: { reason: string }) => void;
  unblocked: () => void;
  error: (error: KombuError) => void;
}

type LifecycleEvent = {
  [E in 'state' | 'connected' | 'disconnected' | 'backoff' | 'failover']: [E, Parameters<ConnectionEvents[E]>[0]];
}['state' | 'connected' | 'disconnected' | 'backoff' | 'failover'];

/**
 * The status for `state` and `context`; `previous` itself when nothing changed, so that the
 * reference stays stable between changes (what `useSyncExternalStore` needs).
 */
export function connectionStatus(
  state: ConnectionState,
  context: ConnectionContext | undefined,
  hosts: readonly string[],
  previous?: ConnectionStatus,
): ConnectionStatus {
  const status: ConnectionStatus = {
    state,
    connected: state === 'connected',
    host: hosts[context?.hostIndex ?? 0] ?? '',
    attempt: context?.attempt ?? 0,
    retries: context?.retries ?? 0,
    delay: context?.delay ?? 0,
    blocked: context?.blocked ?? false,
    lastError: context?.lastError,
    channels: context?.channelIds.length ?? 0,
  };
  if (previous && (Object.keys(status) as (keyof ConnectionStatus)[]).every((k) => status[k] === previous[k])) return previous;
  return status;
}

/**
 * The events a change of state from `from` to `to` emits, in order: always `state`, then
 * `connected` / `disconnected` / `backoff` / `failover` where they apply.
 *
 * @example
 * ```ts
 * for (const [name, payload] of lifecycleEvents('connected', 'connecting', context, hosts)) emitter.emit(name, payload);
 * ```
 */
export function lifecycleEvents(from: ConnectionState, to: ConnectionState, context: ConnectionContext, hosts: readonly string[]): LifecycleEvent[] {
  const host = hosts[context.hostIndex] ?? '';
  const { attempt, lastError: error } = context;
  const events: LifecycleEvent[] = [['state', { from, to, host, attempt, error }]];
  if (to === 'connected') events.push(['connected', { host, attempt }]);
  if (from === 'connected') events.push(['disconnected', { host, error }]);
  if (to === 'backoff') events.push(['backoff', { delay: context.delay, host, attempt, error }]);
  if (to === 'failover') events.push(['failover', { from: hosts[context.previousHostIndex ?? 0] ?? '', to: host, error }]);
  return events;
}

/**
 * Emits each event to the application's listeners on `emitter` (a Connection). One that throws
 * does not keep the others from theirs, nor the connection from its work: its error goes to the
 * `error` listeners (as a Channel does), else it is rethrown once every event is out, which
 * XState reports as an uncaught exception (as Node reports a throwing listener).
 */
export function emitAll(emitter: EventEmitter<ConnectionEvents>, events: readonly [string, unknown][]): void {
  let unhandled: { error: unknown } | undefined;
  for (const [name, payload] of events) {
    try {
      if (name === 'unblocked') emitter.emit('unblocked');
      else (emitter.emit as (n: string, p: unknown) => boolean).call(emitter, name, payload);
    } catch (error) {
      try {
        if (name === 'error' || emitter.listenerCount('error') === 0) throw error;
        emitter.emit('error', error instanceof KombuError ? error : new KombuError(`A '${name}' listener failed: ${String(error)}`, { cause: error }));
      } catch (thrown) {
        unhandled ??= { error: thrown };
      }
    }
  }
  if (unhandled) throw unhandled.error;
}
