import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { eventloop } from '../../src/common.js';
import { Connection } from '../../src/connection.js';
import { Exchange, Queue } from '../../src/entities.js';
import { ConfigurationError, DecodeError, Empty, EncodeError, IllegalStateError, MessageStateError, TimeoutError } from '../../src/errors.js';
import { Consumer, Message, Producer } from '../../src/messaging.js';
import { SimpleBuffer, SimpleQueue } from '../../src/simple.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';
import type { RawMessage } from '../../src/transports/transport.js';

const FIXTURES = new URL('../fixtures/kombu/', import.meta.url);
const connections: Connection[] = [];

function connection(name = 'messaging'): Connection {
  getMemoryBroker(name);
  const conn = new Connection(`memory://${name}`, { retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.05 } });
  connections.push(conn);
  return conn;
}

async function until(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(predicate()).toBe(true);
}

function raw(body: Buffer | string, properties: RawMessage['properties'] = {}, tag = 1): RawMessage {
  return {
    body: Buffer.isBuffer(body) ? body : Buffer.from(body),
    properties,
    deliveryInfo: { exchange: '', routingKey: 'q', deliveryTag: tag, redelivered: false },
  };
}

/** A declared queue and a way to fetch what was published to it. */
async function published(conn: Connection, name: string): Promise<{ queue: Queue; next: () => Promise<Message> }> {
  const channel = await conn.channel();
  const queue = new Queue(name, { durable: false }).bind(channel);
  await queue.declare();
  return {
    queue,
    next: async () => {
      const m = await queue.get({ accept: ['json', 'text/plain', 'application/x-msgpack'] });
      if (!m) throw new Error('no message');
      return m;
    },
  };
}

