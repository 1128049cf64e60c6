/**
 * The one retry policy used everywhere: ensureConnection, ensure, autoretry, reconnects and
 * publish retries. It is kombu's `retry_over_time` policy: sleep `intervalStart`, then
 * `intervalStart + intervalStep`, ... up to `intervalMax` (never beyond, then repeated),
 * until `maxRetries` failed attempts or `timeout` seconds.
 *
 * `maxRetries`: `undefined` retries forever; `0` means no retry at all (one attempt). kombu
 * is not consistent on 0 across its entry points; kombu-ts is, everywhere. Each broker tried
 * counts as one attempt, as in kombu: with three brokers, `maxRetries: 2` is one round.
 * `ensure()` (src/ensure.ts) sleeps only through the connection attempts it makes.
 */
import { ConfigurationError } from './errors.js';
import { afterSeconds, checkSeconds } from './seconds.js';

/** How to retry. Durations in seconds (fractions allowed). */
export interface RetryPolicy {
  /** Failed attempts to retry after; `undefined` = forever, `0` = no retry. */
  maxRetries?: number | undefined;
  /** First sleep, seconds (kombu default 2). */
  intervalStart?: number;
  /** Added to the sleep after each round, seconds (default 2). */
  intervalStep?: number;
  /** Longest sleep, seconds (default 30; `Infinity`: no cap). */
  intervalMax?: number;
  /** Called with the error and the seconds about to be slept (0 while failing over) on each failure. */
  errback?: (error: Error, interval: number) => void;
  /** Called on every retry, before the attempt. */
  callback?: () => void;
  /** Give up after this many seconds in all, rejecting with `TimeoutError` (`Infinity`: no limit). */
  timeout?: number | undefined;
}

/** The numeric part of a policy, the only part a machine may see (it is serialisable). */
export interface RetrySchedule {
  maxRetries: number | undefined;
  intervalStart: number;
  intervalStep: number;
  intervalMax: number;
}

/** kombu's defaults: 2, 4, 6, ... 30 seconds, forever. */
export const DEFAULT_RETRY_SCHEDULE: Readonly<RetrySchedule> = Object.freeze({
  maxRetries: undefined,
  intervalStart: 2,
  intervalStep: 2,
  intervalMax: 30,
});

/** A policy's seconds: `Infinity` is allowed (no cap, no limit, forever); a bad value is a ConfigurationError. */
function nonNegative(value: number | undefined, name: string): void {
  checkSeconds(value, name);
}

/** The numeric schedule of `policy`, with kombu's defaults filled in and values checked. */
export function scheduleOf(policy: RetryPolicy = {}, defaults: Readonly<RetrySchedule> = DEFAULT_RETRY_SCHEDULE): RetrySchedule {
  nonNegative(policy.intervalStart, 'intervalStart');
  nonNegative(policy.intervalStep, 'intervalStep');
  nonNegative(policy.intervalMax, 'intervalMax');
  nonNegative(policy.timeout, 'timeout');
  for (const name of ['errback', 'callback'] as const) {
    const value: unknown = policy[name];
    if (value !== undefined && typeof value !== 'function') throw new ConfigurationError(`${name} must be a function, got ${value === null ? 'null' : typeof value}.`);
  }
  if (policy.maxRetries !== undefined && !(Number.isInteger(policy.maxRetries) && policy.maxRetries >= 0)) {
    throw new ConfigurationError(`maxRetries must be a whole number >= 0 or undefined (forever), got ${String(policy.maxRetries)}`);
  }
  return {
    maxRetries: 'maxRetries' in policy ? policy.maxRetries : defaults.maxRetries,
    intervalStart: policy.intervalStart ?? defaults.intervalStart,
    intervalStep: policy.intervalStep ?? defaults.intervalStep,
    intervalMax: policy.intervalMax ?? defaults.intervalMax,
  };
}

/**
 * The sleep before retry round `round` (0-based): start + round * step, capped at max.
 *
 * @example
 * ```ts
 * [0, 1, 2, 20].map((r) => intervalFor({ intervalStart: 1, intervalStep: 2, intervalMax: 4, maxRetries: undefined }, r));
 * // [1, 3, 4, 4]
 * ```
 */
export function intervalFor(schedule: RetrySchedule, round: number): number {
  // Round 0 is intervalStart alone: 0 * an intervalStep of Infinity would be NaN.
  const grown = round === 0 ? schedule.intervalStart : schedule.intervalStart + round * schedule.intervalStep;
  return Math.min(grown, schedule.intervalMax);
}

/** True when `retries` failed attempts leave no retry under `schedule`. */
export function retriesExhausted(schedule: RetrySchedule, retries: number): boolean {
  return schedule.maxRetries !== undefined && retries > schedule.maxRetries;
}

/** A way of ordering brokers: kombu's names, or a function giving the order to try. */
export type FailoverStrategy = 'round-robin' | 'shuffle' | ((hosts: readonly string[]) => Iterable<string>);

/**
 * The order in which brokers are tried: `'round-robin'` keeps the given order, `'shuffle'`
 * randomises it once, a function returns any order (it may repeat or skip hosts).
 */
export function orderHosts(hosts: readonly string[], strategy: FailoverStrategy = 'round-robin'): string[] {
  if (typeof strategy === 'function') {
    const ordered = [...strategy(hosts)];
    if (ordered.length === 0) throw new ConfigurationError('failoverStrategy returned no broker to try');
    return ordered;
  }
  if (strategy === 'shuffle') {
    const copy = [...hosts];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }
  if (strategy !== 'round-robin') {
    throw new ConfigurationError(`Unknown failoverStrategy '${String(strategy)}': use 'round-robin', 'shuffle' or a function.`);
  }
  return [...hosts];
}

/**
 * Sleeps `seconds` (`Infinity`: until `signal` aborts; past Node's timer limit: that long);
 * rejects at once when `signal` aborts, and with a ConfigurationError for NaN or negative seconds.
 * Leaves no timer behind.
 */
export function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    nonNegative(seconds, 'sleep seconds');
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = afterSeconds(seconds, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Calls a user callback without letting it break the caller; returns what it threw. */
export function safeCall(fn: (() => void) | undefined): unknown {
  if (!fn) return undefined;
  try {
    fn();
    return undefined;
  } catch (error) {
    return error;
  }
}
