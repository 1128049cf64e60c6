/**
 * Chaos on RabbitMQ: confirmed publishes and a consumer, while the fault proxy cuts every
 * connection and the broker force-closes them (`rabbitmqctl close_all_connections`).
 * Kept short for CI (10k messages, 5 cuts). The promise under test: every publish that was
 * confirmed is received (at least once; duplicates are counted, never lost), the consumer
 * recovers after every cut, and nothing of ours is left alive after close().
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Connection, Consumer, Producer, Queue } from '../../src/index.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { rabbitmqctl, requireRabbitmq, sleep, unique, RABBITMQ_PORT } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-chaos.test');
const MESSAGES = 10_000;
const CUTS = 5;
const WINDOW = 200;

describe.skipIf(!reachable)('chaos: confirmed publishing through cuts and forced closes', () => {
  const queueName = unique('chaos');
  afterAll(async () => {
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`);
    await (await conn.channel()).deleteQueue(queueName).catch(() => undefined);
    await conn.close();
  });

  it(`every confirmed message of ${MESSAGES} arrives through ${CUTS} cuts`, async () => {
    const resources = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout').length;
    const baseline = resources();
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    const url = `amqp://guest:guest@127.0.0.1:${proxy.port}//`;
    const retryPolicy = { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 };
    const publisher = new Connection(url, { retryPolicy, connectionName: 'chaos publisher' });
    const subscriber = new Connection(url, { retryPolicy, connectionName: 'chaos consumer' });
    const queue = new Queue(queueName, { durable: true });

    const received = new Map<number, number>();
    let consumerReconnects = 0;
    subscriber.on('disconnected', () => (consumerReconnects += 1));
    const consumer = new Consumer(subscriber, [queue], {
      prefetchCount: 500,
      callbacks: [
        (body, message) => {
          const seq = (body as { seq: number }).seq;
          received.set(seq, (received.get(seq) ?? 0) + 1);
          message.ack();
        },
      ],
    });
    await consumer.consume();
    const producer = new Producer(publisher, { routingKey: queueName });
    await producer.maybeDeclare(queue);

    const confirmed = new Set<number>();
    const failed: unknown[] = [];
    const cutEvery = Math.floor(MESSAGES / (CUTS + 1));
    let cuts = 0;
    for (let start = 0; start < MESSAGES; start += WINDOW) {
      const batch: Promise<void>[] = [];
      for (let seq = start; seq < Math.min(MESSAGES, start + WINDOW); seq++) {
        batch.push(producer.publish({ seq }).then(() => void confirmed.add(seq), (e: unknown) => void failed.push(e)));
      }
      if (cuts < CUTS && start >= cutEvery * (cuts + 1)) {
        cuts += 1;
        // Alternate: the network drops every connection, or the broker closes them.
        if (cuts % 2) proxy.cut();
        else await rabbitmqctl('close_all_connections', 'kombu-ts chaos: forced close');
      }
      await Promise.all(batch);
    }

    for (let i = 0; i < 600 && [...confirmed].some((seq) => !received.has(seq)); i++) await sleep(50);
    const missing = [...confirmed].filter((seq) => !received.has(seq));
    const duplicates = [...received.values()].reduce((n, count) => n + count - 1, 0);
    console.log(`chaos: ${confirmed.size} confirmed, ${failed.length} rejected, ${received.size} received, ${duplicates} duplicates, ${cuts} cuts, consumer reconnected ${consumerReconnects} times`);

    expect(cuts).toBe(CUTS);
    expect(missing).toEqual([]);
    expect(failed).toEqual([]);
    expect(confirmed.size).toBe(MESSAGES);
    expect(consumerReconnects).toBeGreaterThanOrEqual(CUTS);
    expect(subscriber.state).toBe('connected');

    await publisher.close();
    await subscriber.close();
    await proxy.close();
    await sleep(50);
    expect(resources()).toBeLessThanOrEqual(baseline);
  }, 120_000);
});