afterEach(async () => {
  await Promise.all(connections.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe('Producer.publish', () => {
  it("serializes by kombu's rules: objects json, strings text/plain, bytes application/data", async () => {
    const conn = connection();
    const { next } = await published(conn, 'rules');
    const producer = new Producer(conn, { routingKey: 'rules' });
    await producer.publish({ a: 1 });
    await producer.publish('text');
    await producer.publish(Buffer.from([1, 2]));
    await producer.publish('<x/>', { contentType: 'application/xml' });
    await producer.publish(Buffer.from('bin'), { contentType: 'application/octet-stream' });
    const got = [await next(), await next(), await next(), await next(), await next()];
    expect(got.map((m) => [m.contentType, m.contentEncoding])).toEqual([
      ['application/json', 'utf-8'],
      ['text/plain', 'utf-8'],
      ['application/data', 'binary'],
      ['application/xml', 'utf-8'],
      ['application/octet-stream', 'binary'],
    ]);
    expect(got[0]?.payload).toEqual({ a: 1 });
    expect(got[3]?.body.toString()).toBe('<x/>');
    await expect(producer.publish({ a: 1 }, { contentType: 'application/json' })).rejects.toBeInstanceOf(EncodeError);
    await expect(producer.publish({ a: 1 }, { serializer: 'nope' })).rejects.toBeInstanceOf(EncodeError);
  });

  it('compression sets headers.compression and keeps the serializer content type', async () => {
    const conn = connection();
    const { next } = await published(conn, 'compressed');
    await new Producer(conn, { routingKey: 'compressed', compression: 'gzip', serializer: 'msgpack' }).publish({ big: 'x'.repeat(500) }, { headers: { mine: 1 } });
    const m = await next();
    expect(m.contentType).toBe('application/x-msgpack');
    expect(m.headers).toEqual({ mine: 1, compression: 'application/x-gzip' });
    expect(m.body.length).toBeLessThan(100);
    expect(m.payload).toEqual({ big: 'x'.repeat(500) });
  });

  it('converts expiration, timestamp, deliveryMode and defaults priority to 0', async () => {
    const conn = connection();
    const { next } = await published(conn, 'props');
    const transient = new Exchange('', { deliveryMode: 'transient' });
    const producer = new Producer(conn, { exchange: transient, routingKey: 'props' });
    await producer.publish(1, { expiration: 1.5, timestamp: new Date(1_700_000_000_500) });
    await producer.publish(2, { deliveryMode: 'persistent', exchange: '' });
    await new Producer(conn, { routingKey: 'props' }).publish(3, { deliveryMode: 1, replyTo: 'replies', correlationId: 'c' });
    const [a, b, c] = [await next(), await next(), await next()];
    expect(a.properties).toMatchObject({ expiration: '1500', timestamp: 1_700_000_000, deliveryMode: 1, priority: 0 });
    expect(b.properties.deliveryMode).toBe(2);
    expect(c.properties).toMatchObject({ deliveryMode: 1, replyTo: 'replies', correlationId: 'c' });
  });

  it('auto-declares its exchange once per connection, and the entities of `declare`', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const spy = vi.spyOn(channel, 'declareExchange');
    const exchange = new Exchange('auto', { type: 'fanout' });
    const queue = new Queue('auto-q', { exchange });
    const producer = new Producer(channel, { exchange });
    await producer.publish(1, { declare: [queue] });
    // Once for the producer's exchange, once as part of the queue's declaration; then cached.
    expect(spy).toHaveBeenCalledTimes(2);
    await producer.publish(2, { declare: [queue] });
    expect(spy).toHaveBeenCalledTimes(2);
    expect(getMemoryBroker('messaging').queueInfo('auto-q')?.messageCount).toBe(2);
    // Without autoDeclare nothing is declared: the broker refuses the unknown exchange.
    await expect(new Producer(await conn.channel(), { exchange: new Exchange('other'), autoDeclare: false }).publish(3)).rejects.toThrow(/no exchange 'other'/);
    expect(spy).toHaveBeenCalledTimes(2);
  });

  it('returns unroutable mandatory messages to onReturn and the return event', async () => {
    const conn = connection();
    const onReturn = vi.fn(() => {
      throw new Error('handler bug');
    });
    const producer = conn.Producer({ onReturn });
    const events: string[] = [];
    const errors: Error[] = [];
    producer.on('return', (m) => events.push(m.deliveryInfo.routingKey));
    producer.on('error', (e) => errors.push(e));
    await producer.publish('x', { routingKey: 'nobody-home', mandatory: true });
    await until(() => events.length === 1);
    expect(onReturn).toHaveBeenCalledTimes(1);
    expect(errors[0]?.message).toBe('handler bug');
    await producer.close();
    expect(() => producer.channel).toThrow(IllegalStateError);
    producer.revive(await conn.channel());
    expect(producer.channel).toBeDefined();
  });

  it('publishTimeout applies while the channel is down; retry with a closed connection fails fast', async () => {
    const broker = getMemoryBroker('messaging');
    const conn = connection();
    const channel = await conn.channel();
    const producer = new Producer(channel, { routingKey: 'nowhere', publishTimeout: 0.05 });
    broker.refuseConnections = true;
    broker.dropConnections();
    await expect(producer.publish(1)).rejects.toBeInstanceOf(TimeoutError);
    expect(channel.buffered).toBe(0);
    broker.refuseConnections = false;
    await new Promise((resolve) => conn.once('connected', resolve));
    await producer.publish(2);
    await conn.close();
    await expect(producer.publish(3, { retry: true })).rejects.toThrow();
  });
});

describe('Message', () => {
  const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as { compression: Record<string, { contentType: string; file: string }> };
  const payload = JSON.parse(readFileSync(new URL('payload.bin', FIXTURES), 'utf8')) as unknown;
  for (const [name, entry] of Object.entries(manifest.compression)) {
    it(`decodes a body kombu compressed with ${name}`, () => {
      const body = readFileSync(new URL(entry.file, FIXTURES));
      const m = new Message(raw(body, { contentType: 'application/json', contentEncoding: 'utf-8', headers: { compression: entry.contentType } }));
      expect(m.payload).toEqual(payload);
    });
  }

  it('decodes once, honours accept, and exposes kombu attributes', () => {
    const m = new Message(raw('{"a": [1]}', { contentType: 'application/json', contentEncoding: 'utf-8', priority: 4 }, 7), { accept: ['json'] });
    expect(m.decode()).toBe(m.payload);
    expect(m).toMatchObject({ deliveryTag: 7, contentType: 'application/json', contentEncoding: 'utf-8', redelivered: false, priority: 4, state: 'RECEIVED' });
    expect(String(m)).toContain('RECEIVED');
    const refused = new Message(raw('x', { contentType: 'text/plain' }), { accept: ['json'] });
    expect(() => refused.decode()).toThrow(/Refusing/);
    const corrupt = new Message(raw('{', { contentType: 'application/json' }));
    expect(() => corrupt.payload).toThrow(DecodeError);
  });

  it('settles once; without a channel it cannot; no-ack messages need nothing', () => {
    const calls: unknown[] = [];
    const channel = { ack: (...a: unknown[]) => (calls.push(['ack', ...a]), true), reject: (...a: unknown[]) => (calls.push(['reject', ...a]), true) };
    const m = new Message(raw('1'), { channel, epoch: 3 });
    expect(m.ack({ multiple: true })).toBe(true);
    expect(() => m.ack()).toThrow(MessageStateError);
    expect(() => m.requeue()).toThrow(MessageStateError);
    expect(calls).toEqual([['ack', 1, true, 3]]);
    const r = new Message(raw('1', {}, 2), { channel, epoch: 3 });
    r.requeue();
    expect(r.state).toBe('REQUEUED');
    expect(calls[1]).toEqual(['reject', 2, true, 3]);
    // kombu: reject(requeue=True) is REJECTED; only requeue() is REQUEUED.
    const rr = new Message(raw('1', {}, 3), { channel, epoch: 3 });
    rr.reject({ requeue: true });
    expect(rr.state).toBe('REJECTED');
    expect(calls[2]).toEqual(['reject', 3, true, 3]);
    expect(() => new Message(raw('1')).ack()).toThrow(MessageStateError);
    const noAck = new Message(raw('1'), { channel, noAck: true });
    expect(noAck.acknowledged).toBe(true);
    expect(noAck.ack()).toBe(false);
    expect(noAck.reject()).toBe(false);
    const logger = { error: vi.fn() };
    m.ackLog(logger);
    m.rejectLog(logger);
    expect(logger.error).toHaveBeenCalledTimes(2);
  });

  it('an ack after a reconnect sends nothing and the message is redelivered', async () => {
    const broker = getMemoryBroker('messaging');
    const conn = connection();
    const seen: Message[] = [];
    const consumer = conn.Consumer([new Queue('stale', { durable: false })], { onMessage: (m) => void seen.push(m) });
    await consumer.consume();
    await conn.Producer({ routingKey: 'stale' }).publish({ n: 1 });
    await until(() => seen.length === 1);
    const back = new Promise((resolve) => conn.once('connected', resolve));
    broker.dropConnections();
    await back;
    await until(() => seen.length === 2);
    expect(seen[0]?.ack()).toBe(false);
    expect(seen[1]?.redelivered).toBe(true);
    expect(seen[1]?.ack()).toBe(true);
  });
});

describe('Consumer', () => {
  it('onMessage replaces the callbacks; tags are unique; consume() is idempotent', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const callback = vi.fn();
    const got: Message[] = [];
    const a = new Consumer(channel, 'q1', { callbacks: [callback], onMessage: (m) => void got.push(m), autoDeclare: true });
    const b = new Consumer(channel, ['q1'], { callbacks: [callback], noAck: true });
    await a.consume();
    await a.consume();
    await b.consume();
    expect(a.consumerTags.get('q1')).not.toBe(b.consumerTags.get('q1'));
    expect(a.queues[0]?.isBound).toBe(true);
    const producer = new Producer(channel, { routingKey: 'q1' });
    for (const n of [1, 2, 3, 4]) await producer.publish(n);
    await until(() => got.length + callback.mock.calls.length === 4);
    expect(got.length).toBeGreaterThan(0);
    expect(callback.mock.calls.every(([, m]) => (m as Message).acknowledged)).toBe(true);
    for (const m of got) m.ack();
  });

  it('by default rejects what it cannot decode and emits the error; a handler may settle it itself', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const errors: Error[] = [];
    const consumer = new Consumer(channel, [new Queue('bad', { durable: false })], { callbacks: [() => undefined] });
    consumer.on('error', (e) => errors.push(e));
    await consumer.consume();
    const kept: Message[] = [];
    const handled = new Consumer(channel, [new Queue('bad2', { durable: false })], {
      callbacks: [() => undefined],
      onDecodeError: (m) => {
        m.ack();
        kept.push(m);
      },
    });
    await handled.consume();
    await new Producer(channel, { routingKey: 'bad' }).publish('{', { contentType: 'application/json' });
    await new Producer(channel, { routingKey: 'bad2' }).publish('{', { contentType: 'application/json' });
    await until(() => errors.length === 1 && kept.length === 1);
    expect(errors[0]).toBeInstanceOf(DecodeError);
    expect(kept[0]?.state).toBe('ACK');
  });

  it("takes kombu's one-liner callbacks: `(body, message) => message.ack()` and `onMessage: (m) => m.ack()`", async () => {
    const conn = connection();
    const channel = await conn.channel();
    const errors: Error[] = [];
    const viaCallbacks = new Consumer(channel, [new Queue('oneliner', { durable: false })], { callbacks: [(_body, message) => message.ack()] });
    const viaOnMessage = new Consumer(channel, [new Queue('oneliner2', { durable: false })], { onMessage: (message) => message.ack() });
    viaCallbacks.registerCallback(async () => {
      throw new Error('async failure');
    });
    viaCallbacks.on('error', (e) => errors.push(e));
    await viaCallbacks.consume();
    await viaOnMessage.consume();
    await new Producer(channel, { routingKey: 'oneliner' }).publish({ n: 1 });
    await new Producer(channel, { routingKey: 'oneliner2' }).publish({ n: 2 });
    await until(() => errors.length === 1);
    await until(() => getMemoryBroker('messaging').queueInfo('oneliner2')?.messageCount === 0);
    await channel.close(); // what is left unacked goes back to its queue
    expect(errors[0]?.message).toBe('async failure');
    expect(getMemoryBroker('messaging').queueInfo('oneliner')?.messageCount).toBe(0);
    expect(getMemoryBroker('messaging').queueInfo('oneliner2')?.messageCount).toBe(0);
  });

  it("onCallbackError 'reject' drops the failed message", async () => {
    const conn = connection();
    const channel = await conn.channel();
    const errors: Error[] = [];
    const consumer = new Consumer(channel, [new Queue('rej', { durable: false })], {
      onCallbackError: 'reject',
      callbacks: [
        () => {
          throw new Error('nope');
        },
      ],
    });
    consumer.on('error', (e) => errors.push(e));
    await consumer.consume();
    await new Producer(channel, { routingKey: 'rej' }).publish({});
    await until(() => errors.length === 1);
    await consumer.cancel();
    expect(getMemoryBroker('messaging').queueInfo('rej')?.messageCount).toBe(0);
    expect(await consumer.purge()).toBe(0);
  });
});

