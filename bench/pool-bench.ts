/**
 * Pool hand-off throughput: kombu-ts's ConnectionPool (members are memory:// connections) vs
 * generic-pool 3 with the same limit and a trivial resource. Acquire + release only: what the
 * resource does is not measured. Two shapes:
 * - uncontended: one user, acquire then release, again and again (always a free member);
 * - contended: more users than members, each acquire -> one await -> release (most acquires
 *   wait in the FIFO and are served by a release).
 * Several rounds, medians, ops/s (one op = one acquire + one release). Not part of `npm test`.
 *
 *   npx tsx bench/pool-bench.ts [--rounds 7] [--ops 200000]
 */
import genericPool from 'generic-pool';
import { Connection, resetMemoryBrokers } from './library.js';
import { median, numberArg, table, type Row } from './lib.js';

const ROUNDS = numberArg('rounds', 7);
const OPS = numberArg('ops', 200_000);
const LIMIT = 5;

interface Subject {
  name: string;
  acquire(): Promise<object>;
  release(resource: object): unknown;
  close(): Promise<void>;
}

async function kombuPool(): Promise<Subject> {
  const pool = new Connection('memory://pool-bench').Pool({ limit: LIMIT, preload: LIMIT });
  await pool.ready();
  return {
    name: 'kombu-ts ConnectionPool',
    acquire: () => pool.acquire({ block: true }),
    release: (resource) => pool.release(resource as Connection),
    close: () => pool.close(),
  };
}

async function genericPoolSubject(): Promise<Subject> {
  const pool = genericPool.createPool({ create: async () => ({}), destroy: async () => undefined }, { max: LIMIT, min: LIMIT });
  await pool.ready();
  return {
    name: 'generic-pool',
    acquire: () => pool.acquire(),
    release: (resource) => pool.release(resource),
    close: async () => {
      await pool.drain();
      await pool.clear();
    },
  };
}

async function uncontended(subject: Subject, ops: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const resource = await subject.acquire();
    await subject.release(resource);
  }
  return ops / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function contended(subject: Subject, ops: number, users: number): Promise<number> {
  const perUser = Math.floor(ops / users);
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: users }, async () => {
      for (let i = 0; i < perUser; i++) {
        const resource = await subject.acquire();
        await Promise.resolve();
        await subject.release(resource);
      }
    }),
  );
  return (perUser * users) / (Number(process.hrtime.bigint() - start) / 1e9);
}

const shapes: { title: string; run: (s: Subject) => Promise<number> }[] = [
  { title: `uncontended (1 user, limit ${LIMIT})`, run: (s) => uncontended(s, OPS) },
  { title: `contended (20 users, limit ${LIMIT})`, run: (s) => contended(s, OPS, 20) },
  { title: `contended (200 users, limit ${LIMIT})`, run: (s) => contended(s, OPS, 200) },
];

const factories = [genericPoolSubject, kombuPool];
const results = new Map<string, Map<string, number[]>>();
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the order each round so neither side always runs on a warmer heap.
  for (const factory of round % 2 ? [...factories].reverse() : factories) {
    const subject = await factory();
    for (const shape of shapes) {
      if (round === 0) await shape.run(subject); // warm-up
      const perShape = results.get(shape.title) ?? new Map<string, number[]>();
      results.set(shape.title, perShape);
      const samples = perShape.get(subject.name) ?? [];
      perShape.set(subject.name, samples);
      samples.push(await shape.run(subject));
    }
    await subject.close();
  }
}
resetMemoryBrokers();

/** What one XState event to the pool actor costs: the price an event-per-acquire design would pay twice per op. */
async function eventCost(): Promise<number> {
  const pool = new Connection('memory://pool-bench-events').Pool({ limit: LIMIT });
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 50_000; i++) pool.actor.send({ type: 'waiter.served', waiterId: -1 });
    samples.push(Number(process.hrtime.bigint() - start) / 50_000);
  }
  await pool.close();
  return median(samples);
}
const perEvent = await eventCost();

console.log(`Pool acquire+release, node ${process.version}, ${ROUNDS} rounds x ${OPS} ops, medians`);
console.log(`One XState event to the pool actor: ${perEvent.toFixed(0)} ns (an event per acquire and per release would cost ${(2 * perEvent).toFixed(0)} ns/op on its own)`);
for (const [title, perShape] of results) {
  const rows: Row[] = [...perShape].map(([name, samples]) => ({ name, value: median(samples) }));
  table(title, 'ops/s', rows, 'generic-pool', true);
}
