/**
 * Maps URL schemes to transports, loading each transport module (and its driver) only when a
 * connection first needs it: `amqplib` and `ioredis` stay optional until their scheme is used.
 */
import { ConfigurationError } from '../errors.js';
import type { Transport } from './transport.js';

interface Entry {
  /** The canonical transport name. */
  name: string;
  defaultPort: number | undefined;
  /** The default port when TLS is on, when it differs (py-amqp: 5671 for amqp with ssl). */
  tlsPort?: number;
  /** Absent for schemes kombu-ts parses (so URLs round-trip) but has no transport for yet. */
  load?: () => Promise<Transport>;
}

const amqp: Entry = { name: 'amqp', defaultPort: 5672, tlsPort: 5671, load: async () => (await import('./amqp.js')).amqpTransport };
const amqps: Entry = { name: 'amqps', defaultPort: 5671, load: async () => (await import('./amqp.js')).amqpsTransport };
const redis: Entry = { name: 'redis', defaultPort: 6379 };
const rediss: Entry = { name: 'rediss', defaultPort: 6379 };
const memory: Entry = { name: 'memory', defaultPort: undefined, load: async () => (await import('./memory.js')).memoryTransport };

const entries = new Map<string, Entry>([
  ['amqp', amqp],
  ['pyamqp', amqp],
  ['librabbitmq', amqp],
  ['amqps', amqps],
  ['pyamqps', amqps],
  ['redis', redis],
  ['rediss', rediss],
  ['memory', memory],
]);

const custom = new Map<string, Transport>();

/** The schemes kombu-ts understands. */
export function knownSchemes(): string[] {
  return [...entries.keys(), ...custom.keys()];
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

function unknownScheme(scheme: string): ConfigurationError {
  const known = knownSchemes();
  const near = known
    .map((name) => ({ name, d: distance(scheme.toLowerCase(), name) }))
    .filter(({ d }) => d <= 2)
    .sort((x, y) => x.d - y.d)[0];
  const hint = near ? ` Did you mean '${near.name}'?` : '';
  return new ConfigurationError(`Unknown transport '${scheme}'.${hint} Known transports: ${known.join(', ')}.`);
}

/** Throws a ConfigurationError (with a "did you mean") when `scheme` is not a transport. */
export function checkScheme(scheme: string): void {
  if (!entries.has(scheme) && !custom.has(scheme)) throw unknownScheme(scheme);
}

/**
 * The default port of the transport behind `scheme` (undefined for memory); with `tls` (the
 * `ssl` option on), its TLS port if it has one: `amqp` gives 5672, or 5671 with TLS.
 */
export function defaultPortFor(scheme: string, tls = false): number | undefined {
  const custom_ = custom.get(scheme);
  if (custom_) return tls ? custom_.defaultTlsPort ?? custom_.defaultPort : custom_.defaultPort;
  const entry = entries.get(scheme);
  if (!entry) throw unknownScheme(scheme);
  return tls ? entry.tlsPort ?? entry.defaultPort : entry.defaultPort;
}

/** The canonical transport name for `scheme` (`pyamqp` -> `amqp`). */
export function canonicalName(scheme: string): string {
  return custom.get(scheme)?.name ?? entries.get(scheme)?.name ?? scheme;
}

/** Loads the transport for `scheme`. Rejects with ConfigurationError for an unknown scheme. */
export async function resolveTransport(scheme: string | Transport): Promise<Transport> {
  if (typeof scheme !== 'string') return scheme;
  const own = custom.get(scheme);
  if (own) return own;
  const entry = entries.get(scheme);
  if (!entry) throw unknownScheme(scheme);
  if (!entry.load) {
    throw new ConfigurationError(`kombu-ts parses '${scheme}://' URLs but has no ${entry.name} transport in this release; use amqp:// or memory://, or registerTransport('${scheme}', ...).`);
  }
  return entry.load();
}

/**
 * Registers a transport under a scheme of your own (kombu's `TRANSPORT_ALIASES`).
 *
 * @example
 * ```ts
 * registerTransport('mybroker', myTransport);
 * const conn = new Connection('mybroker://host');
 * ```
 */
export function registerTransport(scheme: string, transport: Transport): void {
  custom.set(scheme, transport);
}
