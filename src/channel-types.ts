/**
 * What a Channel promises and what it asks: its states and events, the options of its
 * publish, the delivery callback of its consumers, and what it needs of its Connection
 * (`ChannelHost`, kept narrow so that channels stay testable).
 *
 * Types only, kept apart from channel.ts (which re-exports them) because the facade and its
 * link (channel-link.ts) both use them, and to keep the facade's file to its code.
 */
import type { ErrorSummary } from '../machines/index.js';
import type { Channel } from './channel.js';
import type { KombuError } from './errors.js';
import type { PublishOptions, RawMessage, ReturnedMessage, TransportConnection } from './transports/transport.js';

/** Receives each delivery with the epoch it belongs to (pass it back to ack/reject). */
export type DeliveryHandler = (message: RawMessage, epoch: number) => void;

/** What a Channel needs from its Connection (kept narrow so channels stay testable). */
export interface ChannelHost {
  /** Resolves with the live transport connection; rejects when the connection is closed or failed. */
  whenConnected(signal?: AbortSignal): Promise<TransportConnection>;
  /** Called after each delivery, for `drainEvents`. */
  notifyDelivery(): void;
  /** Forgets a channel once its actor is final. */
  forgetChannel(channelId: number): void;
  /** True while the broker blocks the connection (flow control): publishes wait. */
  isBlocked(): boolean;
  /** Why the connection failed, while it is `failed`: nothing reconnects it, so calls reject instead of waiting. */
  failure(): KombuError | undefined;
  /** The connection's channels (this one included). */
  readonly channels: readonly Channel[];
}

export type ChannelState = 'opening' | 'open' | 'suspended' | 'recovering' | 'retrying' | 'closing' | 'closed';

export interface ChannelEvents {
  state: (event: { from: ChannelState; to: ChannelState; error: ErrorSummary | undefined }) => void;
  /** Declarations and consumers were restored on a new transport channel. */
  recovered: (event: { epoch: number }) => void;
  /** The broker cancelled a consumer (its queue was deleted by somebody else than this connection); it is being re-declared and resumed. */
  consumerCancelled: (event: { consumerTag: string; queue: string }) => void;
  /** A mandatory message found no queue. */
  return: (message: ReturnedMessage) => void;
  error: (error: KombuError) => void;
}

/** Options of {@link Channel.publish}: the transport's, plus the bounds of waiting while the channel is down. */
export interface ChannelPublishOptions extends PublishOptions {
  /** While the channel is down, at most this many publishes wait for it; one more rejects with `LimitExceeded`. */
  maxBuffered?: number | undefined;
  /** Seconds a publish may wait for the channel to come back before rejecting with `TimeoutError` (`Infinity`: no limit). */
  timeout?: number | undefined;
}
