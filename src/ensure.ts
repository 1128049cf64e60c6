/**
 * kombu's `Connection.ensure` loop (`_ensured` in kombu/connection.py), which `ensure()`,
 * `autoretry()` and `publish({ retry: true })` share.
 *
 * Why it never sleeps itself: in kombu the only sleeps are those between failed connection
 * attempts. A call that fails with a connection error re-establishes the connection (kombu's
 * `ensure_connection`: the first attempt at once, the policy's intervals only after a failed
 * one), revives `obj` on the default channel and is called again; a call that fails with a
 * channel error is called again at once. So a healthy connection retries without delay, and
 * `errback` hears `(error, 0)` for each failed call, plus `(error, interval)` for each failed
 * connection attempt. Between two calls the loop yields one turn of the event loop (no timer):
 * a call failing for ever cannot starve I/O, and `close()` ends it.
 */
import type { Channel } from './channel.js';
import { ChannelError, ConfigurationError, ConnectionClosed, isRecoverable } from './errors.js';
import { retriesExhausted, safeCall, scheduleOf, type RetryPolicy } from './retry.js';

/** A retry policy for `ensure()`: kombu's `ensure` arguments. Durations in seconds. */
export interface EnsurePolicy extends RetryPolicy {
  /** Called with the default channel after a connection error healed and `obj` was revived on it (kombu's `on_revive`). */
  onRevive?: (channel: Channel) => void;
}

/** @internal What {@link ensured} needs from the connection it heals through. */
export interface EnsureHost {
  /** True once the connection is closed for good: nothing is retried then. */
  isClosed(): boolean;
  /** Waits until the connection is back (kombu's `ensure_connection` under `policy`). */
  heal(policy: RetryPolicy): Promise<unknown>;
  /** The connection's default channel, which a revived `obj` is bound to. */
  defaultChannel(): Channel;
}

/** The names of `O`'s methods: what `ensure(obj, 'name')` takes (the spec's `fun (str)`). */
export type MethodName<O> = { [K in keyof O]: O[K] extends (...args: never[]) => unknown ? K : never }[keyof O] & string;

/** What `ensure(obj, 'name')` returns: `obj.name` retried, as a promise. */
export type EnsuredMethod<O, K extends keyof O> = O[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;

/**
 * The function `ensure()` calls: `fn` itself, or `obj`'s method named `fn`, looked up at each
 * call (a revived `obj` may have rebound it). Anything else is refused here, not at the call.
 */
function callee(obj: unknown, fn: unknown): (...args: unknown[]) => unknown {
  if (typeof fn === 'function') return () => fn;
  if (typeof fn === 'string') {
    const method = (): unknown => (obj as Record<string, unknown> | null | undefined)?.[fn];
    if (typeof method() !== 'function') throw new ConfigurationError(`'${fn}' is not a method of the object given to ensure().`);
    return method;
  }
  throw new ConfigurationError(`ensure() needs a function or the name of a method of obj, got ${fn === null ? 'null' : typeof fn}.`);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function revivable(obj: unknown): obj is { revive(channel: Channel): unknown } {
  return typeof obj === 'object' && obj !== null && typeof (obj as { revive?: unknown }).revive === 'function';
}

/**
 * `fn` (called on `obj`; or the name of `obj`'s method) wrapped as kombu's `ensure` does: recoverable errors retried per
 * `policy` (`maxRetries` failed calls at most; `undefined` retries for ever, `0` never),
 * irrecoverable ones thrown at once. See the module comment for when it waits.
 *
 * @example
 * ```ts
 * const publish = conn.ensure(producer, producer.publish, { maxRetries: 3, onRevive: (ch) => console.log('on', ch.channelId) });
 * await publish({ hello: 'world' }, { routingKey: 'tasks' });
 * ```
 */
export function ensured<A extends unknown[], R>(
  host: EnsureHost, obj: unknown, fn: ((...args: A) => R | Promise<R>) | string, policy: EnsurePolicy = {},
): (...args: A) => Promise<Awaited<R>> {
  const current = callee(obj, fn) as () => (...args: A) => R | Promise<R>;
  const schedule = scheduleOf(policy);
  if (policy.onRevive !== undefined && typeof policy.onRevive !== 'function') throw new ConfigurationError('onRevive must be a function.');
  const closed = (cause: unknown): ConnectionClosed => new ConnectionClosed('The connection was closed while a call waited to retry.', { cause });
  return async (...args: A): Promise<Awaited<R>> => {
    const started = performance.now();
    for (let retries = 0; ; retries++) {
      try {
        return await current().apply(obj, args);
      } catch (error) {
        if (!isRecoverable(error)) throw error;
        if (host.isClosed()) throw closed(error);
        if (retriesExhausted(schedule, retries + 1)) throw error;
        const left = policy.timeout === undefined ? undefined : policy.timeout - (performance.now() - started) / 1000;
        if (left !== undefined && left <= 0) throw error;
        const thrown = safeCall(() => policy.errback?.(error as Error, 0));
        if (thrown) throw thrown;
        await nextTurn();
        if (host.isClosed()) throw closed(error);
        if (!(error instanceof ChannelError)) {
          // kombu hands `ensure_connection` what is left of max_retries (at least one).
          const maxRetries = schedule.maxRetries === undefined ? undefined : Math.max(schedule.maxRetries - retries, 1);
          const { onRevive: _onRevive, callback: _callback, ...rest } = policy;
          await host.heal({ ...rest, maxRetries, timeout: left });
          const channel = host.defaultChannel();
          if (revivable(obj)) obj.revive(channel);
          if (policy.onRevive) policy.onRevive(channel);
        }
        safeCall(policy.callback);
      }
    }
  };
}
