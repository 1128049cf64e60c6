/**
 * Per-test context of the conformance suite: connections that are closed after the test, and
 * unique entity names that are deleted after it (real brokers are shared between test files
 * and runs, so nothing may be left behind and no name may repeat).
 */
import { randomBytes } from 'node:crypto';
import { Connection, type ConnectionOptions } from '../../src/index.js';

/** What a transport's test file tells the suite. Durations in seconds. */
export interface ConformanceOptions {
  /** Options of every Connection the suite opens (say, a fast reconnect `retryPolicy`). */
  connectionOptions?: ConnectionOptions;
  /** Drops every live connection to the broker; they reconnect by themselves. */
  dropConnections?: () => Promise<void>;
  /**
   * Starts an outage: live connections are dropped and new ones refused until the returned
   * function is called (which resolves once the broker accepts connections again).
   */
  outage?: () => Promise<() => Promise<void>>;
  /**
   * Starts flow control: the broker blocks publishing connections (`connection.blocked`) until
   * the returned function is called.
   */
  block?: () => Promise<() => Promise<void>>;
  /** What the broker supports (each defaults to true). */
  supports?: {
    headersExchange?: boolean;
    priorities?: boolean;
    messageTtl?: boolean;
    maxLength?: boolean;
    deadLettering?: boolean;
    mandatory?: boolean;
  };
  /** Seconds to wait for an expected delivery (default 5). */
  timeout?: number;
}

export interface Context {
  readonly url: string;
  readonly options: ConformanceOptions;
  /** A new Connection, closed after the test. */
  connection(extra?: ConnectionOptions): Connection;
  /** A unique queue name, deleted after the test. */
  queueName(prefix: string): string;
  /** A unique exchange name, deleted after the test. */
  exchangeName(prefix: string): string;
  /** A unique name used for both a queue and an exchange (SimpleQueue), both deleted after the test. */
  entityName(prefix: string): string;
  /** Waits until `predicate()` holds (polling), failing after the suite's timeout. */
  until(predicate: () => boolean, what?: string): Promise<void>;
  /** Lets deliveries that should not happen have their chance. */
  settle(seconds?: number): Promise<void>;
  /** Closes the connections and deletes the entities. */
  cleanup(): Promise<void>;
}

export type Feature = keyof NonNullable<ConformanceOptions['supports']>;

/** The current test's context, and whether the broker supports a feature (known when tests are defined). */
export interface ContextGetter {
  (): Context;
  readonly options: ConformanceOptions;
  supports(feature: Feature): boolean;
}

export const sleep = (seconds: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** Creates the context of one test. */
export function createContext(url: string, options: ConformanceOptions): Context {
  const run = randomBytes(4).toString('hex');
  let counter = 0;
  const connections: Connection[] = [];
  const queues: string[] = [];
  const exchanges: string[] = [];
  const unique = (prefix: string): string => `kombu-ts.conformance.${prefix}.${run}.${++counter}`;
  const timeout = options.timeout ?? 5;
  return {
    url,
    options,
    connection(extra = {}) {
      const conn = new Connection(url, { ...(options.connectionOptions ?? {}), ...extra });
      connections.push(conn);
      return conn;
    },
    queueName(prefix) {
      const name = unique(prefix);
      queues.push(name);
      return name;
    },
    exchangeName(prefix) {
      const name = unique(prefix);
      exchanges.push(name);
      return name;
    },
    entityName(prefix) {
      const name = unique(prefix);
      queues.push(name);
      exchanges.push(name);
      return name;
    },
    async until(predicate, what = 'condition') {
      const deadline = Date.now() + timeout * 1000;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} s waiting for ${what}.`);
        await sleep(0.005);
      }
    },
    settle(seconds = 0.05) {
      return sleep(seconds);
    },
    async cleanup() {
      await Promise.all(connections.splice(0).map((c) => c.close().catch(() => undefined)));
      if (queues.length === 0 && exchanges.length === 0) return;
      const conn = new Connection(url, options.connectionOptions ?? {});
      try {
        for (const name of queues.splice(0)) await withChannel(conn, (ch) => ch.deleteQueue(name));
        for (const name of exchanges.splice(0)) await withChannel(conn, (ch) => ch.deleteExchange(name));
      } finally {
        await conn.close();
      }
    },
  };
}

async function withChannel(conn: Connection, fn: (channel: Awaited<ReturnType<Connection['channel']>>) => Promise<unknown>): Promise<void> {
  const channel = await conn.channel();
  await fn(channel).catch(() => undefined);
  await channel.close().catch(() => undefined);
}
