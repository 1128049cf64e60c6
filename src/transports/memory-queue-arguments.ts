/**
 * RabbitMQ's validation of the queue arguments the `memory://` broker acts on, read once when
 * a queue is declared. A value of the wrong type or out of range is refused with 406
 * PRECONDITION_FAILED and RabbitMQ's "invalid arg" text, as RabbitMQ 3.x refuses it (checked
 * on a real 3.10 node): integers must be integers (not strings or doubles), `x-expires` above
 * 0, `x-max-priority` at most 255, `x-single-active-consumer` a boolean, the dead-letter
 * exchange a string, and `x-dead-letter-routing-key` only next to `x-dead-letter-exchange`.
 */
import { BrokerRefusal, ReplyCode } from './memory-routing.js';

type Args = Readonly<Record<string, unknown>>;

const OVERFLOWS = ['drop-head', 'reject-publish', 'reject-publish-dlx'] as const;
/** `x-overflow`: what a full queue does with a new message (RabbitMQ's three modes). */
export type Overflow = (typeof OVERFLOWS)[number];

/** The arguments of one queue, validated. Durations in ms, as AMQP carries them. */
export interface QueueArguments {
  maxPriority: number;
  messageTtl: number | undefined;
  maxLength: number | undefined;
  maxLengthBytes: number | undefined;
  overflow: Overflow;
  /** `x-expires`: ms of disuse after which the queue is deleted. */
  expires: number | undefined;
  deadLetterExchange: string | undefined;
  deadLetterRoutingKey: string | undefined;
  singleActiveConsumer: boolean;
}

const invalid = (key: string, queue: string, why: string) =>
  new BrokerRefusal(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - invalid arg '${key}' for queue '${queue}' in vhost '/': ${why}`);

function intArgument(args: Args, key: string, queue: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const value = args[key];
  if (value === undefined) return undefined;
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw invalid(key, queue, `expected integer, got ${typeof value}`);
  if (n < min) throw invalid(key, queue, `{${n === 0 ? 'value_zero' : 'value_negative'},${n}}`);
  if (n > max) throw invalid(key, queue, `{max_value_exceeded,${n}}`);
  return n;
}

function stringArgument(args: Args, key: string, queue: string): string | undefined {
  const value = args[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
    throw new BrokerRefusal(ReplyCode.PRECONDITION_FAILED, `PRECONDITION_FAILED - invalid type '${typeof value}' for arg '${key}' in queue '${queue}' in vhost '/'`);
  }
  return String(value);
}

/**
 * Reads and validates a queue's arguments; throws RabbitMQ's 406 on an invalid one.
 *
 * @example
 * ```ts
 * queueArguments({ 'x-max-length-bytes': 1024, 'x-overflow': 'reject-publish' }, 'jobs').maxLengthBytes; // 1024
 * queueArguments({ 'x-dead-letter-routing-key': 'dead' }, 'jobs'); // throws 406: no x-dead-letter-exchange
 * ```
 */
export function queueArguments(args: Args, queue: string): QueueArguments {
  const overflowValue = args['x-overflow'];
  const overflow = overflowValue === undefined ? 'drop-head' : OVERFLOWS.find((m) => m === String(overflowValue));
  if (overflow === undefined) throw invalid('x-overflow', queue, 'invalid_overflow');
  const sac = args['x-single-active-consumer'];
  if (sac !== undefined && typeof sac !== 'boolean') throw invalid('x-single-active-consumer', queue, `{unacceptable_type,${typeof sac}}`);
  const deadLetterExchange = stringArgument(args, 'x-dead-letter-exchange', queue);
  const deadLetterRoutingKey = stringArgument(args, 'x-dead-letter-routing-key', queue);
  if (deadLetterRoutingKey !== undefined && deadLetterExchange === undefined) {
    throw invalid('x-dead-letter-routing-key', queue, 'routing_key_but_no_dlx_defined');
  }
  return {
    maxPriority: intArgument(args, 'x-max-priority', queue, 0, 255) ?? 0,
    messageTtl: intArgument(args, 'x-message-ttl', queue, 0),
    maxLength: intArgument(args, 'x-max-length', queue, 0),
    maxLengthBytes: intArgument(args, 'x-max-length-bytes', queue, 0),
    overflow,
    expires: intArgument(args, 'x-expires', queue, 1),
    deadLetterExchange,
    deadLetterRoutingKey,
    singleActiveConsumer: sac === true,
  };
}
