/**
 * Routing rules of the in-process `memory://` broker, as RabbitMQ applies them.
 *
 * Pure functions over plain records, so the rules can be read (and tested) apart from the
 * broker's bookkeeping: topic patterns (`*` is exactly one word, `#` zero or more, and an
 * empty routing key has zero words, as in RabbitMQ's topic trie), headers matching
 * (`x-match` all/any, `x-` keys ignored unless `all-with-x`/`any-with-x`, a void value matching any), the equivalence
 * check behind 406 PRECONDITION_FAILED on redeclare, and the `x-death` header kept when a
 * message is dead-lettered.
 *
 * The broker throws {@link BrokerRefusal} (an AMQP reply code and text); the channel turns it
 * into a `ChannelError` carrying the class and method ids of the call that failed.
 */
import type { ExchangeType, MessageProperties } from './transport.js';

/** AMQP reply codes the memory broker answers with. */
export const ReplyCode = {
  NO_ROUTE: 312,
  CONNECTION_FORCED: 320,
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
  COMMAND_INVALID: 503,
  NOT_ALLOWED: 530,
} as const;

/**
 * AMQP's connection exceptions (503 COMMAND_INVALID, 530 NOT_ALLOWED...): RabbitMQ closes the
 * whole connection on them, not only the channel that made the request.
 */
export function isConnectionException(code: number): boolean {
  return [501, 502, 503, 504, 505, 506, 530, 540, 541].includes(code);
}

/** A broker-side refusal of one request: the channel that made it is closed with it (or its connection, see {@link isConnectionException}). */
export class BrokerRefusal extends Error {
  override readonly name = 'BrokerRefusal';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One binding of a queue to an exchange. */
export interface Binding<Q> {
  readonly queue: Q;
  readonly routingKey: string;
  readonly args: Readonly<Record<string, unknown>>;
  /** The routing key split on `.`, kept for topic exchanges. */
  readonly words: readonly string[];
}

/** An exchange as the broker keeps it. */
export interface MemoryExchange<Q> {
  readonly name: string;
  readonly type: ExchangeType;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly internal: boolean;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly bindings: Binding<Q>[];
  /** Auto-delete exchanges go when their last binding does, once they had one. */
  hadBinding: boolean;
}

/** Splits a routing key into words; the empty key has none (RabbitMQ's rule). */
export function splitWords(routingKey: string): string[] {
  return routingKey === '' ? [] : routingKey.split('.');
}

/**
 * Whether a topic binding pattern matches a routing key, both given as words.
 *
 * @example
 * ```ts
 * topicMatches(splitWords('stock.#'), splitWords('stock.usd.nyse')); // true
 * topicMatches(splitWords('*.usd'), splitWords('stock.usd.nyse'));   // false
 * ```
 */
export function topicMatches(pattern: readonly string[], key: readonly string[], pi = 0, ki = 0): boolean {
  while (pi < pattern.length) {
    const word = pattern[pi];
    if (word === '#') {
      while (pattern[pi + 1] === '#') pi++;
      if (pi === pattern.length - 1) return true;
      for (let j = ki; j <= key.length; j++) {
        if (topicMatches(pattern, key, pi + 1, j)) return true;
      }
      return false;
    }
    if (ki >= key.length) return false;
    if (word !== '*' && word !== key[ki]) return false;
    pi++;
    ki++;
  }
  return ki === key.length;
}

/**
 * Whether a headers-exchange binding matches a message's headers. `x-match` is `all` (the
 * default) or `any`; keys starting with `x-` are ignored unless it is `all-with-x`/`any-with-x`.
 * A binding value of `null` or `undefined` (AMQP void) only asks for the header to be
 * present, whatever its value, as in RabbitMQ.
 */
export function headersMatch(bindingArgs: Readonly<Record<string, unknown>>, headers: Readonly<Record<string, unknown>>): boolean {
  const mode = bindingArgs['x-match'];
  const any = mode === 'any' || mode === 'any-with-x';
  const withX = mode === 'all-with-x' || mode === 'any-with-x';
  for (const [key, expected] of Object.entries(bindingArgs)) {
    if (key === 'x-match' || (!withX && key.startsWith('x-'))) continue;
    const ok = Object.hasOwn(headers, key) && (expected === undefined || expected === null || valuesEqual(expected, headers[key]));
    if (any && ok) return true;
    if (!any && !ok) return false;
  }
  return !any;
}

/** Structural equality for header and argument values (primitives, Buffers, arrays, plain objects, Dates). */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'bigint') return BigInt(a) === b;
  if (typeof a === 'bigint' && typeof b === 'number') return a === BigInt(b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => valuesEqual(v, b[i]));
  }
  return argumentsEqual(a as Record<string, unknown>, b as Record<string, unknown>);
}

