/**
 * RabbitMQ's rules for declaring an exchange or a queue that exists already: the declaration
 * must be equivalent (same type, durability, auto-delete, internal or exclusive flag, and the
 * same values of the arguments the broker compares), else 406 PRECONDITION_FAILED with
 * RabbitMQ's "inequivalent arg" text. Arguments the broker does not know (an application's
 * own) may differ freely.
 */
import type { ExchangeDeclaration, QueueDeclaration } from './transport.js';
import { BrokerRefusal, ReplyCode, argumentsEqual } from './memory-routing.js';

/**
 * The queue arguments RabbitMQ compares when a queue is declared again (its `declare_args`);
 * any other argument may differ without a 406. An absent `x-queue-type` is 'classic'.
 */
const CHECKED_QUEUE_ARGUMENTS = [
  'x-expires', 'x-message-ttl', 'x-dead-letter-exchange', 'x-dead-letter-routing-key', 'x-max-length', 'x-max-length-bytes',
  'x-max-in-memory-length', 'x-max-in-memory-bytes', 'x-max-priority', 'x-overflow', 'x-queue-mode', 'x-queue-version',
  'x-single-active-consumer', 'x-queue-type', 'x-quorum-initial-group-size', 'x-delivery-limit', 'x-queue-leader-locator',
  'x-queue-master-locator', 'x-initial-cluster-size', 'x-max-age', 'x-stream-max-segment-size-bytes', 'x-stream-filter-size-bytes',
];
/** The only exchange argument RabbitMQ compares on redeclare. */
const CHECKED_EXCHANGE_ARGUMENTS = ['alternate-exchange'];

/** The arguments of `args` RabbitMQ compares, defaults filled in. */
function checked(args: Readonly<Record<string, unknown>>, keys: readonly string[], defaults: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const key of keys) {
    const value = args[key] ?? defaults[key];
    if (value !== undefined) picked[key] = value;
  }
  return picked;
}
const QUEUE_DEFAULTS = { 'x-queue-type': 'classic' };

const show = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
};
const inequivalent = (kind: string, name: string, arg: string, received: unknown, current: unknown) =>
  new BrokerRefusal(
    ReplyCode.PRECONDITION_FAILED,
    `PRECONDITION_FAILED - inequivalent arg '${arg}' for ${kind} '${name}' in vhost '/': received '${show(received)}' but current is '${show(current)}'`,
  );

/** What an existing exchange must match. */
interface DeclaredExchange {
  readonly type: string;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly arguments: Readonly<Record<string, unknown>>;
}

/** What an existing queue must match. */
interface DeclaredQueue {
  readonly durable: boolean;
  readonly exclusive: boolean;
  readonly autoDelete: boolean;
  readonly arguments: Readonly<Record<string, unknown>>;
}

/**
 * Throws the broker's 406 when `d` redeclares `existing` differently.
 *
 * @example
 * ```ts
 * checkExchangeRedeclare(exchanges.get(d.name)!, d); // 406 when the type differs, say
 * ```
 */
export function checkExchangeRedeclare(existing: DeclaredExchange, d: ExchangeDeclaration): void {
  const internal = d.internal ?? false;
  if (existing.type !== d.type) throw inequivalent('exchange', d.name, 'type', d.type, existing.type);
  if (existing.durable !== d.durable) throw inequivalent('exchange', d.name, 'durable', d.durable, existing.durable);
  if (existing.autoDelete !== d.autoDelete) throw inequivalent('exchange', d.name, 'auto_delete', d.autoDelete, existing.autoDelete);
  if (existing.internal !== internal) throw inequivalent('exchange', d.name, 'internal', internal, existing.internal);
  const [was, now] = [checked(existing.arguments, CHECKED_EXCHANGE_ARGUMENTS), checked(d.arguments, CHECKED_EXCHANGE_ARGUMENTS)];
  if (!argumentsEqual(was, now)) throw inequivalent('exchange', d.name, 'arguments', now, was);
}

/**
 * Throws the broker's 406 when `d` (not passive) redeclares `existing` differently.
 *
 * @example
 * ```ts
 * if (!d.passive) checkQueueRedeclare(queue, d); // 406 on another x-message-ttl, not on x-my-own
 * ```
 */
export function checkQueueRedeclare(existing: DeclaredQueue, d: QueueDeclaration): void {
  if (existing.durable !== d.durable) throw inequivalent('queue', d.name, 'durable', d.durable, existing.durable);
  if (existing.exclusive !== d.exclusive) throw inequivalent('queue', d.name, 'exclusive', d.exclusive, existing.exclusive);
  if (existing.autoDelete !== d.autoDelete) throw inequivalent('queue', d.name, 'auto_delete', d.autoDelete, existing.autoDelete);
  const [was, now] = [checked(existing.arguments, CHECKED_QUEUE_ARGUMENTS, QUEUE_DEFAULTS), checked(d.arguments, CHECKED_QUEUE_ARGUMENTS, QUEUE_DEFAULTS)];
  if (!argumentsEqual(was, now)) throw inequivalent('queue', d.name, 'arguments', now, was);
}
