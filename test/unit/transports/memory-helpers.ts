/**
 * Shared set-up for the memory transport tests: connect parameters, declarations and a way to
 * let the (microtask-driven) delivery pump run.
 */
import { memoryTransport } from '../../../src/transports/memory.js';
import type { MemoryChannel, MemoryConnection } from '../../../src/transports/memory.js';
import type {
  ConnectParams,
  ExchangeDeclaration,
  ExchangeType,
  QueueDeclaration,
  RawMessage,
  TransportChannel,
} from '../../../src/transports/transport.js';

export function params(overrides: Partial<ConnectParams> = {}): ConnectParams {
  return {
    hostname: 'unit',
    port: undefined,
    userid: 'guest',
    password: 'guest',
    virtualHost: '/',
    ssl: false,
    connectTimeout: 4,
    heartbeat: 0,
    loginMethod: undefined,
    transportOptions: {},
    connectionName: 'unit-test',
    ...overrides,
  };
}

export function queue(name: string, overrides: Partial<QueueDeclaration> = {}): QueueDeclaration {
  return { name, durable: true, exclusive: false, autoDelete: false, arguments: {}, passive: false, ...overrides };
}

export function exchange(name: string, type: ExchangeType, overrides: Partial<ExchangeDeclaration> = {}): ExchangeDeclaration {
  return { name, type, durable: true, autoDelete: false, arguments: {}, passive: false, ...overrides };
}

export async function connect(overrides: Partial<ConnectParams> = {}): Promise<MemoryConnection> {
  return (await memoryTransport.connect(params(overrides), new AbortController().signal)) as MemoryConnection;
}

export async function openChannel(overrides: Partial<ConnectParams> = {}): Promise<{ conn: MemoryConnection; ch: MemoryChannel }> {
  const conn = await connect(overrides);
  const ch = (await conn.createChannel()) as MemoryChannel;
  return { conn, ch };
}

/** Lets queued microtasks (the delivery pump) run; works under fake timers too. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

export const text = (m: RawMessage | undefined): string | undefined => m?.body.toString();

/** Drains a queue with get(noAck) and returns the bodies as text. */
export async function drain(ch: TransportChannel, name: string): Promise<string[]> {
  const out: string[] = [];
  for (let m = await ch.get(name, { noAck: true }); m; m = await ch.get(name, { noAck: true })) out.push(m.body.toString());
  return out;
}

export const send = (ch: TransportChannel, body: string, exchangeName: string, routingKey: string, props = {}) =>
  ch.publish(Buffer.from(body), props, exchangeName, routingKey);
