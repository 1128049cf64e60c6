/**
 * Conformance: Producer, Consumer and Message semantics (acks, redelivery, prefetch,
 * properties, returns, failing callbacks, eventloop).
 */
import { expect, it } from 'vitest';
import { Consumer, Exchange, MessageStateError, Producer, Queue, eventloop, type Message } from '../../src/index.js';
import type { ContextGetter } from './context.js';
import { bodiesOf, declared, getOne } from './suite-routing.js';

export function messagingTests(get: ContextGetter): void {
  it('ack removes, reject drops, requeue redelivers with redelivered set; settling twice throws', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('acks'), { durable: false }));
    const q = queue as Queue;
    const producer = new Producer(channel, { routingKey: q.name });
    for (const n of [1, 2, 3]) await producer.publish(n);

    const first = await getOne(ctx, q);
    expect(first.payload).toBe(1);
    expect(first.redelivered).toBe(false);
    expect(first.acknowledged).toBe(false);
    first.ack();
    expect(first.acknowledged).toBe(true);
    expect(() => first.ack()).toThrow(MessageStateError);
    expect(() => first.reject()).toThrow(MessageStateError);

    const second = await getOne(ctx, q);
    second.reject();
    expect(second.state).toBe('REJECTED');

    const third = await getOne(ctx, q);
    expect(third.payload).toBe(3);
    third.requeue();
    expect(() => third.requeue()).toThrow(MessageStateError);
    const again = await getOne(ctx, q);
    expect(again.payload).toBe(3);
    expect(again.redelivered).toBe(true);
    again.ack();
    expect(await bodiesOf(ctx, q, 0)).toEqual([]);
  });

  it('unacked messages of a closed connection are redelivered with redelivered = true', async () => {
    const ctx = get();
    const first = ctx.connection();
    const name = ctx.queueName('redeliver');
    const seen: Message[] = [];
    const consumer = new Consumer(first, [new Queue(name, { durable: false })], { onMessage: (m) => void seen.push(m) });
    await consumer.consume();
    await new Producer(first, { routingKey: name }).publish({ n: 1 });
    await ctx.until(() => seen.length === 1, 'the first delivery');
    expect(seen[0]?.redelivered).toBe(false);
    await first.close();

    const second = ctx.connection();
    const again: Message[] = [];
    await new Consumer(second, [new Queue(name, { durable: false })], { onMessage: (m) => void again.push(m) }).consume();
    await ctx.until(() => again.length === 1, 'the redelivery');
    expect(again[0]?.redelivered).toBe(true);
    expect(again[0]?.payload).toEqual({ n: 1 });
    again[0]?.ack();
  });

  it('prefetchCount bounds the unacknowledged deliveries', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const queue = new Queue(ctx.queueName('prefetch'), { durable: false });
    const seen: Message[] = [];
    const consumer = new Consumer(channel, [queue], { prefetchCount: 2, callbacks: [(_body, m) => void seen.push(m)] });
    await consumer.consume();
    const producer = new Producer(channel, { routingKey: queue.name });
    for (let n = 0; n < 5; n++) await producer.publish(n);
    await ctx.until(() => seen.length === 2, 'two deliveries');
    await ctx.settle(0.1);
    expect(seen).toHaveLength(2);
    seen[0]?.ack();
    await ctx.until(() => seen.length === 3, 'a third delivery after an ack');
    await ctx.settle(0.05);
    expect(seen).toHaveLength(3);
    for (const m of seen.slice(1)) m.ack();
    await ctx.until(() => seen.length === 5, 'the rest');
    expect(seen.map((m) => m.payload)).toEqual([0, 1, 2, 3, 4]);
    for (const m of seen.slice(3)) m.ack();
  });

  it('message properties and headers round trip', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const [queue] = await declared(channel, new Queue(ctx.queueName('props'), { durable: false }));
    const q = queue as Queue;
    await new Producer(channel).publish(
      { hello: 'world' },
      {
        routingKey: q.name,
        headers: { 'x-trace': 'abc', n: 7 },
        priority: 3,
        correlationId: 'corr-1',
        replyTo: q,
        messageId: 'msg-1',
        timestamp: 1_700_000_000,
        expiration: 60,
        deliveryMode: 'transient',
        type: 'greeting',
        appId: 'conformance',
      },
    );
    const message = await getOne(ctx, q);
    expect(message.payload).toEqual({ hello: 'world' });
    expect(message.contentType).toBe('application/json');
    expect(message.contentEncoding).toBe('utf-8');
    expect(message.headers).toMatchObject({ 'x-trace': 'abc', n: 7 });
    expect(message.properties).toMatchObject({
      priority: 3,
      correlationId: 'corr-1',
      replyTo: q.name,
      messageId: 'msg-1',
      timestamp: 1_700_000_000,
      expiration: '60000',
      deliveryMode: 1,
      type: 'greeting',
      appId: 'conformance',
    });
    expect(message.deliveryInfo.routingKey).toBe(q.name);
    expect(message.deliveryInfo.exchange).toBe('');
    message.ack();
  });

  it('deliveryMode defaults to the exchange\'s, else persistent', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const transient = new Exchange(ctx.exchangeName('transient'), { durable: false, deliveryMode: 'transient' });
    const [a] = await declared(channel, new Queue(ctx.queueName('dm-a'), { exchange: transient, routingKey: 'k', durable: false }));
    await new Producer(channel, { exchange: transient }).publish(1, { routingKey: 'k' });
    await new Producer(channel).publish(2, { routingKey: (a as Queue).name });
    const first = await getOne(ctx, a as Queue);
    const second = await getOne(ctx, a as Queue);
    expect(first.properties.deliveryMode).toBe(1);
    expect(second.properties.deliveryMode).toBe(2);
    first.ack();
    second.ack();
  });

  it.runIf(get.supports('mandatory'))('mandatory: an unroutable message comes back to onReturn', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const exchange = new Exchange(ctx.exchangeName('mandatory'), { durable: false });
    const returned: string[] = [];
    const producer = new Producer(channel, { exchange, onReturn: (m) => returned.push(m.body.toString()) });
    await producer.publish('lost', { routingKey: 'nowhere', mandatory: true });
    await ctx.until(() => returned.length === 1, 'the returned message');
    expect(returned).toEqual(['lost']);
    await producer.close();
  });

  it('a callback that throws does not stop the consumer; the error is emitted and the message left unacked', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const queue = new Queue(ctx.queueName('throws'), { durable: false });
    const ok: unknown[] = [];
    const errors: [Error, Message | undefined][] = [];
    const consumer = new Consumer(channel, [queue], {
      accept: ['json', 'text/plain'],
      callbacks: [
        (body, message) => {
          if (body === 'boom') throw new Error('callback failed');
          ok.push(body);
          message.ack();
        },
      ],
    });
    consumer.on('error', (error, message) => errors.push([error, message]));
    await consumer.consume();
    const producer = new Producer(channel, { routingKey: queue.name });
    for (const body of ['a', 'boom', 'b']) await producer.publish(body);
    await ctx.until(() => ok.length === 2 && errors.length === 1, 'two good messages and one error');
    expect(ok).toEqual(['a', 'b']);
    expect(errors[0]?.[0].message).toBe('callback failed');
    expect(errors[0]?.[1]?.acknowledged).toBe(false);
    // Left unacknowledged: it comes back once the channel is gone.
    await consumer.cancel();
    await channel.close();
    const again = await getOne(ctx, queue.bind(await conn.channel()));
    expect(again.payload).toBe('boom');
    expect(again.redelivered).toBe(true);
    again.ack();
  });

  it("onCallbackError: 'requeue' gives a failed message back at once (redelivered)", async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const queue = new Queue(ctx.queueName('requeue-on-error'), { durable: false });
    const attempts: boolean[] = [];
    const consumer = new Consumer(channel, [queue], {
      onCallbackError: 'requeue',
      callbacks: [
        (_body, message) => {
          attempts.push(message.redelivered);
          if (attempts.length === 1) throw new Error('first attempt fails');
          message.ack();
        },
      ],
    });
    const errors: Error[] = [];
    consumer.on('error', (e) => errors.push(e));
    await consumer.consume();
    await new Producer(channel, { routingKey: queue.name }).publish({ job: 1 });
    await ctx.until(() => attempts.length === 2, 'the redelivery');
    expect(attempts).toEqual([false, true]);
    expect(errors).toHaveLength(1);
  });

  it('async callbacks: a rejected promise is reported like a throw', async () => {
    const ctx = get();
    const channel = await ctx.connection().channel();
    const queue = new Queue(ctx.queueName('async'), { durable: false });
    const errors: Error[] = [];
    const done: unknown[] = [];
    const consumer = new Consumer(channel, [queue], {
      onCallbackError: 'reject',
      callbacks: [
        async (body, message) => {
          await ctx.settle(0.001);
          if ((body as { ok: boolean }).ok === false) throw new Error('async failure');
          done.push(body);
          message.ack();
        },
      ],
    });
    consumer.on('error', (e) => errors.push(e));
    await consumer.consume();
    const producer = new Producer(channel, { routingKey: queue.name });
    await producer.publish({ ok: false });
    await producer.publish({ ok: true });
    await ctx.until(() => errors.length === 1 && done.length === 1, 'one failure and one success');
    await consumer.cancel();
    expect(await bodiesOf(ctx, queue.bind(channel), 0)).toEqual([]);
  });

  it('consumer API: onMessage, cancelByQueue, addQueue, consumingFrom, cancel, qos, recover', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const a = new Queue(ctx.queueName('api-a'), { durable: false });
    const b = new Queue(ctx.queueName('api-b'), { durable: false });
    const got: string[] = [];
    const consumer = conn.Consumer([a], { channel, tagPrefix: 'conformance-', accept: ['text/plain'], onMessage: (m) => {
      got.push(`${m.deliveryInfo.routingKey}:${String(m.decode())}`);
      m.ack();
    } });
    await consumer.consume();
    expect(consumer.consumingFrom(a)).toBe(true);
    expect([...consumer.consumerTags.values()][0]).toMatch(/^conformance-/);
    await consumer.addQueue(b);
    expect(consumer.consumingFrom(b)).toBe(false);
    await consumer.consume();
    expect(consumer.consumingFrom(b.name)).toBe(true);
    const producer = conn.Producer({ channel });
    await producer.publish('1', { routingKey: a.name });
    await producer.publish('2', { routingKey: b.name });
    await ctx.until(() => got.length === 2, 'both queues');
    expect(got.sort()).toEqual([`${a.name}:1`, `${b.name}:2`]);
    await consumer.cancelByQueue(a.name);
    expect(consumer.consumingFrom(a)).toBe(false);
    await producer.publish('3', { routingKey: a.name });
    await producer.publish('4', { routingKey: b.name });
    await ctx.until(() => got.length === 3, 'queue b only');
    await consumer.qos({ prefetchCount: 10 });
    await consumer.recover({ requeue: true });
    await consumer.cancel();
    expect(consumer.consumerTags.size).toBe(0);
    expect(await bodiesOf(ctx, a.bind(channel), 1)).toEqual(['3']);
  });

  it('receive() and registerCallback(): callbacks run in order; receive without callbacks throws', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const consumer = new Consumer(conn, [new Queue(ctx.queueName('receive'), { durable: false })]);
    const order: string[] = [];
    const message = { ack: () => true } as unknown as Message;
    expect(() => consumer.receive({}, message)).toThrow(/callbacks/);
    consumer.registerCallback(() => void order.push('first'));
    consumer.registerCallback(() => void order.push('second'));
    await consumer.receive({}, message);
    expect(order).toEqual(['first', 'second']);
  });

  it('eventloop drains deliveries with limit, timeout and ignoreTimeouts', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    const queue = new Queue(ctx.queueName('eventloop'), { durable: false });
    const got: unknown[] = [];
    await new Consumer(channel, [queue], { callbacks: [(body, m) => { got.push(body); m.ack(); }] }).consume();
    const producer = new Producer(channel, { routingKey: queue.name });
    for (const n of [1, 2, 3]) await producer.publish(n);
    let iterations = 0;
    for await (const _ of eventloop(conn, { limit: 3, timeout: ctx.options.timeout ?? 5 })) iterations++;
    expect(iterations).toBe(3);
    await ctx.until(() => got.length === 3);
    expect(got).toEqual([1, 2, 3]);
    const loop = eventloop(conn, { limit: 2, timeout: 0.05 });
    await expect(loop.next()).rejects.toMatchObject({ name: 'TimeoutError' });
    let quiet = 0;
    for await (const _ of eventloop(conn, { limit: 2, timeout: 0.02, ignoreTimeouts: true })) quiet++;
    expect(quiet).toBe(0);
  });
}
