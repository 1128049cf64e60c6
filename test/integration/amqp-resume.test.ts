/**
 * A consumer the broker cancels (its queue deleted by another connection) is resumed: the
 * queue declared again, bound, consumed (Channel #onBrokerCancel -> ChannelRegistry.resume).
 * What the application sees when that resume meets a fault the channel's recovery heals.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type KombuError } from '../../src/index.js';
import { amqpTransport } from '../../src/transports/amqp.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { never, params, RABBITMQ_PORT, requireRabbitmq, sleep, unique } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-resume.test');
const opened: { close(): Promise<void> }[] = [];
const proxies: FaultProxy[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

describe.skipIf(!reachable)('resuming a consumer the broker cancelled', () => {
  it('a resume cut short by a lost connection is no error of the channel: the recovery brings the consumer back', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    proxies.push(proxy);
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, { retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 } });
    opened.push(conn);
    const channel = await conn.channel();
    const errors: KombuError[] = [];
    channel.on('error', (error) => errors.push(error));
    const queue = unique('resume-cut');
    await channel.declareQueue({ name: queue, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    const got: string[] = [];
    await channel.consume(queue, { consumerTag: '', noAck: false }, (message, epoch) => {
      got.push(message.body.toString());
      channel.ack(message.deliveryInfo.deliveryTag, false, epoch);
    });
    const recovered = new Promise((resolve) => channel.once('recovered', resolve));
    // The link drops as the resume starts: its calls fail with the connection.
    channel.once('consumerCancelled', () => proxy.cut());
    const other = await amqpTransport.connect(params(), never);
    opened.push(other);
    await (await other.createChannel()).deleteQueue(queue);
    await recovered;
    try {
      await channel.publish(Buffer.from('after'), {}, '', queue, { confirm: true });
      for (let i = 0; i < 500 && !got.includes('after'); i++) await sleep(10);
      expect(got).toEqual(['after']);
      expect(errors).toEqual([]);
    } finally {
      await channel.deleteQueue(queue).catch(() => undefined);
    }
  });
});
