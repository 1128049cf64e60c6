/**
 * Message properties between kombu-ts and amqplib.
 *
 * Both sides already use camelCased AMQP basic properties (`contentType`, `deliveryMode`...),
 * and both count `timestamp` in seconds since the epoch (AMQP's 64-bit POSIX time; amqplib
 * passes the number through), so the mapping is mostly a copy. What it adds: only defined
 * values cross (exactOptionalPropertyTypes), a fractional timestamp is floored (amqplib
 * encodes it with BigInt, which refuses fractions), and amqplib's `clusterId` (deprecated in
 * AMQP 0-9-1) is dropped.
 *
 * Timestamps inside header tables (a `Date` of ours, RabbitMQ's `x-death[].time`) cross as
 * AMQP timestamps (whole seconds) and arrive as `Date`s, as py-amqp gives `datetime`s.
 * amqplib left alone would send a `Date` as an empty table and hand a received timestamp over
 * as `{ '!': 'timestamp', value }`.
 */
import type { DeliveryInfo, MessageProperties, RawMessage, ReturnedMessage } from './transport.js';

/** The subset of amqplib's `Options.Publish` kombu-ts sets: our properties (same names) + mandatory. */
export interface AmqplibPublishOptions extends MessageProperties {
  mandatory?: boolean;
}

/** amqplib's delivered message, loosely typed (its `properties` are `any`). */
export interface AmqplibMessage {
  content: Buffer;
  fields: {
    deliveryTag: number;
    redelivered?: boolean;
    exchange: string;
    routingKey: string;
    consumerTag?: string;
    messageCount?: number;
    replyCode?: number;
    replyText?: string;
  };
  properties: object;
}

const STRING_KEYS = [
  'contentType', 'contentEncoding', 'correlationId', 'replyTo', 'expiration', 'messageId', 'type', 'userId', 'appId',
] as const;
const NUMBER_KEYS = ['deliveryMode', 'priority', 'timestamp'] as const;

/**
 * `value` with `leaf` applied to every object inside it (tables and arrays, however nested);
 * `leaf` returns a replacement or undefined. Copies only what changes: most headers hold no
 * timestamp, and they are then returned as they are, at no allocation.
 */
function mapNested(value: unknown, leaf: (value: object) => unknown): unknown {
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const replaced = leaf(value);
  if (replaced !== undefined) return replaced;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const mapped = mapNested(value[i], leaf);
      if (mapped !== value[i]) (copy ??= [...value])[i] = mapped;
    }
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    const mapped = mapNested(item, leaf);
    if (mapped !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = mapped;
  }
  return copy ?? value;
}

const toAmqpTimestamp = (value: object): unknown =>
  value instanceof Date ? { '!': 'timestamp', value: Math.floor(value.getTime() / 1000) } : undefined;

const fromAmqpTimestamp = (value: object): unknown => {
  const typed = value as { '!'?: unknown; value?: unknown };
  return typed['!'] === 'timestamp' && typeof typed.value === 'number' ? new Date(typed.value * 1000) : undefined;
};

function isEmpty(table: Record<string, unknown>): boolean {
  for (const _key in table) return false;
  return true;
}

/** kombu-ts properties -> amqplib publish options. */
export function toPublishOptions(properties: MessageProperties, mandatory: boolean): AmqplibPublishOptions {
  const options: AmqplibPublishOptions = {};
  for (const key of STRING_KEYS) {
    const value = properties[key];
    if (value !== undefined) options[key] = value;
  }
  if (properties.deliveryMode !== undefined) options.deliveryMode = properties.deliveryMode;
  if (properties.priority !== undefined) options.priority = properties.priority;
  if (properties.timestamp !== undefined) options.timestamp = Math.floor(properties.timestamp);
  // An empty table is the same as none to every reader (kombu, amqplib): spare encoding it.
  if (properties.headers !== undefined && !isEmpty(properties.headers)) {
    options.headers = mapNested(properties.headers, toAmqpTimestamp) as Record<string, unknown>;
  }
  if (mandatory) options.mandatory = true;
  return options;
}

/** amqplib properties -> kombu-ts properties (defined values only). */
export function fromAmqplibProperties(from: object): MessageProperties {
  const source = from as Record<string, unknown>;
  const properties: MessageProperties = {};
  for (const key of STRING_KEYS) {
    const value = source[key];
    if (value !== undefined && value !== null) properties[key] = String(value);
  }
  for (const key of NUMBER_KEYS) {
    const value = source[key];
    if (typeof value === 'number') properties[key] = value;
  }
  const headers = source['headers'];
  if (headers !== undefined && headers !== null && typeof headers === 'object') {
    properties.headers = mapNested(headers, fromAmqpTimestamp) as Record<string, unknown>;
  }
  return properties;
}

/** A delivered (`consume`) or fetched (`get`) amqplib message -> RawMessage. */
export function toRawMessage(message: AmqplibMessage): RawMessage {
  const { fields } = message;
  const deliveryInfo: DeliveryInfo = {
    exchange: fields.exchange,
    routingKey: fields.routingKey,
    deliveryTag: fields.deliveryTag,
    redelivered: fields.redelivered === true,
  };
  if (fields.consumerTag !== undefined) deliveryInfo.consumerTag = fields.consumerTag;
  if (fields.messageCount !== undefined) deliveryInfo.messageCount = fields.messageCount;
  return { body: message.content, properties: fromAmqplibProperties(message.properties), deliveryInfo };
}

/** A mandatory message the broker returned -> ReturnedMessage (deliveryTag 0: it has none). */
export function toReturnedMessage(message: AmqplibMessage): ReturnedMessage {
  const { fields } = message;
  return {
    body: message.content,
    properties: fromAmqplibProperties(message.properties),
    deliveryInfo: { exchange: fields.exchange, routingKey: fields.routingKey, deliveryTag: 0, redelivered: false },
    replyCode: fields.replyCode ?? 312,
    replyText: fields.replyText ?? 'NO_ROUTE',
  };
}