describe('Connection helpers and eventloop', () => {
  it('conn.Producer/Consumer/SimpleQueue/SimpleBuffer build on the default (or a given) channel', async () => {
    const conn = connection();
    const channel = await conn.channel();
    expect(conn.Producer()).toBeInstanceOf(Producer);
    expect(conn.Producer({ channel }).channel).toBe(channel);
    expect(conn.Consumer('q', { channel }).channel).toBe(channel);
    expect(conn.Consumer(['q']).channel).toBe(conn.defaultChannel);
    expect(conn.SimpleQueue('s')).toBeInstanceOf(SimpleQueue);
    expect(conn.SimpleBuffer('b', { channel })).toBeInstanceOf(SimpleBuffer);
  });

  it('eventloop iterates limit times and handles timeouts as told', async () => {
    const results: (Error | undefined)[] = [undefined, new TimeoutError('t'), undefined];
    const fake = {
      drainEvents: async () => {
        const next = results.shift();
        if (next) throw next;
      },
    } as unknown as Connection;
    let n = 0;
    for await (const _ of eventloop(fake, { limit: 3, ignoreTimeouts: true })) n++;
    expect(n).toBe(2);
    const failing = { drainEvents: async () => Promise.reject(new TimeoutError('t')) } as unknown as Connection;
    await expect(eventloop(failing, { timeout: 1 }).next()).rejects.toBeInstanceOf(TimeoutError);
  });
});

