/**
 * Options and events of the pools (src/pool.ts and its subclasses). Durations are seconds.
 */
import type { ActorOptions, AnyActorLogic } from 'xstate';
import type { KombuError } from './errors.js';
import type { PoolStatus } from './pool-status.js';

/** Options of every pool. */
export interface PoolOptions {
  /** Most members at once; `0` or `undefined` = no limit (kombu's `None`). */
  limit?: number | undefined;
  /** Members created (and connected) up front; kombu stores it, kombu-ts does it. */
  preload?: number | undefined;
  /** XState inspection observer for the pool actor and its member actors. */
  inspect?: ActorOptions<AnyActorLogic>['inspect'];
}

/** Options of {@link ResourcePool.acquire}. */
export interface AcquireOptions {
  /** Wait (FIFO) when every member is in use and the pool is at its limit; default false, as kombu. */
  block?: boolean;
  /** Seconds to wait at most, then reject with `LimitExceeded`; `undefined` waits as long as it takes. */
  timeout?: number | undefined;
}

/** Options of {@link ResourcePool.resize} (kombu's `resize`). */
export interface ResizeOptions {
  /** Shrink even while members are in use: every member is closed and created anew. */
  force?: boolean;
  /** Shrink while members are in use without error: those members retire when released. */
  ignoreErrors?: boolean;
  /** Close every member (in use or not) after setting the limit. */
  reset?: boolean;
}

/** Typed events of a pool. */
export interface PoolEvents {
  /** The status changed (published at most once per tick). */
  status: (status: PoolStatus) => void;
  /** A member actor changed state (`creating`, `ready`, `replacing`, `backoff`, `retiring`, `retired`). */
  member: (event: { memberId: string; from: string; to: string }) => void;
  /** Creating a member failed; it is retried unless the error is irrecoverable. */
  error: (error: KombuError) => void;
}
