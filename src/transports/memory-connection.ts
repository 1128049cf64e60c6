/**
 * A connection of the in-process `memory://` transport.
 *
 * It owns its channels and its exclusive queues, and reports its end once, through `close`:
 * without an error after `close()`, with a recoverable `ConnectionError` when the broker
 * dropped it (`MemoryBroker.dropConnections()`). Liveness is simulated: while the broker is
 * stalled, `heartbeatCheck()` throws `HeartbeatTimeout`, which is what the connection machine
 * watches for. Flow control is simulated too: while the broker blocks connections, `publish`
 * waits (RabbitMQ's connection.blocked) and the `blocked`/`unblocked` events fire.
 */
import { EventEmitter } from 'eventemitter3';
import { AccessRefused, ConnectionClosed, ConnectionError, HeartbeatTimeout, type KombuError } from '../errors.js';
import type { TransportChannel, TransportConnection, TransportConnectionEvents } from './transport.js';
import { MemoryChannel, emitSafely, type ChannelOwner } from './memory-channel.js';
import type { MemoryVhost } from './memory-vhost.js';

/** What a connection needs of its broker. */
export interface ConnectionHost {
  readonly url: string;
  readonly vhost: MemoryVhost;
  readonly stalled: boolean;
  connectionClosed(connection: MemoryConnection): void;
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** One open connection to a {@link MemoryBroker}. Made by `memoryTransport.connect()`. */
export class MemoryConnection extends EventEmitter<TransportConnectionEvents> implements TransportConnection, ChannelOwner {
  readonly id: number;
  /** The `connectionName` the client asked for (RabbitMQ's connection_name). */
  readonly name: string;
  private readonly channels = new Map<number, MemoryChannel>();
  private nextChannelId = 1;
  private open = true;
  private closeError: KombuError | undefined;
  private blockedReason: string | undefined;
  private waiters: Waiter[] = [];

  constructor(
    private readonly host: ConnectionHost,
    id: number,
    name: string,
  ) {
    super();
    this.id = id;
    this.name = name;
  }

  /** The connection itself: there is no driver object underneath. */
  get raw(): unknown {
    return this;
  }

  get vhost(): MemoryVhost {
    return this.host.vhost;
  }

  get isOpen(): boolean {
    return this.open;
  }

  get blocked(): boolean {
    return this.blockedReason !== undefined;
  }

  /** Open channels, by id. */
  get channelCount(): number {
    return this.channels.size;
  }

  createChannel(): Promise<TransportChannel> {
    if (!this.open) return Promise.reject(this.closedError());
    const channel = new MemoryChannel(this, this.nextChannelId++);
    this.channels.set(channel.id, channel);
    return Promise.resolve(channel);
  }

  heartbeatCheck(_rate: number): void {
    if (this.open && this.host.stalled) {
      throw new HeartbeatTimeout(`${this.host.url}: missed heartbeats from the broker (connection stalled)`);
    }
  }

  close(): Promise<void> {
    this.shutdown(undefined);
    return Promise.resolve();
  }

  /** @internal Ends the connection, its channels and its exclusive queues; emits `close` once. */
  shutdown(error: KombuError | undefined): void {
    if (!this.open) return;
    this.open = false;
    this.closeError = error;
    this.blockedReason = undefined;
    for (const channel of [...this.channels.values()]) channel.shutdown(error);
    this.channels.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(this.closedError());
    this.host.connectionClosed(this);
    emitSafely(this, 'close', error);
  }

  /**
   * @internal The broker closes the connection on a connection exception (503, 530...): the
   * error is what the amqp transport makes of RabbitMQ's connection.close (530 is an
   * `AccessRefused`, as 402/403 are; the others a recoverable `ConnectionError`).
   */
  connectionException(code: number, text: string): KombuError {
    const message = `${this.host.url} closed the connection (${code}): ${text}`;
    const error = code === 530 ? new AccessRefused(message, { code }) : new ConnectionError(message, { code });
    this.shutdown(error);
    return error;
  }

  /** @internal The error calls on this closed connection reject with. */
  closedError(): KombuError {
    const lost = this.closeError;
    if (!lost) return new ConnectionClosed(`connection to ${this.host.url} is closed`);
    return new ConnectionError(`connection to ${this.host.url} was lost: ${lost.message}`, {
      cause: lost,
      recoverable: lost.recoverable,
      ...(lost.code === undefined ? {} : { code: lost.code }),
    });
  }

  /** @internal */
  channelClosed(channel: MemoryChannel): void {
    this.channels.delete(channel.id);
  }

  /** @internal Resolves when publishing may go on (at once unless blocked). */
  waitUnblocked(): Promise<void> {
    if (!this.open) return Promise.reject(this.closedError());
    if (this.blockedReason === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** @internal */
  setBlocked(reason: string | undefined): void {
    if (!this.open || this.blockedReason === reason) return;
    const wasBlocked = this.blockedReason !== undefined;
    this.blockedReason = reason;
    if (reason !== undefined) {
      emitSafely(this, 'blocked', reason);
      return;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve();
    if (wasBlocked) emitSafely(this, 'unblocked');
  }
}
