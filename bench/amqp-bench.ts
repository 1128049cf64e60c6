/**
 * AMQP benchmark: kombu-ts against raw amqplib, amqp-connection-manager and, where installed,
 * Python kombu (bench/kombu-peer.ts), same machine, same run, same workload (RabbitMQ on
 * 127.0.0.1:5672):
 *   - confirmed publish of N x 256-byte JSON messages, confirm windows of 1000;
 *   - consume of N messages, prefetch 1000, ack each;
 *   - recovery after a broker-forced close (`rabbitmqctl close_all_connections`): time from
 *     the client seeing the close to the first confirmed publish and to the first delivery;
 *   - recovery of a ten-queue consumer over a link with a 2 ms round trip (topology-bench.ts);
 *   - heap per idle connection + channel (exact, by part: heap-breakdown.ts);
 *   - the client's CPU per message (user + system of this process; not for Python kombu,
 *     which runs in its own), steadier than throughput, which the broker bounds.
 * Medians of several rounds, the clients' order rotating each round; ratios against amqplib
 * (throughput, heap) and kombu-ts (recovery).
 *
 *   node --expose-gc --import tsx bench/amqp-bench.ts [--messages 50000] [--rounds 3] [--recovery-rounds 15]
 *     [--only throughput,recovery,topology,heap]
 */
import amqplib from 'amqplib';
import acm from 'amqp-connection-manager';
import { Connection, Consumer, measured, Producer, Queue } from './library.js';
import { pythonKombu, pythonMemoryTable, type PythonKombu } from './kombu-peer.js';
import { heapBreakdown } from './heap-breakdown.js';
import { topologyBench } from './topology-bench.js';
import { median, numberArg, payload, quantile, run, sleep, table, type Row } from './lib.js';

const URL = process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672//';
const RAW_URL = URL.replace(/\/\/$/, '/%2F');
const N = numberArg('messages', 50_000);
const ROUNDS = numberArg('rounds', 3);
// A recovery lasts milliseconds but varies by several (the broker's handshake, and the CPU
// that rabbitmqctl's own VM takes on a small machine at that very moment): a median needs
// more rounds than the throughput does.
const RECOVERY_ROUNDS = numberArg('recovery-rounds', 15);
const WINDOW = 1000;
const body = (seq: number) => payload(256, seq);
const queueName = (tag: string) => `bench-${tag}-${process.pid}`;

type Client = {
  name: string;
  publish(queue: string): Promise<number>;
  consume(queue: string): Promise<number>;
};

async function fill(queue: string): Promise<void> {
  const conn = await amqplib.connect(RAW_URL);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: false });
  await ch.purgeQueue(queue);
  for (let i = 0; i < N; i++) {
    if (!ch.publish('', queue, Buffer.from(JSON.stringify(body(i))), { contentType: 'application/json' })) await new Promise((r) => ch.once('drain', r));
    if (i % WINDOW === WINDOW - 1) await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
  await conn.close();
}

async function dropQueue(queue: string): Promise<void> {
  const conn = await amqplib.connect(RAW_URL);
  const ch = await conn.createChannel();
  await ch.deleteQueue(queue);
  await conn.close();
}

const amqplibClient: Client = {
  name: 'amqplib',
  async publish(queue) {
    const conn = await amqplib.connect(RAW_URL);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: false });
    const start = performance.now();
    for (let i = 0; i < N; i++) {
      const ok = ch.publish('', queue, Buffer.from(JSON.stringify(body(i))), { contentType: 'application/json' });
      if (!ok) await new Promise((r) => ch.once('drain', r));
      if (i % WINDOW === WINDOW - 1) await ch.waitForConfirms();
    }
    await ch.waitForConfirms();
    const elapsed = performance.now() - start;
    await conn.close();
    return (N / elapsed) * 1000;
  },
  async consume(queue) {
    const conn = await amqplib.connect(RAW_URL);
    const ch = await conn.createChannel();
    await ch.prefetch(WINDOW);
    const start = performance.now();
    let seen = 0;
    await new Promise<void>((resolve) => {
      void ch.consume(queue, (msg) => {
        if (!msg) return;
        JSON.parse(msg.content.toString());
        ch.ack(msg);
        if (++seen === N) resolve();
      });
    });
    const elapsed = performance.now() - start;
    await conn.close();
    return (N / elapsed) * 1000;
  },
};

const acmClient: Client = {
  name: 'amqp-connection-manager',
  async publish(queue) {
    const manager = acm.connect([RAW_URL]);
    const wrapper = manager.createChannel({ json: true, setup: (ch: amqplib.ConfirmChannel) => ch.assertQueue(queue, { durable: false }) });
    await wrapper.waitForConnect();
    const start = performance.now();
    for (let i = 0; i < N; i += WINDOW) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(N, i + WINDOW); j++) batch.push(wrapper.publish('', queue, body(j), { contentType: 'application/json' }));
      await Promise.all(batch);
    }
    const elapsed = performance.now() - start;
    await manager.close();
    return (N / elapsed) * 1000;
  },
  async consume(queue) {
    const manager = acm.connect([RAW_URL]);
    let seen = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    let start = 0;
    const wrapper = manager.createChannel({
      setup: async (ch: amqplib.ConfirmChannel) => {
        await ch.prefetch(WINDOW);
        start = performance.now();
        await ch.consume(queue, (msg) => {
          if (!msg) return;
          JSON.parse(msg.content.toString());
          ch.ack(msg);
          if (++seen === N) done();
        });
      },
    });
    await finished;
    const elapsed = performance.now() - start;
    await wrapper.close();
    await manager.close();
    return (N / elapsed) * 1000;
  },
};

