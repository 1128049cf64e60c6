/**
 * Recovery of a consuming topology over a link with latency: what a worker that consumes
 * several queues (kombu's and Celery's usual shape) waits for after its connection breaks,
 * once the broker is not on the same host.
 *
 * Each client consumes QUEUES queues, each bound to one direct exchange under its own name,
 * with prefetch 100, through a proxy that delays every chunk by DELAY ms each way (a 2 ms
 * round trip by default: another host in the same data centre). The proxy cuts the link; a
 * publisher on its own connection, straight to the broker, then puts one message in each
 * queue. Measured: from the cut to the moment every queue has delivered its message to the
 * client (median of several rounds), on the bench process's clock for every client (Python
 * kombu reports each delivery on its stdout as it happens).
 *
 * The clients, each as its users write it: kombu-ts (a Consumer, defaults); Python kombu
 * (a Consumer draining through `conn.ensure()`, which revives it); amqp-connection-manager
 * (a setup function that awaits each declaration, reconnect 0.1 s, its default being 5 s;
 * noDelay on, as the other two have it).
 *
 *   node --import tsx bench/topology-bench.ts [--rounds 7] [--queues 10] [--delay 1]
 */
import net from 'node:net';
import amqplib from 'amqplib';
import acm from 'amqp-connection-manager';
import { Connection, Consumer, Exchange, Queue } from './library.js';
import { pythonKombu, type PythonKombu } from './kombu-peer.js';
import { median, numberArg, quantile, sleep, table } from './lib.js';

const BROKER_PORT = 5672;
const RAW_URL = `amqp://guest:guest@127.0.0.1:${BROKER_PORT}/%2F`;
const ROUNDS = numberArg('rounds', 7);
const QUEUES = numberArg('queues', 10);
const DELAY = numberArg('delay', 1);

