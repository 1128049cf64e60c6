/**
 * Message properties between kombu-ts and amqplib.
 *
 * Both sides already use camelCased AMQP basic properties (`contentType`, `deliveryMode`...),
 * and both count `timestamp` in seconds since the epoch (AMQP's 64-bit POSIX time; amqplib
 * passes the number through), so the mapping is mostly a copy. What it adds: only defined
 * values cross (exactOptionalPropertyTypes), a fractional timestamp is floored (amqplib
 * encodes it with BigInt, which refuses fractions), and amqplib's `clusterId` (deprecated in
 * AMQP 0-9-1) is dropped.
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
  if (properties.headers !== undefined && !isEmpty(properties.headers)) options.headers = properties.headers;
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
    properties.headers = headers as Record<string, unknown>;
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
