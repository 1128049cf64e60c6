/**
 * The `memory://` transport: a real little AMQP-like broker living in this process.
 *
 * It is the embedded default (no server to run) and the reference the conformance suite
 * checks other transports against, so it behaves like RabbitMQ where that is observable:
 * routing (default, direct, topic, fanout, headers), queue arguments (priorities, TTL,
 * max-length, dead-lettering, x-expires), exclusive and auto-delete queues, prefetch, requeue
 * with `redelivered`, channel exceptions (404, 405, 406) that close the channel, and mandatory
 * returns. Deliveries are asynchronous (see memory-vhost.ts) and no timer outlives a
 * connection. Which broker a URL reaches: `memory://` is 'localhost', `memory://name` is
 * 'name'; a `MemoryBroker` passed as `transportOptions.broker` wins over both.
 *
 * Module map: memory-broker.ts (registry, connects, fault controls), memory-connection.ts,
 * memory-channel.ts (acks, prefetch), memory-vhost.ts (entities, routing, pump),
 * memory-queue.ts (storage, priorities, TTL, max-length), memory-routing.ts (pure rules).
 */
import { ChannelError, ConnectionError } from '../errors.js';
import type { ConnectParams, Transport, TransportConnection } from './transport.js';
import { MemoryBroker, getMemoryBroker } from './memory-broker.js';

export { MemoryBroker, getMemoryBroker, resetMemoryBrokers } from './memory-broker.js';
export type { MemoryBrokerOptions, MemoryCredentials } from './memory-broker.js';
export { MemoryConnection } from './memory-connection.js';
export { MemoryChannel } from './memory-channel.js';

/** The broker a connection with these parameters reaches. */
export function memoryBrokerFor(params: Pick<ConnectParams, 'hostname' | 'transportOptions'>): MemoryBroker {
  const own = params.transportOptions['broker'];
  if (own instanceof MemoryBroker) return own;
  return getMemoryBroker(params.hostname || 'localhost');
}

/**
 * The in-process transport behind `memory://` URLs.
 *
 * @example
 * ```ts
 * const conn = await memoryTransport.connect(params, new AbortController().signal);
 * const channel = await conn.createChannel();
 * await channel.declareQueue({ name: 'tasks', durable: true, exclusive: false, autoDelete: false, arguments: {}, passive: false });
 * await channel.publish(Buffer.from('hi'), {}, '', 'tasks');
 * const message = await channel.get('tasks', { noAck: true }); // message.body.toString() === 'hi'
 * ```
 */
export const memoryTransport: Transport = Object.freeze({
  name: 'memory',
  defaultPort: undefined,
  capabilities: Object.freeze({
    exchangeTypes: Object.freeze(['direct', 'topic', 'fanout', 'headers'] as const),
    priorities: true,
    heartbeats: true,
    confirms: true,
  }),
  connectionErrors: Object.freeze([ConnectionError]),
  channelErrors: Object.freeze([ChannelError]),
  recoverableConnectionErrors: Object.freeze([ConnectionError]),
  connect(params: ConnectParams, signal: AbortSignal): Promise<TransportConnection> {
    return memoryBrokerFor(params).connect(params, signal);
  },
});
