/**
 * The conformance suite: one set of tests, written once, that every transport must pass
 * (kombu's t/integration/common.py idea). A transport's test file calls
 * `runConformance(url, options)`; nothing here knows which broker is behind the URL. Faults
 * (dropped connections, outages) come in as hooks in `options`, and what a broker cannot do
 * is declared in `options.supports`.
 *
 * Every test uses unique entity names and deletes them afterwards, and closes its connections,
 * so suites may share one real broker.
 */
import { afterEach, beforeEach, describe } from 'vitest';
import { maskUrl } from '../../src/index.js';
import { createContext, type ConformanceOptions, type Context, type ContextGetter, type Feature } from './context.js';
import { messagingTests } from './suite-messaging.js';
import { parityTests } from './suite-parity.js';
import { parityEntityTests } from './suite-parity-entities.js';
import { parityQueueTests } from './suite-parity-queues.js';
import { recoveryTests } from './suite-recovery.js';
import { routingTests } from './suite-routing.js';
import { serializationTests } from './suite-serialization.js';
import { simpleTests } from './suite-simple.js';

export type { ConformanceOptions } from './context.js';

/**
 * Defines the conformance tests for the broker at `url`.
 *
 * @example
 * ```ts
 * // test/conformance/amqp.test.ts
 * runConformance('amqp://guest:guest@localhost//', { dropConnections: () => closeAllConnections() });
 * ```
 */
export function runConformance(url: string, options: ConformanceOptions = {}): void {
  describe(`conformance: ${maskUrl(url)}`, () => {
    let current: Context | undefined;
    const get = (() => {
      if (!current) throw new Error('No conformance context outside a test.');
      return current;
    }) as ContextGetter;
    Object.defineProperty(get, 'options', { value: options });
    get.supports = (feature: Feature): boolean => options.supports?.[feature] ?? true;

    beforeEach(() => {
      current = createContext(url, options);
    });
    afterEach(async () => {
      await current?.cleanup();
      current = undefined;
    });

    describe('entities and routing', () => routingTests(get));
    describe('producer, consumer, message', () => messagingTests(get));
    describe('serialization and compression', () => serializationTests(get));
    describe('SimpleQueue and SimpleBuffer', () => simpleTests(get));
    describe('recovery and outages', () => recoveryTests(get));
    describe('RabbitMQ parity', () => {
      parityTests(get);
      parityQueueTests(get);
      parityEntityTests(get);
    });
  });
}
