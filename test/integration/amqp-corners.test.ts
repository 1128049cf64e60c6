/**
 * Corners of the AMQP path (concurrent publishes, deletes and cancels around failures), against the real RabbitMQ (127.0.0.1:5672).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, Connection, Consumer, Queue } from '../../src/index.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { requireRabbitmq, sleep, unique, RABBITMQ_PORT } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-corners.test');
const URL = `amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`;
const opened: Connection[] = [];
function connection(url = URL, options: ConstructorParameters<typeof Connection>[1] = {}): Connection {
  const conn = new Connection(url, { retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 }, ...options });
  opened.push(conn);
  return conn;
}
const queueDecl = (name: string) => ({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

describe.skipIf(!reachable)('AMQP review (RabbitMQ)', () => {
  it("a publish to a missing exchange fails alone: the other publishes whose confirms its channel error lost are sent again", async () => {
    const conn = connection();
    const channel = await conn.channel();
    const queue = unique('bystanders');
    await channel.declareQueue(queueDecl(queue));
    const good: Promise<unknown>[] = [];
    let bad: Promise<unknown> | undefined;
    for (let i = 0; i < 200; i++) {
      good.push(channel.publish(Buffer.from(String(i)), {}, '', queue, { confirm: true }));
      if (i === 100) bad = channel.publish(Buffer.from('bad'), {}, unique('no-such-exchange'), 'rk', { confirm: true });
    }
    const refused = await bad?.catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ChannelError);
    expect((refused as ChannelError).code).toBe(404);
    const outcomes = await Promise.allSettled(good);
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason))).toEqual([]);
    const { messageCount } = await channel.declareQueue({ ...queueDecl(queue), passive: true });
    expect(messageCount).toBeGreaterThanOrEqual(200); // at least once
    await channel.deleteQueue(queue);
  });

  it('deleteQueue() of a queue the channel consumes deletes it: the broker-cancel resume does not declare it again', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const queue = unique('deleted-while-consumed');
    await channel.declareQueue(queueDecl(queue));
    await channel.consume(queue, { consumerTag: '', noAck: false }, () => undefined);
    const cancelled: string[] = [];
    channel.on('consumerCancelled', (event) => cancelled.push(event.queue));
    await channel.deleteQueue(queue);
    // A round trip on the same channel: anything the cancel started has been sent before it.
    await channel.qos(0);
    const other = await conn.channel();
    const lookup = await other.declareQueue({ ...queueDecl(queue), passive: true }).catch((e: unknown) => e);
    if (!(lookup instanceof ChannelError)) await (await conn.channel()).deleteQueue(queue);
    expect(lookup).toBeInstanceOf(ChannelError);
    expect((lookup as ChannelError).code).toBe(404);
    expect(cancelled).toEqual([]);
  });

  it('deleteQueue() through another channel of the same connection: its consumers are not resumed, nor the queue declared again', async () => {
    const conn = connection();
    const consuming = await conn.channel();
    const queue = unique('deleted-by-sibling');
    await consuming.declareQueue(queueDecl(queue));
    await consuming.consume(queue, { consumerTag: '', noAck: false }, () => undefined);
    const deleting = await conn.channel();
    await deleting.deleteQueue(queue);
    // The broker's cancel reaches the consuming channel in its own time (no event tells: it
    // is not resumed); then a round trip on that channel flushes anything its handling started.
    await sleep(200);
    await consuming.qos(0);
    const lookup = await (await conn.channel()).declareQueue({ ...queueDecl(queue), passive: true }).catch((e: unknown) => e);
    if (!(lookup instanceof ChannelError)) await (await conn.channel()).deleteQueue(queue);
    expect(lookup).toBeInstanceOf(ChannelError);
    expect((lookup as ChannelError).code).toBe(404);
  });

  it('Consumer.cancel() as the connection drops resolves, and none of its consumers comes back with the recovery', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    try {
      const conn = connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, { retryPolicy: { intervalStart: 0, intervalStep: 0, intervalMax: 0 } });
      const channel = await conn.channel();
      const queues = [1, 2, 3].map(() => new Queue(unique('cancel-vs-drop'), { autoDelete: true }));
      const consumer = new Consumer(channel, queues, { callbacks: [() => undefined] });
      await consumer.consume();
      const reopened = new Promise<void>((resolve) => channel.on('state', ({ to }) => to === 'open' && resolve()));
      proxy.cut(); // the cancels are written to a dead socket: they fail with the connection
      await consumer.cancel();
      await reopened;
      const other = await conn.channel();
      const consumers: number[] = [];
      for (const queue of queues) consumers.push((await other.declareQueue({ ...queueDecl(queue.name), autoDelete: true, passive: true })).consumerCount);
      expect(consumers).toEqual([0, 0, 0]);
      // Re-declared by the recovery and never consumed since: auto-delete will not remove them.
      for (const queue of queues) await other.deleteQueue(queue.name);
    } finally {
      await proxy.close();
    }
  });
});

