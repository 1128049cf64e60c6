/**
 * kombu-ts: Python kombu's messaging API for Node.js, every broker connection an XState actor.
 * Explicit named exports only.
 */
export { Connection, BrokerConnection } from './connection.js';
export type { ConnectionEvents, ConnectionState, ConnectionStatus, StateChange } from './connection.js';
export type { ConnectionInfo, ConnectionOptions } from './connection-options.js';
export { Channel } from './channel.js';
export type { ChannelEvents, ChannelState, DeliveryHandler } from './channel.js';
export {
  AccessRefused,
  ChannelError,
  ConfigurationError,
  ConnectTimeout,
  ConnectionClosed,
  ConnectionError,
  ContentDisallowed,
  DecodeError,
  DriverMissingError,
  Empty,
  EncodeError,
  HeartbeatTimeout,
  IllegalStateError,
  KombuError,
  LimitExceeded,
  MessageNacked,
  MessageStateError,
  NotBoundError,
  OperationalError,
  SerializationError,
  TimeoutError,
  isRecoverable,
} from './errors.js';
export type { KombuErrorOptions } from './errors.js';
export { parseUrl, maskUrl, formatUrl } from './url.js';
export type { UrlParts } from './url.js';
export { DEFAULT_RETRY_SCHEDULE, intervalFor, orderHosts } from './retry.js';
export type { FailoverStrategy, RetryPolicy } from './retry.js';
export { registerTransport, knownSchemes } from './transports/registry.js';
export type * from './transports/transport.js';
export type { Observer, Unsubscribe } from './observable.js';
export { connectionMachine, channelMachine, heartbeatMachine } from '../machines/index.js';
export type { ErrorSummary } from '../machines/index.js';
