/**
 * kombu's `kombu.pools`: process-wide pool groups keyed by a connection's identity, a global
 * limit (10 by default, as kombu), `setLimit` resizing every pool, and `reset` closing them.
 *
 * Keys are the connection's full settings, password included (two connections that differ only
 * by password are different brokers to log in to). They live in a Map inside this module and
 * are never printed, logged or returned: a group shows its pools, not its keys.
 */
import { Connection } from './connection.js';
import { IllegalStateError } from './errors.js';
import type { ConnectionPool } from './connection-pool.js';
import type { ResizeOptions } from './pool.js';
import { ProducerPool } from './producer-pool.js';

export { ResourcePool } from './pool.js';
export type { AcquireOptions, MemberStatus, PoolEvents, PoolOptions, PoolStatus, ResizeOptions } from './pool.js';
export { ChannelPool, ConnectionPool } from './connection-pool.js';
export type { PooledChannel } from './connection-pool.js';
export { ProducerPool } from './producer-pool.js';
export type { ProducerPoolOptions } from './producer-pool.js';

let globalLimit = 10;

/** What a group needs of its pools. */
export interface GroupedPool {
  readonly limit: number;
  readonly inUse: number;
  resize(limit: number, options?: ResizeOptions): void;
  close(): Promise<void>;
}

/** The identity of a connection: every setting, password included. Internal only. */
function identity(connection: Connection): string {
  const info = connection.info();
  return JSON.stringify([info, connection.alt]);
}

/**
 * A group of pools, one per connection identity (kombu's `PoolGroup`). Pools are created on
 * first `get()` with the global limit.
 *
 * @example
 * ```ts
 * const pool = pools.connections.get('amqp://guest:guest@localhost//');
 * await pool.use(async (conn) => (await conn.channel()).publish(Buffer.from('hi'), {}, '', 'tasks'));
 * ```
 */
export class PoolGroup<P extends GroupedPool> {
  readonly #pools = new Map<string, { pool: P; owned: Connection | undefined }>();
  readonly #create: (connection: Connection, limit: number) => P;

  /** @internal */
  constructor(create: (connection: Connection, limit: number) => P) {
    this.#create = create;
  }

  /** The pool for `connOrUrl` (a Connection or a URL), created on first use. */
  get(connOrUrl: Connection | string): P {
    const given = typeof connOrUrl === 'string' ? new Connection(connOrUrl) : connOrUrl;
    const key = identity(given);
    const existing = this.#pools.get(key);
    if (existing) {
      if (given !== connOrUrl) void given.close();
      return existing.pool;
    }
    const pool = this.#create(given, globalLimit);
    this.#pools.set(key, { pool, owned: given !== connOrUrl ? given : undefined });
    return pool;
  }

  /** True when a pool exists for `connOrUrl`. */
  has(connOrUrl: Connection | string): boolean {
    const given = typeof connOrUrl === 'string' ? new Connection(connOrUrl) : connOrUrl;
    const found = this.#pools.has(identity(given));
    if (given !== connOrUrl) void given.close();
    return found;
  }

  /** Pools in this group. */
  get size(): number {
    return this.#pools.size;
  }

  /** Every pool of this group. */
  values(): P[] {
    return [...this.#pools.values()].map((entry) => entry.pool);
  }

  /** @internal Closes every pool (and the connections the group made itself), then forgets them. */
  clear(): Promise<void> {
    return this.detach()();
  }

  /**
   * @internal Forgets every pool now (a `get()` from here on makes a new one) and returns what
   * closes them (and the connections the group made itself).
   */
  detach(): () => Promise<void> {
    const entries = [...this.#pools.values()];
    this.#pools.clear();
    return async () => {
      await Promise.allSettled(entries.map(async ({ pool, owned }) => {
        await pool.close();
        await owned?.close();
      }));
    };
  }
}

/** Connection pools by connection (kombu's `pools.connections`). */
const connections = new PoolGroup<ConnectionPool>((connection, limit) => connection.Pool({ limit }));
/** Producer pools by connection, over `pools.connections` (kombu's `pools.producers`). */
const producers = new PoolGroup<ProducerPool>((connection, limit) => new ProducerPool(connections.get(connection), { limit }));


const groups: PoolGroup<GroupedPool>[] = [producers, connections];

/**
 * The limit new pools of the global groups get (kombu's `get_limit`; default 10).
 *
 * @example
 * ```ts
 * if (getLimit() < 20) setLimit(20);
 * ```
 */
export function getLimit(): number {
  return globalLimit;
}

/**
 * Sets the global limit and resizes every pool of the groups (kombu's `set_limit`). Shrinking a
 * pool whose members are in use throws unless `force` (its members are closed and made anew)
 * or `ignoreErrors` (they retire as they come back); a refused shrink changes nothing (no
 * limit, global or of a pool). `resetAfter` then closes every pool. Returns the new limit.
 *
 * @example
 * ```ts
 * setLimit(5, { ignoreErrors: true });
 * ```
 */
export function setLimit(limit: number, options: { force?: boolean; resetAfter?: boolean; ignoreErrors?: boolean } = {}): number {
  const next = limit || 0;
  if (next !== globalLimit) {
    const resize: ResizeOptions = { force: options.force ?? false, ignoreErrors: options.ignoreErrors ?? false };
    // All or nothing: refused before any pool is resized (kombu sets its limit, then raises
    // half-way, and asking again is a no-op that leaves the rest of the pools as they were).
    if (!resize.force && !resize.ignoreErrors) {
      const busy = groups.flatMap((group) => group.values()).find((pool) => next > 0 && next < pool.limit && pool.inUse > 0);
      if (busy) throw new IllegalStateError(`Cannot shrink the pools while members are in use: was ${busy.limit}, now ${next}.`, 'running');
    }
    globalLimit = next;
    for (const group of groups) for (const pool of group.values()) pool.resize(next, resize);
  }
  if (options.resetAfter) void reset();
  return next;
}

/**
 * Closes every pool of the global groups and forgets them (kombu's `reset`); resolves when all
 * are closed.
 *
 * @example
 * ```ts
 * afterAll(() => reset());
 * ```
 */
export async function reset(): Promise<void> {
  // Every group forgets its pools at once: a pool got while the old ones close is a new one
  // (not a producer pool bound to a connection pool about to close).
  const closes = groups.map((group) => group.detach());
  for (const close of closes) await close();
}

/**
 * The global pool groups, shaped like kombu's `kombu.pools` module: `connections`,
 * `producers`, `getLimit()`, `setLimit()`, `reset()` (also exported on their own).
 *
 * @example
 * ```ts
 * const producers = pools.producers.get(conn);
 * await producers.use((p) => p.publish({ n: 1 }, { routingKey: 'tasks' }));
 * ```
 */
export const pools: {
  readonly connections: PoolGroup<ConnectionPool>;
  readonly producers: PoolGroup<ProducerPool>;
  readonly getLimit: typeof getLimit;
  readonly setLimit: typeof setLimit;
  readonly reset: typeof reset;
} = Object.freeze({ connections, producers, getLimit, setLimit, reset });
