/**
 * kombu's messaging module (kombu/messaging.py): {@link Producer}, {@link Consumer} and the
 * {@link Message} they exchange. Each lives in its own module; this one gathers them under
 * kombu's name.
 *
 * @example
 * ```ts
 * import { Consumer, Producer } from 'kombu-ts';
 * const producer = new Producer(conn, { routingKey: 'tasks' });
 * const consumer = new Consumer(conn, ['tasks'], { callbacks: [(body, message) => message.ack()] });
 * ```
 */
export { DEFAULT_MAX_BUFFERED_MESSAGES, Producer } from './producer.js';
export type { ProducerEvents, ProducerOptions, ProducerPublishOptions } from './producer.js';
export { Consumer } from './consumer.js';
export type { ConsumerCallback, ConsumerEvents, ConsumerOptions } from './consumer.js';
export { Message } from './message.js';
export type { MessageAcker, MessageLogger, MessageOptions, MessageState } from './message.js';
