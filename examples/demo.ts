/**
 * kombu-ts demo: a connection that heals itself, watched live.
 *
 *   npm run demo                         # embedded memory:// brokers, no server needed
 *   BROKER_URL=amqp://guest:guest@127.0.0.1:5672// npm run demo
 *
 * On memory:// the demo stages what production brings: the first broker refuses connections
 * (failover to the second), then the live connection is cut (reconnect), while messages keep
 * flowing. On a real broker it runs the same traffic; cut the connection yourself
 * (`rabbitmqctl close_all_connections demo`) while it waits, to watch it heal.
 */
import { Connection, Queue, type StateChange } from '../src/index.js';
import { getMemoryBroker } from '../src/transports/memory.js';

const url = process.env.BROKER_URL ?? 'memory://primary;memory://standby';
const onMemory = url.startsWith('memory://');
const started = Date.now();
const log = (line: string): void => console.log(`${String(Date.now() - started).padStart(5)} ms  ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const conn = new Connection(url, {
  retryPolicy: { intervalStart: 0.2, intervalStep: 0.2, intervalMax: 1 },
  connectionName: 'kombu-ts demo',
});
conn.on('state', ({ from, to, host, error }: StateChange) => log(`state ${from} -> ${to}  ${host}${error ? `  (${error.name}: ${error.message})` : ''}`));
conn.on('failover', ({ from, to }) => log(`failover ${from} -> ${to}`));
conn.on('backoff', ({ delay }) => log(`backoff: next round in ${delay} s`));

if (onMemory) getMemoryBroker('primary').refuseConnections = true;

await conn.ensureConnection({ maxRetries: 5 });
const channel = await conn.channel();
channel.on('recovered', ({ epoch }) => log(`channel recovered (epoch ${epoch}): queue re-declared, consumer resumed`));
const queue = new Queue(`demo-${process.pid}`, { durable: false, autoDelete: true });

let received = 0;
const consumer = conn.Consumer([queue], {
  channel,
  callbacks: [
    (body, message) => {
      received += 1;
      log(`consumed ${JSON.stringify(body)}${message.redelivered ? ' (redelivered)' : ''}`);
      message.ack();
    },
  ],
});
consumer.on('error', (error) => log(`consumer error: ${error.message}`));
await consumer.consume();

const producer = conn.Producer({ channel, routingKey: queue.name, compression: 'zlib' });
// While the channel is down, a publish waits (bounded) and goes out after the reconnect.
const publish = (n: number): Promise<void> => producer.publish({ message: n });

await publish(1);
await publish(2);
await sleep(100);

if (onMemory) {
  log('--- cutting the live connection ---');
  getMemoryBroker('standby').dropConnections();
} else {
  log('--- cut the connection now to watch it heal (waiting 3 s) ---');
  await sleep(3000);
}
await publish(3); // waits for the channel to be back, then goes out
await publish(4);

for (let i = 0; i < 50 && received < 4; i++) await sleep(20);
log(`received ${received} of 4 messages; connection ${conn.state} to ${conn.asUri()}`);
await consumer.cancel();
await channel.deleteQueue(queue.name).catch(() => undefined);
await conn.close();
log(`closed: ${conn.state}`);
process.exitCode = received === 4 ? 0 : 1;