/** Past Node's timer limit (2^31 - 1 ms, ~24.8 days): Node would fire such a timer after 1 ms. */
const MONTH = 30 * 24 * 3600;
/** 'pending' when `promise` has not settled after a few ms (a timer of 1 ms would have fired). */
async function stillPending(promise: Promise<unknown>): Promise<'pending' | 'settled'> {
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  await new Promise((r) => setTimeout(r, 30));
  return settled ? 'settled' : 'pending';
}

describe('durations given by users (seconds)', () => {
  it('SimpleQueue.get({ timeout: Infinity }) waits for a message, as does a timeout past the timer limit', async () => {
    const conn = connection('simple-forever');
    const queue = conn.SimpleQueue('sf', { queueOpts: { durable: false } });
    for (const [i, timeout] of [MONTH, Infinity].entries()) {
      const got = queue.get({ timeout });
      expect(await stillPending(got)).toBe('pending');
      await queue.put(i);
      expect((await got).payload).toBe(i);
    }
    await queue.close();
  });

  it('SimpleQueue.get() refuses NaN, negative and non-number timeouts with ConfigurationError; no waiter is left to lose a message', async () => {
    const conn = connection('simple-bad');
    const queue = conn.SimpleQueue('sb', { queueOpts: { durable: false } });
    for (const timeout of [Number.NaN, -1, '1' as unknown as number]) {
      const error = await queue.get({ timeout }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/timeout/);
    }
    await expect(queue.get({ timeout: 0 })).rejects.toBeInstanceOf(Empty); // 0: do not wait, as kombu
    await queue.put('kept');
    expect((await queue.get({ timeout: 5 })).payload).toBe('kept');
    await queue.close();
  });

  it('publishTimeout: Infinity waits for the channel to come back, as does one past the timer limit', async () => {
    const broker = getMemoryBroker('pt-forever');
    const conn = connection('pt-forever');
    const channel = await conn.channel();
    await new Queue('ptq', { durable: false }).bind(channel).declare();
    for (const publishTimeout of [MONTH, Infinity]) {
      const producer = new Producer(channel, { routingKey: 'ptq', publishTimeout });
      broker.refuseConnections = true;
      broker.dropConnections();
      const sent = producer.publish(publishTimeout);
      expect(await stillPending(sent)).toBe('pending');
      expect(channel.buffered).toBe(1);
      broker.refuseConnections = false;
      await expect(sent).resolves.toBeUndefined();
    }
    expect(broker.queueInfo('ptq')?.messageCount).toBe(2);
  });

  it('publishTimeout: NaN, negative or not a number is a ConfigurationError, from the Producer or the call, with nothing buffered', async () => {
    const broker = getMemoryBroker('pt-bad');
    const conn = connection('pt-bad');
    const channel = await conn.channel();
    for (const publishTimeout of [Number.NaN, -1, '1' as unknown as number]) {
      expect(() => new Producer(channel, { routingKey: 'x', publishTimeout })).toThrow(ConfigurationError);
      const producer = new Producer(channel, { routingKey: 'x' });
      await expect(producer.publish(1, { publishTimeout })).rejects.toThrow(/publishTimeout/);
    }
    broker.refuseConnections = true;
    broker.dropConnections();
    const producer = new Producer(channel, { routingKey: 'x' });
    await expect(producer.publish(1, { publishTimeout: Number.NaN })).rejects.toBeInstanceOf(ConfigurationError);
    expect(channel.buffered).toBe(0);
    broker.refuseConnections = false;
  });

  it('expiration: NaN, Infinity or negative is a ConfigurationError (it would reach the broker as a bad string)', async () => {
    const conn = connection('exp-bad');
    const channel = await conn.channel();
    const producer = new Producer(channel, { routingKey: 'x' });
    for (const expiration of [Number.NaN, Infinity, -1]) {
      await expect(producer.publish(1, { expiration })).rejects.toThrow(/expiration/);
    }
    await expect(producer.publish(1, { expiration: 0.5 })).resolves.toBeUndefined();
  });
});