const kombuClient: Client = {
  name: 'kombu-ts',
  async publish(queue) {
    const conn = new Connection(URL);
    const channel = await conn.channel();
    const producer = new Producer(channel, { routingKey: queue });
    await new Queue(queue, { durable: false }).bind(channel).declare();
    const start = performance.now();
    for (let i = 0; i < N; i += WINDOW) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(N, i + WINDOW); j++) batch.push(producer.publish(body(j)));
      await Promise.all(batch);
    }
    const elapsed = performance.now() - start;
    await conn.close();
    return (N / elapsed) * 1000;
  },
  async consume(queue) {
    const conn = new Connection(URL);
    const channel = await conn.channel();
    let seen = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const consumer = new Consumer(channel, [new Queue(queue, { durable: false })], {
      prefetchCount: WINDOW,
      callbacks: [
        (_body, message) => {
          message.ack();
          if (++seen === N) done();
        },
      ],
    });
    const start = performance.now();
    await consumer.consume();
    await finished;
    const elapsed = performance.now() - start;
    await conn.close();
    return (N / elapsed) * 1000;
  },
};

/** Runs `fn`, returning its result and the CPU time (user + system, µs) this process spent meanwhile. */
async function withCpu<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const before = process.cpuUsage();
  const result = await fn();
  const used = process.cpuUsage(before);
  return [result, used.user + used.system];
}

async function throughput(py: PythonKombu | undefined): Promise<string[]> {
  const clients: Client[] = [amqplibClient, acmClient, kombuClient, ...(py ? [py] : [])];
  const publish = new Map<string, number[]>();
  const consume = new Map<string, number[]>();
  const cpu = new Map<string, { publish: number[]; consume: number[] }>();
  const add = (m: Map<string, number[]>, name: string, value: number) => (m.get(name) ?? m.set(name, []).get(name)!).push(value);
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts with the next client: the broker's state (queues just deleted, its
    // garbage collector) then weighs on every client alike instead of on a fixed one.
    const order = clients.map((_, i) => clients[(i + round) % clients.length]!);
    for (const client of order) {
      const q = queueName(`${client.name.replace(/\W/g, '')}-${round}`);
      const [published, publishCpu] = await withCpu(() => client.publish(q));
      add(publish, client.name, published);
      await dropQueue(q);
      await fill(q);
      const [consumed, consumeCpu] = await withCpu(() => client.consume(q));
      add(consume, client.name, consumed);
      await dropQueue(q);
      // Python kombu runs in its own process: this process's CPU says nothing about it.
      if (client !== py) {
        const entry = cpu.get(client.name) ?? cpu.set(client.name, { publish: [], consume: [] }).get(client.name)!;
        entry.publish.push(publishCpu / N);
        entry.consume.push(consumeCpu / N);
      }
    }
  }
  const rows = (m: Map<string, number[]>): Row[] => [...m].map(([name, v]) => ({ name, value: median(v) }));
  const publishTable = table(`Confirmed publish, ${N.toLocaleString('en-US')} x 256 B JSON, window ${WINDOW} (median of ${ROUNDS})`, 'msg/s', rows(publish), 'amqplib', true);
  const consumeTable = table(`Consume, prefetch ${WINDOW}, ack each (median of ${ROUNDS})`, 'msg/s', rows(consume), 'amqplib', true);
  const cpuTable = [
    `### Client CPU per message, µs (user + system of this process, median of ${ROUNDS}; lower is better)`,
    '',
    '| client | publish | consume |',
    '|---|---:|---:|',
    ...[...cpu].map(([name, v]) => `| ${name} | ${median(v.publish).toFixed(1)} | ${median(v.consume).toFixed(1)} |`),
  ].join('\n');
  console.log(`\n${cpuTable}\n`);
  return [publishTable, consumeTable, cpuTable];
}

/** Cuts every connection from the broker side; resolves when rabbitmqctl returns. */
const forceClose = () => run('rabbitmqctl', ['close_all_connections', 'benchmark: forced close']);

interface Recovery {
  publish: number;
  deliver: number;
}

