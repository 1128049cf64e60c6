/**
 * AMQP recovery of a connection with several channels, each with its own qos and consumers:
 * after a broker-forced close and after a cut of the link, every consumer is back exactly
 * once on the broker (`rabbitmqctl list_consumers`), with its channel's prefetch, and
 * receives each new message once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type Channel } from '../../src/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { rabbitmqctl, requireRabbitmq, sleep, unique, RABBITMQ_PORT } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-multi-channel-recovery.test');
const opened: Connection[] = [];
const proxies: FaultProxy[] = [];
const fast = { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 };
const queueDecl = (name: string) => ({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !(await check()); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

interface Setup {
  conn: Connection;
  channels: Channel[];
  /** queue -> prefetch of its channel */
  prefetch: Map<string, number>;
  /** queue -> bodies received */
  got: Map<string, string[]>;
  recovered: number[];
}

async function setUp(url: string, name: string): Promise<Setup> {
  const conn = new Connection(url, { retryPolicy: fast, connectionName: name });
  opened.push(conn);
  const setup: Setup = { conn, channels: [], prefetch: new Map(), got: new Map(), recovered: [] };
  for (let c = 0; c < 3; c++) {
    const channel = await conn.channel();
    setup.channels.push(channel);
    setup.recovered.push(0);
    channel.on('recovered', () => (setup.recovered[c] = (setup.recovered[c] ?? 0) + 1));
    const prefetch = 3 + c * 2;
    await channel.qos(prefetch);
    for (let k = 0; k < 2; k++) {
      const queue = unique(`multi-${c}-${k}`);
      await channel.declareQueue(queueDecl(queue));
      setup.prefetch.set(queue, prefetch);
      setup.got.set(queue, []);
      await channel.consume(queue, { consumerTag: '', noAck: false }, (message, epoch) => {
        setup.got.get(queue)?.push(message.body.toString());
        channel.ack(message.deliveryInfo.deliveryTag, false, epoch);
      });
    }
  }
  return setup;
}

/** Our queues' consumers on the broker: queue -> [prefetch, ...] per consumer. */
async function brokerConsumers(queues: Iterable<string>): Promise<Map<string, number[]>> {
  const wanted = new Set(queues);
  const { stdout } = await rabbitmqctl('list_consumers', '-s', 'queue_name', 'prefetch_count');
  const found = new Map<string, number[]>();
  for (const line of stdout.split('\n')) {
    const [queue, prefetch] = line.trim().split(/\s+/);
    if (queue === undefined || !wanted.has(queue)) continue;
    found.set(queue, [...(found.get(queue) ?? []), Number(prefetch)]);
  }
  return found;
}

async function expectOneConsumerEach(setup: Setup): Promise<void> {
  const expected = new Map([...setup.prefetch].map(([queue, prefetch]) => [queue, [prefetch]]));
  let last = new Map<string, number[]>();
  // The broker's view settles shortly after the client's recovery: poll for it, then hold it.
  await until(async () => {
    last = await brokerConsumers(setup.prefetch.keys());
    return JSON.stringify([...last].sort()) === JSON.stringify([...expected].sort());
  }, `one consumer per queue with its prefetch (last seen ${JSON.stringify([...last])})`).catch((error: unknown) => {
    expect([...last].sort()).toEqual([...expected].sort());
    throw error;
  });
}

async function publishAndReceiveOnce(setup: Setup, tag: string): Promise<void> {
  const [publisher] = setup.channels as [Channel];
  for (const queue of setup.prefetch.keys()) await publisher.publish(Buffer.from(tag), {}, '', queue, { confirm: true });
  await until(() => [...setup.got.values()].every((bodies) => bodies.includes(tag)), `every consumer to receive ${tag}`);
  await sleep(200); // a duplicate consumer or redelivery would show up by now
  for (const [queue, bodies] of setup.got) expect(bodies.filter((b) => b === tag), queue).toEqual([tag]);
}

async function cleanUp(setup: Setup): Promise<void> {
  // Through one channel: those of the same connection consuming them do not resume.
  const [channel] = setup.channels as [Channel];
  for (const queue of setup.prefetch.keys()) await channel.deleteQueue(queue);
}

describe.skipIf(!reachable)('recovery of 3 channels with qos and 2 consumers each (RabbitMQ)', () => {
  it('after rabbitmqctl close_all_connections, twice', async () => {
    const setup = await setUp(`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`, `multi-recovery-${process.pid}`);
    await expectOneConsumerEach(setup);
    await publishAndReceiveOnce(setup, 'before');
    for (const round of [1, 2]) {
      const disconnected = new Promise((resolve) => setup.conn.once('disconnected', resolve));
      await rabbitmqctl('close_all_connections', 'kombu-ts test: forced close');
      await disconnected;
      await until(() => setup.recovered.every((n) => n >= round), `round ${round}: every channel recovered`);
      expect(setup.recovered).toEqual([round, round, round]);
      await expectOneConsumerEach(setup);
      await publishAndReceiveOnce(setup, `after-${round}`);
    }
    await cleanUp(setup);
  });

  it('after fault-proxy cuts, twice', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    proxies.push(proxy);
    const setup = await setUp(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, `multi-recovery-proxy-${process.pid}`);
    await expectOneConsumerEach(setup);
    await publishAndReceiveOnce(setup, 'before');
    for (const round of [1, 2]) {
      proxy.cut();
      await until(() => setup.recovered.every((n) => n >= round), `round ${round}: every channel recovered`);
      expect(setup.recovered).toEqual([round, round, round]);
      await expectOneConsumerEach(setup);
      await publishAndReceiveOnce(setup, `after-${round}`);
    }
    await cleanUp(setup);
  });
});
