/**
 * Conformance: SimpleQueue and SimpleBuffer.
 */
import { expect, it } from 'vitest';
import { ContentDisallowed, Empty, Queue } from '../../src/index.js';
import type { ContextGetter } from './context.js';

export function simpleTests(get: ContextGetter): void {
  it('SimpleQueue: put, qsize, getNowait, get, Empty, clear, close', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const queue = conn.SimpleQueue(ctx.entityName('simple'), { queueOpts: { durable: false }, exchangeOpts: { durable: false } });
    for (const n of [1, 2, 3]) await queue.put({ n });
    await expect.poll(() => queue.qsize()).toBe(3);

    const first = await queue.getNowait();
    expect(first.payload).toEqual({ n: 1 });
    expect(first.acknowledged).toBe(false);
    first.ack();
    const second = await queue.get({ timeout: ctx.options.timeout ?? 5 });
    expect(second.payload).toEqual({ n: 2 });
    second.ack();
    const third = await queue.get({ block: true, timeout: ctx.options.timeout ?? 5 });
    expect(third.payload).toEqual({ n: 3 });
    third.ack();

    await expect(queue.get({ timeout: 0.05 })).rejects.toBeInstanceOf(Empty);
    await expect(queue.get({ block: false })).rejects.toBeInstanceOf(Empty);
    await expect(queue.getNowait()).rejects.toBeInstanceOf(Empty);

    // A get() waiting when the message arrives gets it.
    const waiting = queue.get({ timeout: ctx.options.timeout ?? 5 });
    await queue.put({ late: true }, { headers: { k: 'v' } });
    await expect(waiting.then((m) => m.headers['k'])).resolves.toBe('v');

    await queue.close();
    await queue.close();
    await expect(queue.put('closed')).rejects.toThrow(/closed/);
  });

  it('SimpleQueue: clear() purges; close() gives buffered messages back', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const name = ctx.entityName('simple-clear');
    const options = { queueOpts: { durable: false }, exchangeOpts: { durable: false } };
    const queue = conn.SimpleQueue(name, options);
    for (const n of [1, 2, 3]) await queue.put(n);
    await expect.poll(() => queue.qsize()).toBe(3);
    expect(await queue.clear()).toBe(3);
    expect(await queue.qsize()).toBe(0);
    for (const n of [4, 5]) await queue.put(n);
    const four = await queue.get({ timeout: ctx.options.timeout ?? 5 });
    four.ack();
    await ctx.settle(0.05); // 5 now waits in the local buffer
    await queue.close();
    const reopened = conn.SimpleQueue(name, options);
    const five = await reopened.get({ timeout: ctx.options.timeout ?? 5 });
    expect(five.payload).toBe(5);
    expect(five.redelivered).toBe(true);
    five.ack();
    await reopened.close();
  });

  it('SimpleQueue: a message that is not accepted is rejected and get() throws', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const queue = conn.SimpleQueue(ctx.entityName('simple-accept'), { queueOpts: { durable: false }, exchangeOpts: { durable: false } });
    await queue.put({ a: 1 }, { serializer: 'msgpack' });
    await queue.put({ b: 2 });
    await expect(queue.get({ timeout: ctx.options.timeout ?? 5 })).rejects.toBeInstanceOf(ContentDisallowed);
    const next = await queue.get({ timeout: ctx.options.timeout ?? 5 });
    expect(next.payload).toEqual({ b: 2 });
    next.ack();
    await queue.close();
  });

  it('SimpleQueue over a given Queue, with serializer and compression', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const q = new Queue(ctx.queueName('simple-given'), { durable: false });
    const queue = conn.SimpleQueue(q, { serializer: 'json', compression: 'zlib', accept: ['json'] });
    await queue.put([1, 2, 3]);
    const message = await queue.get({ timeout: ctx.options.timeout ?? 5 });
    expect(message.headers['compression']).toBe('application/x-gzip');
    expect(message.payload).toEqual([1, 2, 3]);
    message.ack();
    await queue.close();
  });

  it('SimpleBuffer: ephemeral (auto-delete, non-durable, transient) and no-ack', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const buffer = conn.SimpleBuffer(ctx.entityName('buffer'));
    expect(buffer.noAck).toBe(true);
    expect(buffer.queue.durable).toBe(false);
    expect(buffer.queue.autoDelete).toBe(true);
    expect(buffer.exchange.autoDelete).toBe(true);
    expect(buffer.exchange.deliveryMode).toBe(1);
    await buffer.put({ tick: 1 });
    const message = await buffer.get({ timeout: ctx.options.timeout ?? 5 });
    expect(message.payload).toEqual({ tick: 1 });
    expect(message.acknowledged).toBe(true);
    expect(message.properties.deliveryMode).toBe(1);
    expect(message.ack()).toBe(false); // nothing to acknowledge
    await buffer.close();
  });
}
