/**
 * kombu-ts: Python kombu's messaging API for Node.js, every broker connection an XState actor.
 * Explicit named exports only.
 */
export { Connection, BrokerConnection } from './connection.js';
export type { ConnectionEvents, ConnectionState, ConnectionStatus, StateChange } from './connection-status.js';
export type { ConnectionInfo, ConnectionOptions } from './connection-options.js';
export { Channel } from './channel.js';
export type { ChannelEvents, ChannelPublishOptions, ChannelState, DeliveryHandler } from './channel.js';
export { DELIVERY_MODES, Exchange, deliveryModeOf } from './exchange.js';
export type { DeliveryMode, ExchangeOptions } from './exchange.js';
export { Binding, Queue, binding, toQueueArguments } from './queue.js';
export type { QueueOptions } from './queue.js';
export { DeclarationCache, connectionOf, eventloop, maybeDeclare } from './common.js';
export type { EventloopOptions, MaybeDeclareOptions } from './common.js';
export { DEFAULT_MAX_BUFFERED_MESSAGES, Producer } from './producer.js';
export type { ProducerEvents, ProducerOptions, ProducerPublishOptions } from './producer.js';
export { Consumer } from './consumer.js';
export type { ConsumerCallback, ConsumerEvents, ConsumerOptions } from './consumer.js';
export { Message } from './message.js';
export type { MessageAcker, MessageLogger, MessageOptions, MessageState } from './message.js';
export { SimpleBuffer, SimpleQueue } from './simple.js';
export type { SimpleQueueOptions } from './simple.js';
export {
  DEFAULT_ACCEPT,
  SerializerRegistry,
  TRUSTED_CONTENT,
  createSerializerRegistry,
  disableInsecureSerializers,
  dumps,
  enableInsecureSerializers,
  loads,
  prepareAcceptContent,
  rawEncode,
  register as registerSerializer,
  registry as serializerRegistry,
  unregister as unregisterSerializer,
} from './serialization.js';
export type { Decoder, Encoder, LoadsOptions, Serialized } from './serialization.js';
export {
  CompressionRegistry,
  compress,
  compressionRegistry,
  createCompressionRegistry,
  decompress,
  encoders as compressionEncoders,
  getDecoder as getCompressionDecoder,
  getEncoder as getCompressionEncoder,
  register as registerCompression,
} from './compression.js';
export type { CompressFn, Compressed, DecompressFn } from './compression.js';
export { MemoryBroker, getMemoryBroker, resetMemoryBrokers } from './transports/memory.js';
export type { MemoryBrokerOptions, MemoryCredentials } from './transports/memory.js';
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
export type { EnsurePolicy } from './ensure.js';
export { registerTransport, knownSchemes } from './transports/registry.js';
export type * from './transports/transport.js';
export type { Observer, Unsubscribe } from './observable.js';
export { connectionMachine, channelMachine, heartbeatMachine } from '../machines/index.js';
export type { ErrorSummary } from '../machines/index.js';
export { ChannelPool, ConnectionPool, PoolGroup, ProducerPool, ResourcePool, getLimit, pools, reset, setLimit } from './pools.js';
export type { AcquireOptions, GroupedPool, MemberStatus, PoolEvents, PoolOptions, PoolStatus, PooledChannel, ProducerPoolOptions, ResizeOptions } from './pools.js';
export { poolMachine, poolMemberMachine } from '../machines/index.js';
export type { PoolState, PoolMemberState } from '../machines/index.js';
