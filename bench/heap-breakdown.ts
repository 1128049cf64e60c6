/**
 * Where the heap of an idle connection + channel goes. Measured exactly, not by heapUsed:
 * a V8 heap snapshot before and after opening K of each, compiled code left out, so the
 * numbers repeat to the byte between runs. It explains the heap ratio of the AMQP table:
 *   - amqplib as kombu-ts opens it (heartbeat off, as kombu's default; TCP_NODELAY);
 *   - the same once kombu-ts has released what amqplib keeps of its opening handshake (see
 *     `releaseHandshake` in src/transports/amqplib-internals.ts): what kombu-ts really holds;
 *   - the two XState actors every connection + channel is (connection actor with its actor
 *     system, channel child actor): the floor of the architecture;
 *   - what kombu-ts's own objects add (facades, transport wrappers, listeners).
 *
 *   node --expose-gc --import tsx bench/heap-breakdown.ts
 */
import { writeHeapSnapshot } from 'node:v8';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { createActor, fromPromise } from 'xstate';
import type * as Machines from '../machines/index.js';
import type * as AmqplibInternals from '../src/transports/amqplib-internals.js';
import { Connection } from './library.js';
import { sleep } from './lib.js';

const URL = process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672//';
const RAW_URL = URL.replace(/\/\/$/, '/%2F');
const K = 100;
const machines = (await import(process.env.KOMBU_TS_SOURCES ? '../machines/index.js' : '../dist/machines/index.js')) as typeof Machines;
const { releaseHandshake } = (await import(
  process.env.KOMBU_TS_SOURCES ? '../src/transports/amqplib-internals.js' : '../dist/src/transports/amqplib-internals.js'
)) as typeof AmqplibInternals;

/** Bytes of every heap object but compiled code, after a full GC. */
async function heapObjects(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4 && gc; i++) {
    gc();
    await sleep(20);
  }
  const file = writeHeapSnapshot(join(tmpdir(), `kombu-ts-heap-${process.pid}.heapsnapshot`));
  try {
    const snapshot = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[] };
    const fields = snapshot.snapshot.meta.node_fields;
    const types = snapshot.snapshot.meta.node_types[0];
    const typeAt = fields.indexOf('type');
    const sizeAt = fields.indexOf('self_size');
    let total = 0;
    for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
      const type = types[snapshot.nodes[i + typeAt]!];
      if (type !== 'code' && type !== 'synthetic' && type !== 'native') total += snapshot.nodes[i + sizeAt]!;
    }
    return total;
  } finally {
    rmSync(file, { force: true });
  }
}

type Open = () => Promise<() => unknown>;

/** Bytes per instance of what `open` makes (after a warm-up that compiles its code). */
async function perInstance(open: Open): Promise<number> {
  for (let i = 0; i < 10; i++) await (await open())();
  const before = await heapObjects();
  const closers: (() => unknown)[] = [];
  for (let i = 0; i < K; i++) closers.push(await open());
  const after = await heapObjects();
  await Promise.all(closers.map((close) => close()));
  return (after - before) / K;
}

const input = {
  hosts: ['amqp://guest:**@127.0.0.1:5672//'], heartbeat: 0, heartbeatRate: 5, autoReconnect: true,
  schedule: { maxRetries: undefined, intervalStart: 2, intervalStep: 2, intervalMax: 30 },
};
const bareMachine = machines.connectionMachine.provide({
  actors: {
    connectTransport: fromPromise<void, { hostIndex: number; attempt: number }>(async () => undefined),
    channel: machines.channelMachine.provide({ actors: { openChannel: fromPromise<void, { channelId: number; recover: boolean }>(async () => undefined) } }),
  },
});

export async function heapBreakdown(): Promise<string> {
  const amqplibDefault = await perInstance(async () => {
    const conn = await amqplib.connect(RAW_URL);
    await conn.createConfirmChannel();
    return () => conn.close();
  });
  const amqplibAsUsed = await perInstance(async () => {
    const conn = await amqplib.connect(`${RAW_URL}?heartbeat=0`, { noDelay: true });
    await conn.createConfirmChannel();
    return () => conn.close();
  });
  const amqplibReleased = await perInstance(async () => {
    const conn = await amqplib.connect(`${RAW_URL}?heartbeat=0`, { noDelay: true });
    releaseHandshake(conn.connection as unknown as Parameters<typeof releaseHandshake>[0]);
    await conn.createConfirmChannel();
    return () => conn.close();
  });
  const actors = await perInstance(async () => {
    const actor = createActor(bareMachine, { input }).start();
    actor.send({ type: 'connect' });
    await sleep(0);
    actor.send({ type: 'channel.open', channelId: 1 });
    await sleep(0);
    return () => actor.stop();
  });
  const kombu = await perInstance(async () => {
    const conn = new Connection(URL);
    await conn.channel();
    return () => conn.close();
  });
  const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
  const rows = [
    ['amqplib connection + confirm channel, defaults (the AMQP table\'s baseline)', amqplibDefault],
    ['  the same as kombu-ts opens it (heartbeat 0, noDelay)', amqplibAsUsed],
    ['  the same, with the handshake amqplib keeps released (as kombu-ts holds it)', amqplibReleased],
    ['  + XState: connection actor (with its actor system) and channel child actor', actors],
    ['  + kombu-ts\'s own objects (facades, wrappers, listeners)', kombu - amqplibReleased - actors],
    ['kombu-ts connection + channel', kombu],
  ] as const;
  const lines = [
    `### Heap per idle connection + channel, by part (heap snapshots, ${K} of each)`,
    '',
    '| part | KiB | vs amqplib |',
    '|---|---:|---:|',
    ...rows.map(([name, bytes]) => `| ${name} | ${kib(bytes)} | ${(bytes / amqplibDefault).toFixed(2)}x |`),
  ];
  const text = lines.join('\n');
  console.log(`\n${text}\n`);
  return text;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await heapBreakdown();
}
