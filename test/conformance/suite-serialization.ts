/**
 * Conformance: serializers, the accept list, decode errors and compression, end to end through
 * the broker (bodies and headers must survive the transport byte for byte).
 */
import { expect, it } from 'vitest';
import { ContentDisallowed, Consumer, DecodeError, Producer, Queue, type Message, type SerializationError } from '../../src/index.js';
import type { ContextGetter } from './context.js';
import { bodiesOf, declared, getOne } from './suite-routing.js';

export function serializationTests(get: ContextGetter): void {
  const cases: { name: string; body: unknown; serializer?: string; contentType: string; accept: string[]; decoded: unknown }[] = [
    { name: 'json (default for objects)', body: { a: [1, 'two', null], b: { c: true } }, contentType: 'application/json', accept: ['json'], decoded: { a: [1, 'two', null], b: { c: true } } },
    { name: 'text (default for strings)', body: 'héllo wörld', contentType: 'text/plain', accept: ['text/plain'], decoded: 'héllo wörld' },
    { name: 'raw bytes (default for Buffers)', body: Buffer.from([0, 1, 254, 255]), contentType: 'application/data', accept: ['json'], decoded: Buffer.from([0, 1, 254, 255]) },
    { name: 'raw serializer', body: 'as is', serializer: 'raw', contentType: 'application/data', accept: ['json'], decoded: 'as is' },
    { name: 'msgpack (with accept)', body: { n: 1, list: [1, 2], s: 'x' }, serializer: 'msgpack', contentType: 'application/x-msgpack', accept: ['msgpack'], decoded: { n: 1, list: [1, 2], s: 'x' } },
  ];
  for (const c of cases) {
    it(`serializer: ${c.name}`, async () => {
      const ctx = get();
      const channel = await ctx.connection().channel();
      const [queue] = await declared(channel, new Queue(ctx.queueName('ser'), { durable: false }));
      await new Producer(channel, { routingKey: queue?.name ?? '', ...(c.serializer ? { serializer: c.serializer } : {}) }).publish(c.body);
      const message = await getOne(ctx, queue as Queue, c.accept);
      expect(message.contentType).toBe(c.contentType);
      const payload = message.payload;
      expect(Buffer.isBuffer(c.decoded) ? Buffer.from(payload as Buffer) : payload).toEqual(c.decoded);
      message.ack();
    });
  }

  it('accept list: a content type not accepted is rejected (not requeued) and reported as ContentDisallowed', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const queue = new Queue(ctx.queueName('refused'), { durable: false });
    const errors: [Error, Message | undefined][] = [];
    const good: unknown[] = [];
    const consumer = new Consumer(channel, [queue], { callbacks: [(body, m) => { good.push(body); m.ack(); }] });
    consumer.on('error', (error, message) => errors.push([error, message]));
    await consumer.consume();
    const producer = new Producer(channel, { routingKey: queue.name });
    await producer.publish({ evil: true }, { serializer: 'msgpack' });
    await producer.publish({ fine: true });
    await ctx.until(() => errors.length === 1 && good.length === 1, 'a refusal and a good message');
    expect(errors[0]?.[0]).toBeInstanceOf(ContentDisallowed);
    expect(errors[0]?.[1]?.state).toBe('REJECTED');
    expect(good).toEqual([{ fine: true }]);
    await consumer.cancel();
    await ctx.settle(0.05);
    expect(await bodiesOf(ctx, queue.bind(channel), 0)).toEqual([]);
  });

  it('accept list: onDecodeError gets ContentDisallowed and DecodeError; the messages are rejected', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const queue = new Queue(ctx.queueName('decode-errors'), { durable: false });
    const failures: [SerializationError, Message][] = [];
    const consumer = new Consumer(channel, [queue], {
      accept: ['json'],
      callbacks: [() => undefined],
      onDecodeError: (message, error) => failures.push([error, message]),
    });
    const emitted: Error[] = [];
    consumer.on('error', (e) => emitted.push(e));
    await consumer.consume();
    const producer = new Producer(channel, { routingKey: queue.name });
    await producer.publish('plain text');
    await producer.publish('{not json', { contentType: 'application/json' });
    await ctx.until(() => failures.length === 2, 'two decode failures');
    expect(failures[0]?.[0]).toBeInstanceOf(ContentDisallowed);
    expect(failures[1]?.[0]).toBeInstanceOf(DecodeError);
    expect(failures.map(([, m]) => m.state)).toEqual(['REJECTED', 'REJECTED']);
    expect(emitted).toEqual([]);
    await consumer.cancel();
    expect(await bodiesOf(ctx, queue.bind(channel), 0)).toEqual([]);
  });

  for (const method of ['zlib', 'gzip', 'brotli', 'bzip2', 'lzma']) {
    it(`compression round trip: ${method}`, async () => {
      const ctx = get();
      const conn = ctx.connection();
      const channel = await conn.channel();
      const queue = new Queue(ctx.queueName(`compress-${method}`), { durable: false });
      const body = { text: 'kombu '.repeat(200), n: 42 };
      const got: Message[] = [];
      await new Consumer(channel, [queue], { callbacks: [(_b, m) => { got.push(m); m.ack(); }] }).consume();
      await new Producer(channel, { routingKey: queue.name, compression: method }).publish(body);
      await ctx.until(() => got.length === 1, 'the compressed message');
      const message = got[0] as Message;
      expect(message.contentType).toBe('application/json');
      expect(typeof message.headers['compression']).toBe('string');
      expect(message.headers['compression']).toMatch(/^application\//);
      expect(message.body.length).toBeLessThan(JSON.stringify(body).length);
      expect(message.payload).toEqual(body);
    });
  }
}
