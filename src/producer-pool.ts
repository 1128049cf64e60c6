/**
 * kombu's ProducerPool: a pool of Producers that borrow a connection from a ConnectionPool
 * for as long as they are lent. Acquiring a producer acquires a connection (waiting for one,
 * as kombu's `connections.acquire(block=True)`) and binds the producer to that connection's
 * default channel; releasing the producer gives the connection back first.
 *
 * A producer has no life of its own (its connection is the part that fails, and the
 * connection pool heals or replaces it), so members never die here; closing the pool closes
 * the producers, not the connection pool.
 */
import type { Connection } from './connection.js';
import type { ConnectionPool } from './connection-pool.js';
import { unlessAborted } from './abortable.js';
import { ConnectionClosed } from './errors.js';
import { Producer, type ProducerOptions } from './messaging.js';
import { ResourcePool, type AcquireOptions, type PoolOptions } from './pool.js';

/** Options of a {@link ProducerPool}. */
export interface ProducerPoolOptions extends PoolOptions {
  /** Options every producer is made with (exchange, routingKey, serializer...). */
  producerOptions?: ProducerOptions;
}

const noop = (): void => undefined;

/**
 * A pool of producers over a {@link ConnectionPool} (kombu's `ProducerPool`).
 *
 * @example
 * ```ts
 * const connections = new Connection('amqp://guest:guest@localhost//').Pool({ limit: 5 });
 * const producers = new ProducerPool(connections, { limit: 10 });
 * await producers.use((producer) => producer.publish({ hello: 'world' }, { routingKey: 'tasks' }));
 * const producer = await producers.acquire({ block: true, timeout: 5 });
 * try { await producer.publish('hi', { routingKey: 'tasks' }); } finally { producers.release(producer); }
 * ```
 */
export class ProducerPool extends ResourcePool<Producer> {
  readonly connections: ConnectionPool;
  readonly #producerOptions: ProducerOptions;
  /** The connection each lent producer borrowed. */
  readonly #bound = new Map<Producer, Connection>();
  /** Aborted by close(): acquirers still waiting for a connection give up. */
  readonly #closing = new AbortController();

  constructor(connections: ConnectionPool, options: ProducerPoolOptions = {}) {
    super(options);
    this.connections = connections;
    this.#producerOptions = options.producerOptions ?? {};
    this.start();
  }

  protected async create(): Promise<Producer> {
    return new Producer(this.connections.connection, this.#producerOptions);
  }

  protected async destroy(producer: Producer): Promise<void> {
    this.#unbind(producer);
    await producer.close();
  }

  protected isAlive(): boolean {
    return true;
  }

  protected watch(): () => void {
    return noop;
  }

  protected stateOf(producer: Producer): string {
    return this.#bound.get(producer)?.state ?? 'unbound';
  }

  /**
   * Acquires a producer bound to a connection of the connection pool. `timeout` bounds the
   * whole wait (for a producer, then for a connection): one deadline, not one per pool. See
   * {@link ResourcePool.acquire}.
   */
  override async acquire(options: AcquireOptions = {}): Promise<Producer> {
    const started = performance.now();
    const producer = await super.acquire(options);
    let connection: Connection | undefined;
    try {
      // What is left of the deadline (0 = take a free connection, else give up at once).
      const timeout = options.timeout === undefined ? undefined : Math.max(0, options.timeout - (performance.now() - started) / 1000);
      connection = await this.#acquireConnection(timeout);
      producer.revive(connection.defaultChannel);
      this.#bound.set(producer, connection);
    } catch (error) {
      if (connection) this.connections.release(connection);
      super.release(producer);
      throw error;
    }
    return producer;
  }

  /** A connection of the connection pool, unless this pool closes first (then it goes back when it comes). */
  #acquireConnection(timeout: number | undefined): Promise<Connection> {
    const signal = this.#closing.signal;
    const closed = (): ConnectionClosed => new ConnectionClosed('The pool was closed while waiting for a member.');
    if (signal.aborted) return Promise.reject(closed());
    const acquiring = this.connections.acquire({ block: true, ...(timeout !== undefined ? { timeout } : {}) });
    return unlessAborted(acquiring, signal, closed, (connection) => {
      try {
        this.connections.release(connection);
      } catch {
        // The connection pool closed meanwhile: nothing to give back.
      }
    });
  }

  /** Closes the producers (not the connection pool); acquirers still waiting are rejected. */
  override close(): Promise<void> {
    this.#closing.abort();
    return super.close();
  }

  /** Gives the producer back, and its connection to the connection pool. */
  override release(producer: Producer): void {
    super.release(producer);
    this.#unbind(producer);
  }

  #unbind(producer: Producer): void {
    const connection = this.#bound.get(producer);
    if (!connection) return;
    this.#bound.delete(producer);
    try {
      this.connections.release(connection);
    } catch {
      // The connection pool closed (or replaced that connection) meanwhile: nothing to give back.
    }
  }
}
