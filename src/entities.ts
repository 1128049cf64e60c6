/**
 * kombu's entities (kombu/entity.py): {@link Exchange}, {@link Queue}, {@link binding}, and
 * {@link maybeDeclare}. Each lives in its own module; this one gathers them under kombu's name.
 *
 * @example
 * ```ts
 * import { Exchange, Queue, binding, maybeDeclare } from 'kombu-ts';
 * const logs = new Exchange('logs', { type: 'topic' });
 * const errors = new Queue('errors', { exchange: logs, routingKey: '*.error' });
 * await maybeDeclare(errors, await conn.channel());
 * ```
 */
export { DELIVERY_MODES, Exchange, deliveryModeOf } from './exchange.js';
export type { DeliveryMode, ExchangeOptions } from './exchange.js';
export { Binding, Queue, binding, toQueueArguments } from './queue.js';
export type { QueueOptions } from './queue.js';
export { maybeDeclare } from './common.js';
export type { MaybeDeclareOptions } from './common.js';
