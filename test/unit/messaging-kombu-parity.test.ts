/**
 * Messaging behaviours that follow kombu 5.2: accept lists, cancel_by_queue, amq.* exchanges,
 * SimpleQueue clear/accept/redelivery, reply_to, missing codecs, message settling.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/connection.js';
import { Exchange, Queue } from '../../src/entities.js';
import { compressionRegistry } from '../../src/compression.js';
import { DecodeError, DriverMissingError, Empty, SerializationError } from '../../src/errors.js';
import { lazyRequire } from '../../src/lazy-require.js';
import { Consumer, Message, Producer, type MessageAcker } from '../../src/messaging.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const BROKER = 'messaging-review';
const connections: Connection[] = [];

function connection(): Connection {
  getMemoryBroker(BROKER);
  const conn = new Connection(`memory://${BROKER}`);
  connections.push(conn);
  return conn;
}

afterEach(async () => {
  await Promise.all(connections.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe('Consumer accept', () => {
  it('an unknown serializer name throws from the constructor (kombu: SerializerNotInstalled), instead of dropping every message', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const queue = new Queue('typo', { durable: false });
    expect(() => new Consumer(channel, [queue], { accept: ['jsno'], callbacks: [() => undefined] })).toThrow(SerializationError);
    expect(() => conn.SimpleQueue('typo-simple', { accept: ['jsno'] })).toThrow(SerializationError);
    // Names and content types that exist are fine.
    expect(() => new Consumer(channel, [queue], { accept: ['json', 'application/x-msgpack', 'text/plain'] })).not.toThrow();
    // The message a typo would have dropped is still there.
    await queue.bind(channel).declare();
    await new Producer(channel, { routingKey: 'typo' }).publish({ a: 1 });
    expect(getMemoryBroker(BROKER).queueInfo('typo')?.messageCount).toBe(1);
  });
});

describe('Consumer.cancelByQueue', () => {
  it('removes the queue, so a later consume() does not start on it again (kombu)', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const got: string[] = [];
    const a = new Queue('cbq-a', { durable: false });
    const b = new Queue('cbq-b', { durable: false });
    const consumer = new Consumer(channel, [a, b], { accept: ['text/plain'], onMessage: (m) => {
      got.push(String(m.decode()));
      m.ack();
    } });
    await consumer.consume();
    await consumer.cancelByQueue(a);
    expect(consumer.queues.map((q) => q.name)).toEqual(['cbq-b']);
    await consumer.consume(); // as Celery's add_consumer does after adding another queue
    expect(consumer.consumingFrom('cbq-a')).toBe(false);
    const producer = new Producer(channel);
    await producer.publish('to a', { routingKey: 'cbq-a' });
    await producer.publish('to b', { routingKey: 'cbq-b' });
    await expect.poll(() => got).toEqual(['to b']);
    expect(getMemoryBroker(BROKER).queueInfo('cbq-a')?.messageCount).toBe(1);
  });
});

describe("the broker's amq.* exchanges", () => {
  it('are never declared (kombu), so a queue bound to amq.topic and a producer on it work as in kombu', async () => {
    const conn = connection();
    const channel = await conn.channel();
    // kombu users write Exchange('amq.topic') without a type: kombu skips its declaration.
    const amqTopic = new Exchange('amq.topic');
    const logs = new Queue('amq-logs', { exchange: amqTopic, routingKey: 'logs.*', durable: false }).bind(channel);
    await logs.declare();
    const producer = new Producer(channel, { exchange: amqTopic });
    await producer.publish({ level: 'error' }, { routingKey: 'logs.error' });
    await expect.poll(() => getMemoryBroker(BROKER).queueInfo('amq-logs')?.messageCount).toBe(1);
    expect((await logs.get({ accept: ['json'] }))?.decode()).toEqual({ level: 'error' });
  });
});

describe('SimpleQueue.clear', () => {
  it('on a queue not used yet resolves 0 (kombu) instead of a 404 that closes the channel', async () => {
    const conn = connection();
    const queue = conn.SimpleQueue('fresh', { queueOpts: { durable: false } });
    expect(await queue.clear()).toBe(0);
    await queue.put({ n: 1 });
    const message = await queue.get({ timeout: 5 });
    expect(message.payload).toEqual({ n: 1 });
    message.ack();
    await queue.close();
  });
});

describe('Producer.publish replyTo', () => {
  it('a server-named reply queue in `declare` is sent under the name the broker gave it (kombu reads reply_to after declaring)', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const requests = new Queue('rpc-requests', { durable: false }).bind(channel);
    await requests.declare();
    const replies = new Queue('', { exclusive: true });
    await new Producer(channel, { routingKey: 'rpc-requests' }).publish({ op: 'ping' }, { replyTo: replies, declare: [replies] });
    expect(replies.name).toMatch(/^amq\.gen-/);
    const request = await requests.get({ accept: ['json'] });
    expect(request?.properties.replyTo).toBe(replies.name);
  });
});

describe('SimpleQueue after a reconnect', () => {
  it('does not hand out a buffered message of the lost channel and then its redelivery (the same job twice)', async () => {
    const broker = getMemoryBroker(BROKER);
    const conn = new Connection(`memory://${BROKER}`, { retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.05 } });
    connections.push(conn);
    const queue = conn.SimpleQueue('jobs', { queueOpts: { durable: false } });
    await queue.put(1);
    await queue.put(2);
    const first = await queue.get({ timeout: 5 });
    expect(first.ack()).toBe(true);
    // Job 2 now waits unacknowledged in the local buffer.
    await expect.poll(() => broker.queueInfo('jobs')?.messageCount).toBe(0);
    const epoch = queue.channel.epoch;
    broker.dropConnections();
    await expect.poll(() => queue.channel.isOpen && queue.channel.epoch > epoch).toBe(true);
    const second = await queue.get({ timeout: 5 });
    expect(second.payload).toBe(2);
    expect(second.redelivered).toBe(true);
    expect(second.ack()).toBe(true);
    await expect(queue.get({ timeout: 0 })).rejects.toBeInstanceOf(Empty);
    await queue.close();
  });
});

describe('a message whose codec is not installed here', () => {
  // As lzma (lzma-native), bzip2 (compressjs) or msgpack (msgpackr) are when their optional package is missing.
  const loadMissing = lazyRequire<{ decompress(b: Buffer): Buffer }>('kombu-ts-review-no-such-package', 'x-missing compression');
  compressionRegistry.register('x-missing', (b) => b, (b) => loadMissing().decompress(b), 'application/x-missing');

  it('is not rejected (dropped) by a Consumer: the error is reported and the message goes back to the broker', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const errors: Error[] = [];
    const consumer = new Consumer(channel, [new Queue('codec', { durable: false })], { callbacks: [() => undefined] });
    consumer.on('error', (error) => errors.push(error));
    await consumer.consume();
    await new Producer(channel, { routingKey: 'codec' }).publish({ a: 1 }, { compression: 'x-missing' });
    await expect.poll(() => errors.length).toBe(1);
    expect(errors[0]).toBeInstanceOf(DecodeError);
    expect(errors[0]?.cause).toBeInstanceOf(DriverMissingError);
    await channel.close(); // the unacknowledged message goes back to the queue
    expect(getMemoryBroker(BROKER).queueInfo('codec')?.messageCount).toBe(1);
  });

  it('is not rejected by SimpleQueue.get either', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const queue = conn.SimpleQueue('codec-simple', { channel, queueOpts: { durable: false }, compression: 'x-missing' });
    await queue.put({ a: 1 });
    await expect(queue.get({ timeout: 5 })).rejects.toBeInstanceOf(DriverMissingError);
    await queue.close();
    await channel.close();
    expect(getMemoryBroker(BROKER).queueInfo('codec-simple')?.messageCount).toBe(1);
  });
});

describe('SimpleQueue default accept', () => {
  it("reads back what its own put() writes: kombu's example put('hello world') / get() no longer refuses (and drops) the string", async () => {
    const conn = connection();
    const queue = conn.SimpleQueue('roundtrip', { queueOpts: { durable: false } });
    await queue.put('hello world');
    await queue.put(Buffer.from([1, 2]));
    await queue.put({ a: 1 });
    const got: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const message = await queue.get({ timeout: 5 });
      got.push(message.payload);
      message.ack();
    }
    expect(got).toEqual(['hello world', Buffer.from([1, 2]), { a: 1 }]);
    await queue.close();
    const packed = conn.SimpleQueue('roundtrip-msgpack', { queueOpts: { durable: false }, serializer: 'msgpack' });
    await packed.put({ b: 2 });
    expect((await packed.get({ timeout: 5 })).payload).toEqual({ b: 2 });
    await packed.close();
    // An explicit accept still wins.
    const strict = conn.SimpleQueue('roundtrip-strict', { queueOpts: { durable: false }, accept: ['json'] });
    expect(strict.consumer.accept).toEqual(['json']);
  });
});

describe('Message settling', () => {
  it('an ack that throws leaves the message unsettled (kombu sets the state after basic_ack), so it can be retried', () => {
    let failures = 1;
    const sent: string[] = [];
    const acker: MessageAcker = {
      ack: (tag) => {
        if (failures-- > 0) throw new Error('channel failing');
        sent.push(`ack ${String(tag)}`);
        return true;
      },
      reject: (tag, requeue) => {
        sent.push(`reject ${String(tag)} ${String(requeue)}`);
        return true;
      },
    };
    const raw = { body: Buffer.from('{}'), properties: { contentType: 'application/json' }, deliveryInfo: { exchange: '', routingKey: 'q', deliveryTag: 7, redelivered: false } };
    const message = new Message(raw, { channel: acker });
    expect(() => message.ack()).toThrow('channel failing');
    expect(message.state).toBe('RECEIVED');
    expect(message.ack()).toBe(true);
    expect(message.state).toBe('ACK');
    expect(sent).toEqual(['ack 7']);
  });
});

describe('Consumer queues, one per name (kombu keeps them in a dict by name)', () => {
  it('a name given twice, or added again with addQueue, is one queue: the later Queue replaces the earlier in its place', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const first = new Queue('twice', { durable: false });
    const later = new Queue('twice', { durable: false, routingKey: 'later' });
    const consumer = new Consumer(channel, [first, 'other', later], { callbacks: [() => undefined] });
    expect(consumer.queues.map((q) => q.name)).toEqual(['twice', 'other']);
    expect(consumer.queues[0]!.routingKey).toBe('later');
    const added = await consumer.addQueue(new Queue('other', { durable: false, routingKey: 'added' }));
    expect(consumer.queues.map((q) => q.name)).toEqual(['twice', 'other']);
    expect(consumer.queues[1]).toBe(added);
  });
});
