/**
 * kombu.common's helpers: `maybeDeclare` with its per-connection cache, and `eventloop`.
 *
 * The declaration cache (kombu's `connection.declared_entities`) remembers which exchanges and
 * queues were declared on a connection, so that a producer publishing a million messages
 * declares its exchange once. A broker that restarts may have lost them, so the Connection
 * clears its cache whenever it loses or regains the broker. Declarations in flight are shared:
 * a hundred publishes waiting for a reconnect trigger one declare, and go out in order.
 *
 * Channels do not know their Connection (they are kept narrow, see channel.ts); the Connection
 * registers each channel it creates here, so that `maybeDeclare(entity, channel)` and a
 * `Producer(channel)` find the connection's cache and `ensure()`.
 */
import type { Channel } from './channel.js';
import type { Connection } from './connection.js';
import { TimeoutError } from './errors.js';
import type { Exchange } from './exchange.js';
import type { Queue } from './queue.js';
import type { RetryPolicy } from './retry.js';

/**
 * The set of entities declared on one connection, with declarations in flight shared.
 *
 * @example
 * ```ts
 * const cache = new DeclarationCache();
 * await cache.declare('E|media', () => exchange.declare()); // true: declared now
 * await cache.declare('E|media', () => exchange.declare()); // false: cached
 * ```
 */
export class DeclarationCache {
  // Made on the first declaration: most connections never use maybeDeclare.
  #done: Set<string> | undefined;
  #pending: Map<string, Promise<void>> | undefined;
  #generation = 0;

  has(ident: string): boolean {
    return this.#done?.has(ident) ?? false;
  }

  get size(): number {
    return this.#done?.size ?? 0;
  }

  /** Forgets everything (the connection was lost or re-established). */
  clear(): void {
    this.#done?.clear();
    this.#pending?.clear();
    this.#generation += 1;
  }

  /** Runs `declare` unless `ident` is cached or in flight; resolves true when it ran. */
  async declare(ident: string, declare: () => Promise<unknown>): Promise<boolean> {
    if (this.#done?.has(ident)) return false;
    const pending = (this.#pending ??= new Map());
    const inFlight = pending.get(ident);
    if (inFlight) {
      await inFlight;
      return false;
    }
    const generation = this.#generation;
    const running = declare().then(() => undefined);
    pending.set(ident, running);
    try {
      await running;
      if (generation === this.#generation) (this.#done ??= new Set()).add(ident);
    } finally {
      if (pending.get(ident) === running) pending.delete(ident);
    }
    return true;
  }
}

const owners = new WeakMap<Channel, Connection>();

/** @internal Called by Connection for each channel it creates. */
export function registerChannel(channel: Channel, connection: Connection): void {
  owners.set(channel, connection);
}

/**
 * The Connection a channel belongs to (kombu's `channel.connection.client`).
 *
 * @example
 * ```ts
 * connectionOf(await conn.channel()) === conn; // true
 * ```
 */
export function connectionOf(channel: Channel): Connection | undefined {
  return owners.get(channel);
}

/** Options of {@link maybeDeclare}. */
export interface MaybeDeclareOptions {
  /** Retry the declaration through `connection.ensure()` on recoverable errors. */
  retry?: boolean;
  retryPolicy?: RetryPolicy;
}

/**
 * Declares `entity` unless it was declared on this connection already (kombu's
 * `maybe_declare`). Resolves true when it declared, false when cached. An unbound entity is
 * bound to `channel`; a server-named queue gets its name set on `entity`. Auto-delete and
 * expiring entities are always declared (the broker may have deleted them).
 *
 * @example
 * ```ts
 * const channel = await conn.channel();
 * await maybeDeclare(new Exchange('media', { type: 'topic' }), channel); // true
 * await maybeDeclare(new Exchange('media', { type: 'topic' }), channel); // false
 * ```
 */
export async function maybeDeclare(entity: Exchange | Queue, channel?: Channel, options: MaybeDeclareOptions = {}): Promise<boolean> {
  const target = channel ?? entity.channel;
  const bound = entity.isBound ? entity : entity.bind(target);
  const connection = connectionOf(target);
  const once = async (): Promise<void> => {
    await bound.declare({ channel: target });
  };
  let declare: () => Promise<unknown> = once;
  if (options.retry && connection) {
    const ensured = connection.ensure(bound, once, options.retryPolicy ?? {});
    declare = () => ensured();
  }
  const cache = connection?.declaredEntities;
  let declared: boolean;
  if (cache && entity.canCacheDeclaration) declared = await cache.declare(entity.ident, declare);
  else {
    await declare();
    declared = true;
  }
  if (bound !== entity && !entity.name) (entity as Queue).name = bound.name;
  return declared;
}

/** Options of {@link eventloop}. */
export interface EventloopOptions {
  /** Stop after this many iterations (default: never). */
  limit?: number;
  /** Seconds each `drainEvents` may wait. */
  timeout?: number;
  /** On a timeout, drain again (nothing is yielded, as in kombu) instead of throwing `TimeoutError`. */
  ignoreTimeouts?: boolean;
}

/**
 * kombu's `eventloop`: an async iterable that drains events from `conn` (one delivery per
 * iteration), `limit` times or forever. Deliveries run the consumers' callbacks by themselves;
 * the loop is for pacing and timeouts.
 *
 * @example
 * ```ts
 * await consumer.consume();
 * for await (const _ of eventloop(conn, { timeout: 1, ignoreTimeouts: true })) {
 *   if (done) break; // checked after each delivery: a timeout yields nothing
 * }
 * ```
 */
export async function* eventloop(conn: Connection, options: EventloopOptions = {}): AsyncGenerator<void, void, undefined> {
  const { limit, timeout, ignoreTimeouts = false } = options;
  for (let i = 0; limit === undefined || limit <= 0 || i < limit; i++) {
    try {
      await conn.drainEvents(timeout === undefined ? {} : { timeout });
    } catch (error) {
      if (error instanceof TimeoutError && ignoreTimeouts) continue;
      throw error;
    }
    yield;
  }
}