/** Publishes and consumes continuously; measures from the client seeing the close. */
async function recoverKombu(queue: string): Promise<Recovery> {
  const conn = new Connection(URL);
  const channel = await conn.channel();
  await new Queue(queue, { durable: false }).bind(channel).declare();
  const producer = new Producer(channel, { routingKey: queue });
  let closedAt = 0;
  let published = 0;
  let delivered = 0;
  conn.on('disconnected', () => (closedAt ||= performance.now()));
  const consumer = new Consumer(channel, [new Queue(queue, { durable: false })], {
    callbacks: [(_b, m) => {
      m.ack();
      if (closedAt && !delivered) delivered = performance.now();
    }],
  });
  await consumer.consume();
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      // Only a publish started after the close counts: it can only be confirmed by the new connection.
      const startedAfterClose = closedAt !== 0;
      await producer.publish(body(i)).catch(() => sleep(1));
      if (startedAfterClose && !published) published = performance.now();
    }
  })();
  await sleep(200);
  await forceClose();
  for (let i = 0; i < 600 && !(published && delivered); i++) await sleep(10);
  stop = true;
  await loop;
  await channel.deleteQueue(queue).catch(() => undefined);
  await conn.close();
  return { publish: published - closedAt, deliver: delivered - closedAt };
}

async function recoverAcm(queue: string, reconnectTimeInSeconds: number | undefined): Promise<Recovery> {
  const manager = acm.connect([RAW_URL], reconnectTimeInSeconds === undefined ? {} : { reconnectTimeInSeconds });
  let closedAt = 0;
  let published = 0;
  let delivered = 0;
  manager.on('disconnect', () => (closedAt ||= performance.now()));
  const wrapper = manager.createChannel({
    json: true,
    setup: async (ch: amqplib.ConfirmChannel) => {
      await ch.assertQueue(queue, { durable: false });
      await ch.consume(queue, (msg) => {
        if (!msg) return;
        ch.ack(msg);
        if (closedAt && !delivered) delivered = performance.now();
      });
    },
  });
  await wrapper.waitForConnect();
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const startedAfterClose = closedAt !== 0;
      await wrapper.publish('', queue, body(i)).catch(() => sleep(1));
      if (startedAfterClose && !published) published = performance.now();
    }
  })();
  await sleep(200);
  await forceClose();
  for (let i = 0; i < 1500 && !(published && delivered); i++) await sleep(10);
  stop = true;
  await loop;
  await wrapper.close();
  await manager.close();
  await dropQueue(queue).catch(() => undefined);
  return { publish: published - closedAt, deliver: delivered - closedAt };
}

async function recovery(py: PythonKombu | undefined): Promise<string[]> {
  const results = new Map<string, Recovery[]>();
  const add = (name: string, r: Recovery) => (results.get(name) ?? results.set(name, []).get(name)!).push(r);
  const rounds = Math.max(3, RECOVERY_ROUNDS);
  for (let round = 0; round < rounds; round++) {
    add('kombu-ts (defaults)', await recoverKombu(queueName(`rk${round}`)));
    add('amqp-connection-manager (0.1 s)', await recoverAcm(queueName(`ra${round}`), 0.1));
    if (py) add('kombu (Python, defaults)', await py.recover(queueName(`rp${round}`), forceClose));
  }
  add('amqp-connection-manager (default)', await recoverAcm(queueName('rad'), undefined));
  const rows = (key: keyof Recovery): Row[] => [...results].map(([name, v]) => ({ name, value: median(v.map((r) => r[key])) }));
  const spread = [...results].filter(([, v]) => v.length > 1).map(([name, v]) => {
    const of = (key: keyof Recovery): string => {
      const values = v.map((r) => r[key]);
      return `p90 ${quantile(values, 0.9).toFixed(1)} ms, ${values.filter((x) => x <= 10).length}/${values.length} rounds within 10 ms`;
    };
    return `- ${name}: publish ${of('publish')}; delivery ${of('deliver')}`;
  });
  console.log(`\nSpread of the recovery rounds:\n${spread.join('\n')}\n`);
  return [
    table(`Recovery: forced close -> first confirmed publish (median of ${rounds}; acm default: 1 round)`, 'ms', rows('publish'), 'kombu-ts (defaults)', false),
    table('Recovery: forced close -> first delivery', 'ms', rows('deliver'), 'kombu-ts (defaults)', false),
    `Spread of the recovery rounds:\n${spread.join('\n')}`,
  ];
}

/**
 * Heap per idle connection + channel: exact heap snapshots (heap-breakdown.ts), which repeat to
 * the byte between runs where `heapUsed` moved by a third; then Python kombu's memory.
 */
async function heap(py: PythonKombu | undefined): Promise<string[]> {
  return [await heapBreakdown(), ...(py ? [await pythonMemoryTable(py, 50)] : [])];
}

/** `--only throughput,recovery,topology,heap`: the parts to run (default all). */
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? new Set((process.argv[i + 1] ?? '').split(',')) : undefined;
})();
const part = (name: string): boolean => !ONLY || ONLY.has(name);

export async function amqpBench(): Promise<string[]> {
  console.log(`AMQP benchmark against ${URL.replace(/:[^:@/]*@/, ':**@')}: ${N} messages, ${ROUNDS} rounds; kombu-ts: ${measured}`);
  const py = await pythonKombu(N);
  return [
    ...(part('throughput') ? await throughput(py) : []),
    ...(part('recovery') ? await recovery(py) : []),
    ...(part('topology') ? [await topologyBench(py)] : []),
    ...(part('heap') ? await heap(py) : []),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await amqpBench();
}
