/**
 * Pools under load and faults, on memory:// and on the real RabbitMQ: 50 concurrent users
 * share a pool of 5 connections, each publishing (with confirms) and consuming; every
 * connection is cut mid-way. Every user must finish (each acquire eventually gets a live
 * member), every confirmed message must be consumed (at least once), the broker must never
 * see more than 5 pool connections, and none may be left after `close()`.
 *
 * RabbitMQ: the cut is `rabbitmqctl close_all_connections`, the count `rabbitmqctl
 * list_connections client_properties` filtered by this run's connection name. With `CI` set
 * an unreachable broker fails the file (see test/helpers/rabbitmq.ts).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Connection, type ConnectionPool } from '../../src/index.js';
import { isRecoverable } from '../../src/errors.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { RABBITMQ_PORT, rabbitmqctl, requireRabbitmq, sleep } from '../helpers/rabbitmq.js';

const USERS = 50;
const PER_USER = 4;
const LIMIT = 5;
const fast = { intervalStart: 0.05, intervalStep: 0.1, intervalMax: 0.5 };
const ALIVE = new Set(['connected', 'connecting', 'failover', 'backoff']);

interface Broker {
  url: string;
  connectionName: string;
  /** Cuts every connection of the broker. */
  cut(): Promise<void>;
  /** Users wait for a slow cut (rabbitmqctl takes a second) so that it lands mid-way. */
  gate?: boolean;
  /** Connections of this run the broker sees right now. */
  live(): Promise<number>;
}

/** Runs `work` until it succeeds, retrying recoverable failures (a cut connection or channel). */
async function retrying<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!isRecoverable(error) || attempt >= 40) throw error;
      await sleep(50);
    }
  }
}

async function scenario(broker: Broker): Promise<void> {
  const queue = `kombu-ts-test.pools.${randomUUID()}`;
  const declaration = { name: queue, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false };
  const options = { retryPolicy: fast, connectionName: broker.connectionName };
  const admin = new Connection(broker.url, options);
  const setup = await admin.channel();
  await setup.declareQueue(declaration);
  await admin.close();

  const pool: ConnectionPool = new Connection(broker.url, options).Pool({ limit: LIMIT });
  const published = new Set<string>();
  const consumed = new Set<string>();
  const dead: string[] = [];
  let maxLive = 0;
  let cut: Promise<void> | undefined;

  const unitOfWork = (id: string) => pool.use(async (conn) => {
    if (!ALIVE.has(conn.state)) dead.push(conn.state);
    const channel = await conn.channel();
    try {
      await channel.declareQueue(declaration);
      await channel.publish(Buffer.from(id), { contentType: 'text/plain', deliveryMode: 2 }, '', queue, { confirm: true });
      published.add(id);
      const got = await channel.get(queue, { noAck: false });
      if (got) {
        consumed.add(got.message.body.toString());
        channel.ack(got.message.deliveryInfo.deliveryTag, false, got.epoch);
      }
    } finally {
      await channel.close().catch(() => undefined);
    }
  }, { block: true, timeout: 60 });

  const users = Array.from({ length: USERS }, async (_, user) => {
    for (let n = 0; n < PER_USER; n++) {
      await retrying(() => unitOfWork(`${user}.${n}`));
      // Mid-way (half of the messages confirmed) every connection is cut, once.
      if (!cut && published.size >= (USERS * PER_USER) / 2) cut = broker.cut();
      if (broker.gate && cut) await cut;
    }
  });
  // Members seen not connected after being connected: the cut hit the pool's connections.
  const wasConnected = new Set<string>();
  let disrupted = 0;
  let publishedAtCut: number | undefined;
  const unsubscribe = pool.subscribe((status) => {
    maxLive = Math.max(maxLive, status.size);
    for (const member of status.members) {
      if (member.resource === 'connected') wasConnected.add(member.id);
      else if (wasConnected.delete(member.id)) {
        disrupted += 1;
        publishedAtCut ??= published.size;
      }
    }
  });
  try {
    await Promise.all(users);
    await cut;
  } finally {
    unsubscribe();
  }
  expect(cut).toBeDefined();
  console.log(`[pools.test] ${broker.url.split(':')[0]}: ${published.size} published, cut at ${publishedAtCut ?? '-'} disrupted ${disrupted} member connection(s), at most ${maxLive} members`);
  expect(disrupted).toBeGreaterThan(0);
  expect(publishedAtCut).toBeLessThan(USERS * PER_USER); // the cut landed while users were at work
  expect(dead).toEqual([]);
  expect(maxLive).toBeLessThanOrEqual(LIMIT);
  expect(await broker.live()).toBeLessThanOrEqual(LIMIT);

  // What is left in the queue (messages gotten but not acked before the cut are back).
  const drain = new Connection(broker.url, options);
  const channel = await drain.channel();
  for (let got = await channel.get(queue, { noAck: true }); got; got = await channel.get(queue, { noAck: true })) consumed.add(got.message.body.toString());
  await channel.deleteQueue(queue);
  await drain.close();

  expect(published.size).toBe(USERS * PER_USER);
  expect([...published].filter((id) => !consumed.has(id))).toEqual([]);

  await pool.close();
  for (let i = 0; i < 100 && (await broker.live()) > 0; i++) await sleep(100);
  expect(await broker.live()).toBe(0);
}

describe('pools under load and a cut (memory://)', () => {
  it(`${USERS} users share ${LIMIT} connections through a cut of every connection`, async () => {
    const name = `pools-integration-${randomUUID()}`;
    const memory = getMemoryBroker(name);
    await scenario({
      url: `memory://${name}`,
      connectionName: 'pools-integration',
      cut: async () => memory.dropConnections(),
      live: async () => memory.liveConnections,
    });
    resetMemoryBrokers();
  }, 60_000);
});

const reachable = await requireRabbitmq('pools.test');

describe.skipIf(!reachable)('pools under load and a cut (RabbitMQ)', () => {
  const live = (connectionName: string) => async (): Promise<number> => {
    const { stdout } = await rabbitmqctl('list_connections', '-q', 'client_properties');
    return stdout.split('\n').filter((line) => line.includes(connectionName)).length;
  };

  it(`${USERS} users share ${LIMIT} connections through a fault-proxy cut while at work`, async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    const connectionName = `kombu-ts-test-pools-${randomUUID()}`;
    try {
      await scenario({
        url: `amqp://guest:guest@127.0.0.1:${proxy.port}//`,
        connectionName,
        cut: async () => proxy.cut(),
        live: live(connectionName),
      });
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it(`${USERS} users share ${LIMIT} connections through rabbitmqctl close_all_connections`, async () => {
    const connectionName = `kombu-ts-test-pools-${randomUUID()}`;
    await scenario({
      url: `amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`,
      connectionName,
      cut: async () => {
        await rabbitmqctl('close_all_connections', 'test');
      },
      gate: true,
      live: live(connectionName),
    });
  }, 120_000);
});