/** A TCP proxy to the broker that delays each chunk by `delay` ms each way, in order, and can cut every link. */
async function delayProxy(delay: number) {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(BROKER_PORT, '127.0.0.1');
    // Without noDelay, Nagle's algorithm meets the peer's delayed ack: 40 ms stalls that no real link has.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.on('data', (chunk) => setTimeout(() => upstream.write(chunk), delay));
    upstream.on('data', (chunk) => setTimeout(() => client.write(chunk), delay));
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of pair) {
      socket.on('error', end);
      socket.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `amqp://guest:guest@127.0.0.1:${(server.address() as net.AddressInfo).port}//`,
    cut: () => {
      for (const [client, upstream] of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
type Proxy = Awaited<ReturnType<typeof delayProxy>>;

/** One round's topology: an exchange and its queues, each bound under its own name. */
function names(client: string, round: number): { exchange: string; queues: string[] } {
  const base = `bench-topology-${process.pid}-${client}-${round}`;
  return { exchange: base, queues: Array.from({ length: QUEUES }, (_, i) => `${base}-${i}`) };
}

/** Cuts the link, then puts one message in each queue from a connection of its own; returns the cut's time. */
async function cutAndPublish(proxy: Proxy, publisher: amqplib.ConfirmChannel, exchange: string, queues: string[]): Promise<number> {
  const cutAt = performance.now();
  proxy.cut();
  for (const queue of queues) publisher.publish(exchange, queue, Buffer.from('{"after":"cut"}'), { contentType: 'application/json' });
  await publisher.waitForConfirms();
  return cutAt;
}

/** Resolves with the time every one of `queues` has delivered once `armed()`; `delivered` is called by the client. */
function allDelivered(queues: string[]) {
  const waiting = new Set(queues);
  let armed = false;
  let done: (at: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (done = resolve));
  return {
    arm: () => (armed = true),
    delivered: (queue: string) => {
      if (armed && waiting.delete(queue) && waiting.size === 0) done(performance.now());
    },
    finished: Promise.race([finished, sleep(30_000).then(() => NaN)]),
  };
}

async function dropTopology(channel: amqplib.Channel, exchange: string, queues: string[]): Promise<void> {
  for (const queue of queues) await channel.deleteQueue(queue);
  await channel.deleteExchange(exchange);
}

async function kombuTs(proxy: Proxy, publisher: amqplib.ConfirmChannel, round: number): Promise<number> {
  const { exchange, queues } = names('kombu-ts', round);
  const watch = allDelivered(queues);
  const conn = new Connection(proxy.url);
  const x = new Exchange(exchange, { type: 'direct', durable: false });
  const consumer = new Consumer(conn, queues.map((q) => new Queue(q, { exchange: x, routingKey: q, durable: false })), {
    prefetchCount: 100,
    callbacks: [(_body, message) => {
      message.ack();
      watch.delivered(message.deliveryInfo.routingKey);
    }],
  });
  await consumer.consume();
  watch.arm();
  const cutAt = await cutAndPublish(proxy, publisher, exchange, queues);
  const at = await watch.finished;
  await conn.close();
  return at - cutAt;
}

async function connectionManager(proxy: Proxy, publisher: amqplib.ConfirmChannel, round: number): Promise<number> {
  const { exchange, queues } = names('acm', round);
  const watch = allDelivered(queues);
  // noDelay, as kombu-ts and py-amqp set it: amqplib's default (Nagle on) stalls each queue's
  // setup by the peer's delayed ack, about 40 ms here, which would measure Nagle, not round trips.
  const manager = acm.connect([proxy.url.replace(/\/\/$/, '/%2F')], { reconnectTimeInSeconds: 0.1, connectionOptions: { noDelay: true } });
  const wrapper = manager.createChannel({
    setup: async (ch: amqplib.ConfirmChannel) => {
      await ch.prefetch(100);
      await ch.assertExchange(exchange, 'direct', { durable: false });
      for (const queue of queues) {
        await ch.assertQueue(queue, { durable: false });
        await ch.bindQueue(queue, exchange, queue);
        await ch.consume(queue, (message) => {
          if (!message) return;
          ch.ack(message);
          watch.delivered(message.fields.routingKey);
        });
      }
    },
  });
  await wrapper.waitForConnect();
  watch.arm();
  const cutAt = await cutAndPublish(proxy, publisher, exchange, queues);
  const at = await watch.finished;
  await wrapper.close();
  await manager.close();
  return at - cutAt;
}

async function python(py: PythonKombu, proxy: Proxy, publisher: amqplib.ConfirmChannel, round: number): Promise<number> {
  const { exchange, queues } = names('python', round);
  const watch = allDelivered(queues);
  let cutAt = NaN;
  await py.topology(proxy.url, exchange, queues, async () => {
    watch.arm();
    cutAt = await cutAndPublish(proxy, publisher, exchange, queues);
  }, watch.delivered);
  return (await watch.finished) - cutAt;
}

export async function topologyBench(py?: PythonKombu): Promise<string> {
  console.log(`\nTopology recovery: ${QUEUES} queues, prefetch 100, link delayed ${DELAY} ms each way (round trip ${2 * DELAY} ms), ${ROUNDS} rounds`);
  const proxy = await delayProxy(DELAY);
  const raw = await amqplib.connect(RAW_URL, { noDelay: true });
  const publisher = await raw.createConfirmChannel();
  const admin = await raw.createChannel();
  const results = new Map<string, number[]>();
  const add = (name: string, ms: number) => (results.get(name) ?? results.set(name, []).get(name)!).push(ms);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // The clients' order rotates each round, so none always runs first on a fresh broker.
      const clients: [string, () => Promise<number>][] = [
        ['kombu-ts (defaults)', () => kombuTs(proxy, publisher, round)],
        ['amqp-connection-manager (0.1 s)', () => connectionManager(proxy, publisher, round)],
        ...(py ? [['kombu (Python, defaults)', () => python(py, proxy, publisher, round)] as [string, () => Promise<number>]] : []),
      ];
      for (let i = 0; i < clients.length; i++) {
        const [name, measure] = clients[(i + round) % clients.length]!;
        add(name, await measure());
      }
      for (const client of ['kombu-ts', 'acm', 'python']) {
        const { exchange, queues } = names(client, round);
        await dropTopology(admin, exchange, queues).catch(() => undefined);
      }
    }
  } finally {
    await raw.close();
    await proxy.close();
  }
  const rows = [...results].map(([name, values]) => ({ name, value: median(values) }));
  const spread = [...results].map(([name, values]) => `- ${name}: p90 ${quantile(values, 0.9).toFixed(1)} ms`).join('\n');
  const shown = table(
    `Topology recovery: cut -> every one of ${QUEUES} queues delivered, link delayed ${DELAY} ms each way (median of ${ROUNDS})`,
    'ms', rows, 'kombu-ts (defaults)', false,
  );
  console.log(`Spread:\n${spread}\n`);
  return `${shown}\n\nSpread:\n${spread}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await topologyBench(await pythonKombu(0));
}
