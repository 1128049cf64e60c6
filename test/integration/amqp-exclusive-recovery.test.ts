/**
 * An exclusive consumer after a network partition, against the real RabbitMQ: the broker may
 * still hold the previous connection's consumer when the client is back, and refuses the
 * restored one with 403 "in exclusive use" until it drops the old connection. The channel
 * retries its recovery instead of closing for good, and consumes again once the queue is free.
 * (Here another connection holds the queue exclusively while the client is kept away by the
 * fault proxy, which is what the broker's view of a partition looks like.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/index.js';
import { amqpTransport } from '../../src/transports/amqp.js';
import type { TransportChannel, TransportConnection } from '../../src/transports/transport.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { never, params, RABBITMQ_PORT, requireRabbitmq, sleep, unique } from '../helpers/rabbitmq.js';
import { reaches } from '../helpers/channel-states.js';

const reachable = await requireRabbitmq('amqp-exclusive-recovery.test');
const closing: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const each of closing.splice(0).reverse()) await each.close().catch(() => undefined);
});


/** Takes `queue` with an exclusive consumer on `conn`, trying until the broker lets it (the previous holder gone). */
async function takeExclusively(conn: TransportConnection, queue: string): Promise<{ channel: TransportChannel; tag: string }> {
  for (let attempt = 0; attempt < 250; attempt++) {
    const channel = await conn.createChannel();
    try {
      const tag = await channel.consume(queue, { consumerTag: '', noAck: true, exclusive: true }, () => undefined);
      return { channel, tag };
    } catch {
      await sleep(20);
    }
  }
  throw new Error(`could not take ${queue} exclusively`);
}

describe.skipIf(!reachable)('An exclusive consumer refused by the consumer the broker still holds', () => {
  it('is retried, not given up, and consumes again once the queue is free', async () => {
    const proxy: FaultProxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    closing.push(proxy);
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, { retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 } });
    closing.push(conn);
    const channel = await conn.channel();
    const queue = unique('exclusive-restore');
    // Deleted from a connection of its own, whatever state the test leaves the channel in.
    closing.unshift({ close: async () => {
      const admin = await amqpTransport.connect(params(), never);
      await (await admin.createChannel()).deleteQueue(queue).catch(() => undefined);
      await admin.close();
    } });
    await channel.declareQueue({ name: queue, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    const got: string[] = [];
    await channel.consume(queue, { consumerTag: '', noAck: true, exclusive: true }, (message) => got.push(message.body.toString()));

    // The link breaks and the client cannot come back; meanwhile the queue is held exclusively.
    proxy.refuse(true);
    proxy.cut();
    const other = await amqpTransport.connect(params(), never);
    closing.push(other);
    const holder = await takeExclusively(other, queue);

    const outcome = Promise.race([reaches(channel, 'retrying').then(() => 'retrying'), reaches(channel, 'closed').then(() => 'closed')]);
    proxy.refuse(false);
    expect(await outcome).toBe('retrying');
    expect(channel.actor?.getSnapshot().context.lastError).toMatchObject({ code: 403 });

    const reopened = reaches(channel, 'open');
    await holder.channel.cancel(holder.tag);
    await reopened;
    await channel.publish(Buffer.from('back'), {}, '', queue, { confirm: true });
    for (let i = 0; i < 200 && got.length === 0; i++) await sleep(10);
    expect(got).toEqual(['back']);
  });
});
