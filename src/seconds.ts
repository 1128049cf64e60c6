/**
 * Durations users give in seconds (timeouts, retry intervals), checked and turned into timers.
 *
 * Why: Node's `setTimeout` takes at most 2^31 - 1 ms (~24.8 days). Past that, and for
 * `Infinity`, it fires after 1 ms (with a TimeoutOverflowWarning), and it fires NaN or a
 * negative delay after 1 ms too: `timeout: Infinity` timed out at once, and a 30-day backoff
 * became a busy loop. Here `Infinity` means "never" (no timer at all), a longer delay is
 * chained from timers Node can hold, and values that are no duration are refused by
 * {@link checkSeconds} before anything starts. Counts users give (pool limits, queue lengths)
 * are checked here too ({@link checkCount}).
 */
import { ConfigurationError } from './errors.js';

/** The longest delay Node's `setTimeout` honours, in ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A started timer; `cancel()` stops it (a no-op once it fired or was cancelled). */
export interface Timer {
  cancel(): void;
}

/**
 * Throws unless `value` is `undefined` or a number of seconds >= 0 (`Infinity` too, unless
 * `finite`). The error names the option; it is a `ConfigurationError` unless `error` makes
 * another.
 *
 * @example
 * ```ts
 * checkSeconds(options.timeout, 'timeout'); // ConfigurationError for NaN, -1, '5'
 * ```
 */
export function checkSeconds(
  value: unknown, name: string, options: { finite?: boolean; error?: (message: string) => Error } = {},
): asserts value is number | undefined {
  if (value === undefined) return;
  const finite = options.finite ?? false;
  if (typeof value === 'number' && value >= 0 && (!finite || value !== Infinity)) return;
  const got = typeof value === 'number' ? String(value) : `${typeof value} ${JSON.stringify(value) ?? String(value)}`;
  const message = `${name} must be a number of seconds >= 0${finite ? '' : ' (Infinity: no limit)'}, got ${got}.`;
  throw options.error ? options.error(message) : new ConfigurationError(message);
}

/**
 * Calls `fn` after `ms` milliseconds, however long: `Infinity` starts no timer, a delay past
 * {@link MAX_TIMER_MS} is waited in steps Node can hold, NaN or a negative delay is 0.
 * `unref` lets the process exit while it waits (as `timer.unref()`).
 *
 * @example
 * ```ts
 * const timer = afterMs(40 * 24 * 3600 * 1000, () => console.log('40 days later'));
 * timer.cancel();
 * ```
 */
export function afterMs(ms: number, fn: () => void, options: { unref?: boolean } = {}): Timer {
  let left = ms > 0 ? ms : 0;
  let handle: NodeJS.Timeout | undefined;
  let cancelled = false;
  const arm = (): void => {
    const step = Math.min(left, MAX_TIMER_MS);
    left -= step;
    handle = setTimeout(() => {
      handle = undefined;
      if (left > 0) arm();
      else fn();
    }, step);
    if (options.unref) handle.unref();
  };
  if (left !== Infinity) arm();
  return {
    cancel: () => {
      if (cancelled) return;
      cancelled = true;
      if (handle) clearTimeout(handle);
      handle = undefined;
    },
  };
}

/**
 * Calls `fn` after `seconds` (see {@link afterMs}: `Infinity` never).
 *
 * @example
 * ```ts
 * const timer = afterSeconds(options.timeout, () => reject(new TimeoutError('...')));
 * ```
 */
export function afterSeconds(seconds: number, fn: () => void, options: { unref?: boolean } = {}): Timer {
  return afterMs(seconds * 1000, fn, options);
}

/**
 * XState's clock (`createActor(machine, { clock })`) on {@link afterMs}: delayed events and
 * `after` transitions of any length, `Infinity` never firing.
 */
export const longClock = {
  setTimeout: (fn: (...args: unknown[]) => void, ms: number): Timer => afterMs(ms, () => fn()),
  clearTimeout: (timer: unknown): void => (timer as Timer | undefined)?.cancel(),
};

/** A whole number >= 0, or a ConfigurationError naming `name`. */
export function checkCount(value: number, name: string): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new ConfigurationError(`${name} must be a whole number >= 0, got ${String(value)}`);
  return value;
}