/** Equality of two argument tables; keys whose value is `undefined` count as absent. */
export function argumentsEqual(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  const keysA = Object.keys(a).filter((k) => a[k] !== undefined);
  const keysB = Object.keys(b).filter((k) => b[k] !== undefined);
  return keysA.length === keysB.length && keysA.every((k) => Object.hasOwn(b, k) && valuesEqual(a[k], b[k]));
}

/** An AMQP timestamp: a Date to the whole second. */
const wholeSeconds = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

/** A deep copy of a header value, so later changes by the publisher do not reach the broker. */
export function cloneValue(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  if (value instanceof Date) return wholeSeconds(value.getTime()); // an AMQP timestamp: whole seconds
  if (Array.isArray(value)) return value.map(cloneValue);
  if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) {
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) copy[k] = cloneValue(v);
    return copy;
  }
  return value;
}

/** A copy of message properties whose headers share nothing with the original. */
export function copyProperties(properties: MessageProperties): MessageProperties {
  const copy: MessageProperties = { ...properties };
  if (properties.headers !== undefined) copy.headers = cloneValue(properties.headers) as Record<string, unknown>;
  return copy;
}

/** Why a message was dead-lettered (RabbitMQ's `x-death` reasons). */
export type DeathReason = 'rejected' | 'expired' | 'maxlen';

/** One entry of the `x-death` header. */
export interface DeathEntry {
  queue: string;
  reason: DeathReason;
  count: number;
  exchange: string;
  'routing-keys': string[];
  /** When, to the second (an AMQP timestamp: a Date, as the amqp transport gives RabbitMQ's). */
  time: Date;
  'original-expiration'?: string;
}

/**
 * The headers of a message dead-lettered from `queue`: `x-death` gains (or counts up) the
 * entry for this queue and reason, moved to the front, and `x-first-death-*` are set once.
 */
export function withDeath(
  headers: Readonly<Record<string, unknown>> | undefined,
  death: { queue: string; reason: DeathReason; exchange: string; routingKey: string; nowMs: number; expiration: string | undefined },
): Record<string, unknown> {
  const next: Record<string, unknown> = { ...headers };
  const previous = Array.isArray(next['x-death']) ? (next['x-death'] as DeathEntry[]) : [];
  const existing = previous.find((d) => d.queue === death.queue && d.reason === death.reason);
  const entry: DeathEntry = existing
    ? { ...existing, count: existing.count + 1, time: wholeSeconds(death.nowMs) }
    : {
        queue: death.queue,
        reason: death.reason,
        count: 1,
        exchange: death.exchange,
        'routing-keys': [death.routingKey],
        time: wholeSeconds(death.nowMs),
        ...(death.expiration === undefined ? {} : { 'original-expiration': death.expiration }),
      };
  next['x-death'] = [entry, ...previous.filter((d) => d !== existing)];
  if (next['x-first-death-queue'] === undefined) {
    next['x-first-death-queue'] = death.queue;
    next['x-first-death-reason'] = death.reason;
    next['x-first-death-exchange'] = death.exchange;
  }
  return next;
}

/**
 * True when dead-lettering into `target` would close a cycle with no rejection in it: RabbitMQ
 * drops such messages rather than let them circle forever.
 */
export function isDeadLetterCycle(headers: Readonly<Record<string, unknown>>, target: string): boolean {
  const deaths = headers['x-death'];
  if (!Array.isArray(deaths)) return false;
  const entries = deaths as DeathEntry[];
  return entries.some((d) => d.queue === target) && entries.every((d) => d.reason !== 'rejected');
}
