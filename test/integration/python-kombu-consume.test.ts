/**
 * Consuming what Python kombu 5.2 (py-amqp) published, through the real RabbitMQ: the headers,
 * properties and body a kombu user sends arrive as sent, and nothing in them costs the
 * connection.
 */
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/connection.js';
import type { Message } from '../../src/message.js';
import { Queue } from '../../src/queue.js';
import { interopRequired, PYTHON, pythonKombuStatus } from '../fixtures/kombu/python-kombu.js';
import { RABBITMQ_HOST, RABBITMQ_PORT, requireRabbitmq, unique } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('python-kombu-consume.test');
const python = pythonKombuStatus();
if (!python.available && interopRequired) throw new Error(`[python-kombu-consume.test] ${python.reason}`);
if (!python.available) console.warn(`[python-kombu-consume.test] skipping: ${python.reason}`);

/** Publishes one message with Python kombu to `queue` (default exchange); `publish` is the keyword arguments, Python source. */
function kombuPublish(queue: string, publish: string): void {
  const script = `
import sys
from kombu import Connection, Producer
with Connection('pyamqp://guest:guest@${RABBITMQ_HOST}:${RABBITMQ_PORT}//') as conn:
    Producer(conn.channel()).publish(routing_key=sys.argv[1], ${publish})
`;
  const run = spawnSync(PYTHON, ['-c', script, queue], { encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) throw new Error(`Python kombu failed: ${run.stderr || run.error?.message}`);
}

describe.skipIf(!reachable || !python.available)('consuming messages published by Python kombu 5.2', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('an integer header beyond 32 bits (py-amqp\'s `L` tag) arrives as its number, and the connection stays up', async () => {
    const conn = new Connection(`amqp://guest:guest@${RABBITMQ_HOST}:${RABBITMQ_PORT}//`);
    cleanups.push(() => conn.close());
    await conn.connect();
    const queue = new Queue(unique('python-long-header'), { durable: false });
    const bound = queue.bind(conn.defaultChannel);
    await bound.declare();
    cleanups.push(() => bound.delete());

    kombuPublish(bound.name, `body={'n': 1}, serializer='json', priority=3, correlation_id='cid-1', reply_to='replies',
        headers={'ts_ms': 1700000000000, 'neg': -2**40, 'small': 7, 'nested': {'size': 2**33, 'list': [2**35, 'x']}}`);

    const received = new Promise<{ body: unknown; message: Message }>((resolve, reject) => {
      // amqplib 2.x refused the `L` tag: the connection died on the delivery, again at each reconnect.
      conn.on('disconnected', (event) => reject(new Error(`connection lost on the delivery: ${JSON.stringify(event)}`)));
      const consumer = conn.Consumer([bound], { callbacks: [(body, message) => { message.ack(); resolve({ body, message }); }] });
      cleanups.push(() => consumer.cancel());
      void consumer.consume();
    });
    const { body, message } = await received;
    expect(body).toEqual({ n: 1 });
    expect(message.headers).toEqual({ ts_ms: 1700000000000, neg: -(2 ** 40), small: 7, nested: { size: 2 ** 33, list: [2 ** 35, 'x'] } });
    expect(message.properties).toMatchObject({ priority: 3, correlationId: 'cid-1', replyTo: 'replies', contentType: 'application/json' });
    expect(conn.state).toBe('connected');
  });
});
