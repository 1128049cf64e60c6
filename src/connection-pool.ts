/**
 * kombu's ConnectionPool and ChannelPool: a {@link ResourcePool} whose members are clones of
 * one Connection, or channels of one Connection.
 *
 * A pooled connection heals itself (its own actor reconnects after a lost link), so the pool
 * replaces it only when it is dead for good: `failed` (retries exhausted, credentials refused)
 * or closed under the pool. A pooled channel recovers by itself after channel errors and
 * reconnects; the pool replaces it when it ends `closed`.
 */
import type { Channel } from './channel.js';
import type { Connection } from './connection.js';
import type { ConnectionState } from './connection-status.js';
import { unlessAborted } from './abortable.js';
import { ConnectionClosed } from './errors.js';
import { ResourcePool, type PoolOptions } from './pool.js';

const deadConnection = (state: ConnectionState): boolean => state === 'failed' || state === 'closing' || state === 'closed';
const deadChannel = (state: string): boolean => state === 'closing' || state === 'closed';

/**
 * A pool of connections to the same broker(s), each a clone of `connection` (kombu's
 * `ConnectionPool`). Get one with `conn.Pool({ limit, preload })` or
 * `pools.connections.get(conn)`.
 *
 * @example
 * ```ts
 * const pool = new Connection('amqp://guest:guest@localhost//').Pool({ limit: 5, preload: 2 });
 * await pool.ready();
 * const conn = await pool.acquire({ block: true, timeout: 5 });
 * const channel = await conn.channel();
 * await channel.publish(Buffer.from('hi'), {}, '', 'tasks');
 * await channel.close();
 * await conn.release();            // back to the pool
 * pool.subscribe((s) => console.log(`${s.inUse}/${s.size} in use, ${s.waiting} waiting`));
 * await pool.close();
 * ```
 */
export class ConnectionPool extends ResourcePool<Connection> {
  readonly connection: Connection;
  readonly #options: PoolOptions;

  constructor(connection: Connection, options: PoolOptions = {}) {
    super(options);
    this.connection = connection;
    this.#options = options;
    this.start();
  }

  protected async create(signal: AbortSignal): Promise<Connection> {
    const conn = this.connection.clone(this.#options.inspect ? { inspect: this.#options.inspect } : {});
    const abort = (): void => void conn.close();
    signal.addEventListener('abort', abort, { once: true });
    try {
      await conn.connect();
      return conn;
    } catch (error) {
      await conn.close();
      throw error;
    } finally {
      signal.removeEventListener('abort', abort);
    }
  }

  protected async destroy(conn: Connection): Promise<void> {
    await conn.close();
  }

  protected isAlive(conn: Connection): boolean {
    return !deadConnection(conn.state);
  }

  protected watch(conn: Connection, onDeath: (error: unknown) => void, onChange: () => void): () => void {
    const listener = ({ to }: { to: ConnectionState }): void => {
      onChange();
      if (deadConnection(to)) onDeath(conn.lastError ?? new ConnectionClosed('Pooled connection closed.'));
    };
    conn.on('state', listener);
    return () => conn.off('state', listener);
  }

  protected stateOf(conn: Connection): string {
    return conn.state;
  }

  protected override attachRelease(conn: Connection, release: () => Promise<void>): void {
    conn.releaseHook = release;
  }

  protected override detachRelease(conn: Connection): void {
    conn.releaseHook = undefined;
  }
}

/** A channel lent by a {@link ChannelPool}: `release()` gives it back. */
export type PooledChannel = Channel & { release(): Promise<void> };

/**
 * A pool of channels of one connection (kombu's `ChannelPool`). Closing the pool closes its
 * channels, not the connection.
 *
 * @example
 * ```ts
 * const channels = conn.ChannelPool({ limit: 10 });
 * await channels.use((ch) => ch.publish(Buffer.from('hi'), {}, '', 'tasks'));
 * const ch = await channels.acquire();
 * await ch.release();
 * ```
 */
export class ChannelPool extends ResourcePool<PooledChannel> {
  readonly connection: Connection;

  constructor(connection: Connection, options: PoolOptions = {}) {
    super(options);
    this.connection = connection;
    this.start();
  }

  protected async create(signal: AbortSignal): Promise<PooledChannel> {
    const retired = (): ConnectionClosed => new ConnectionClosed('Channel pool member retired while opening.');
    if (signal.aborted) throw retired();
    // The channel may wait for its connection to come back (for ever, while the broker is
    // down): a retired member (the pool closing, resized) does not wait with it. The channel
    // is closed whenever it does open.
    const opening = this.connection.channel() as Promise<PooledChannel>;
    return unlessAborted(opening, signal, retired, (channel) => void channel.close().catch(() => undefined));
  }

  protected async destroy(channel: PooledChannel): Promise<void> {
    await channel.close();
  }

  /** A channel of a `failed` connection waits, suspended, for a reconnect nothing will start: dead too. */
  protected isAlive(channel: PooledChannel): boolean {
    return !deadChannel(channel.state) && this.connection.state !== 'failed';
  }

  protected watch(channel: PooledChannel, onDeath: (error: unknown) => void, onChange: () => void): () => void {
    const listener = ({ to }: { to: string }): void => {
      onChange();
      if (deadChannel(to)) onDeath(new ConnectionClosed(`Pooled channel ${channel.channelId} closed.`));
    };
    // Replacing the member opens a channel, which reconnects the connection (one round of
    // attempts per try, the member's backoff between tries).
    const failed = ({ to }: { to: ConnectionState }): void => {
      if (to === 'failed') onDeath(this.connection.lastError ?? new ConnectionClosed('The connection of a pooled channel failed.'));
    };
    channel.on('state', listener);
    this.connection.on('state', failed);
    return () => {
      channel.off('state', listener);
      this.connection.off('state', failed);
    };
  }

  protected stateOf(channel: PooledChannel): string {
    return channel.state;
  }
}
