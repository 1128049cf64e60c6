/**
 * Calls on an AMQP channel go out together, without waiting for one another's answers
 * (amqplib-internals.ts `pipelineCalls`, `openConfirmChannelEarly`), against the real
 * RabbitMQ through a proxy that sees every frame in the order it crosses:
 * - a recovery sends the channel's open and its whole restore (exchange, queues, bindings,
 *   qos, consumers) before the broker's first answer: one round trip, however many entities;
 * - calls an application makes together are sent together and answered in order (basic.get
 *   with its message included); a refused one fails with its own error, and those after it
 *   with a recoverable one; a call behind a basic.consume or basic.cancel still gets its own
 *   answer (RabbitMQ sends their oks after answering the calls behind them);
 * - a publish released behind a restore that the broker then refuses (recoverably) goes again
 *   after the recovery instead of failing with that refusal.
 * Round trips are counted from the frames' order, never from timings.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, Connection } from '../../src/index.js';
import { amqpTransport } from '../../src/transports/amqp.js';
import type { TransportConnection } from '../../src/transports/transport.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { never, params, RABBITMQ_PORT, rejection, requireRabbitmq, sleep, unique } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-pipelining.test');

/** One AMQP method frame as it crossed the proxy. */
interface Crossing {
  from: 'client' | 'broker';
  channel: number;
  /** `class.method`, e.g. `50.10` for queue.declare. */
  method: string;
}

/** AMQP method frames crossing a proxy, per direction, reassembled from the chunks. */
function frameLog() {
  const crossings: Crossing[] = [];
  const pending = { client: Buffer.alloc(0), broker: Buffer.alloc(0) };
  const tap = (from: 'client' | 'broker', chunk: Buffer): void => {
    let buf = Buffer.concat([pending[from], chunk]);
    // A new connection starts with the 8-byte protocol header.
    if (from === 'client' && buf.subarray(0, 4).toString('latin1') === 'AMQP') buf = buf.subarray(8);
    while (buf.length >= 7) {
      const size = buf.readUInt32BE(3);
      if (buf.length < 8 + size) break;
      if (buf[0] === 1) crossings.push({ from, channel: buf.readUInt16BE(1), method: `${buf.readUInt16BE(7)}.${buf.readUInt16BE(9)}` });
      buf = buf.subarray(8 + size);
    }
    pending[from] = buf;
  };
  return {
    tap,
    crossings,
    /** Forgets what crossed so far (a new connection follows). */
    clear: () => {
      crossings.length = 0;
      pending.client = Buffer.alloc(0);
      pending.broker = Buffer.alloc(0);
    },
  };
}

const CHANNEL_OPEN = '20.10';
const CONFIRM_SELECT = '85.10';
const EXCHANGE_DECLARE = '40.10';
const QUEUE_DECLARE = '50.10';
const QUEUE_BIND = '50.20';
const BASIC_QOS = '60.10';
const BASIC_CONSUME = '60.20';
const BASIC_GET = '60.70';

/** The client's method frames on `channel` sent before the broker's first answer on it. */
function sentBeforeFirstAnswer(crossings: readonly Crossing[], channel: number): string[] {
  const mine = crossings.filter((c) => c.channel === channel);
  const firstAnswer = mine.findIndex((c) => c.from === 'broker');
  return mine.slice(0, firstAnswer < 0 ? undefined : firstAnswer).filter((c) => c.from === 'client').map((c) => c.method);
}

const proxies: FaultProxy[] = [];
const connections: Connection[] = [];
const transportConnections: TransportConnection[] = [];

afterEach(async () => {
  await Promise.all(connections.splice(0).map((c) => c.close()));
  await Promise.all(transportConnections.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

async function proxied() {
  const frames = frameLog();
  const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT, tap: frames.tap });
  proxies.push(proxy);
  return { proxy, frames };
}

describe.skipIf(!reachable)('AMQP calls go out together (pipelining)', () => {
  it('a recovery sends the open and the whole restore before the broker answers anything: one round trip', async () => {
    const { proxy, frames } = await proxied();
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, { retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 } });
    connections.push(conn);
    const channel = await conn.channel();
    const exchange = unique('pipelined-x');
    const queues = [unique('pipelined-a'), unique('pipelined-b'), unique('pipelined-c')];
    const got: string[] = [];
    try {
      await channel.declareExchange({ name: exchange, type: 'direct', durable: false, autoDelete: false, arguments: {}, passive: false });
      await channel.qos(5);
      for (const [i, queue] of queues.entries()) {
        await channel.declareQueue({ name: queue, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
        await channel.bindQueue(queue, exchange, `rk-${i}`);
        await channel.consume(queue, { consumerTag: '', noAck: false }, (message, epoch) => {
          got.push(`${queue}:${message.body.toString()}`);
          channel.ack(message.deliveryInfo.deliveryTag, false, epoch);
        });
      }
      const recovered = new Promise<void>((resolve) => channel.once('recovered', () => resolve()));
      frames.clear();
      proxy.cut();
      await recovered;

      const channelId = frames.crossings.find((c) => c.from === 'client' && c.method === CHANNEL_OPEN)?.channel;
      expect(channelId).toBeDefined();
      expect(sentBeforeFirstAnswer(frames.crossings, channelId!)).toEqual([
        CHANNEL_OPEN, CONFIRM_SELECT, EXCHANGE_DECLARE, BASIC_QOS,
        QUEUE_DECLARE, QUEUE_DECLARE, QUEUE_DECLARE,
        QUEUE_BIND, QUEUE_BIND, QUEUE_BIND,
        BASIC_CONSUME, BASIC_CONSUME, BASIC_CONSUME,
      ]);

      // And the restored channel works: each binding routes to its queue's consumer.
      for (const i of [0, 1, 2]) await channel.publish(Buffer.from(`after-${i}`), {}, exchange, `rk-${i}`, { confirm: true });
      for (let i = 0; i < 200 && got.length < 3; i++) await sleep(10);
      expect(got.sort()).toEqual(queues.map((q, i) => `${q}:after-${i}`).sort());
    } finally {
      for (const queue of queues) await channel.deleteQueue(queue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
    }
  });

  it('calls made together are sent together and answered in order, basic.get and its message included', async () => {
    const { proxy, frames } = await proxied();
    const conn = await amqpTransport.connect(params({ port: proxy.port }), never);
    transportConnections.push(conn);
    const ch = await conn.createChannel();
    const queue = unique('pipelined-get');
    const other = unique('pipelined-other');
    const declare = (name: string) => ch.declareQueue({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
    try {
      await declare(queue);
      for (const body of ['one', 'two']) await ch.publish(Buffer.from(body), { contentType: 'text/plain' }, '', queue, { confirm: true });
      frames.clear();
      const [first, declared, second, empty] = await Promise.all([ch.get(queue, { noAck: true }), declare(other), ch.get(queue, { noAck: true }), ch.get(queue, { noAck: true })]);
      expect(first?.body.toString()).toBe('one');
      expect(declared.queue).toBe(other);
      expect(second?.body.toString()).toBe('two');
      expect(second?.properties.contentType).toBe('text/plain');
      expect(empty).toBeUndefined();
      expect(sentBeforeFirstAnswer(frames.crossings, ch.id)).toEqual([BASIC_GET, QUEUE_DECLARE, BASIC_GET, BASIC_GET]);
    } finally {
      await ch.deleteQueue(queue).catch(() => undefined);
      await ch.deleteQueue(other).catch(() => undefined);
    }
  });

  it('a call made behind a basic.consume or basic.cancel gets its own answer, though RabbitMQ sends their oks after answering the calls behind them', async () => {
    const conn = await amqpTransport.connect(params(), never);
    transportConnections.push(conn);
    const ch = await conn.createChannel();
    const queue = unique('pipelined-consume');
    const other = unique('pipelined-behind');
    const declare = (name: string) => ch.declareQueue({ name, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
    await declare(queue);
    const [tag, declared] = await Promise.all([ch.consume(queue, { consumerTag: '', noAck: true }, () => undefined), declare(other)]);
    expect(tag).toMatch(/^amq\.ctag-/);
    expect(declared.queue).toBe(other);
    const [, again] = await Promise.all([ch.cancel(tag), ch.declareQueue({ name: other, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: true })]);
    expect(again.queue).toBe(other);
    expect(ch.isOpen).toBe(true);
  });

  it('of two consumes sent together, the refused one fails with the refusal, though the broker had not yet sent the ok of the one before it', async () => {
    const conn = await amqpTransport.connect(params(), never);
    transportConnections.push(conn);
    const ch = await conn.createChannel();
    const queue = unique('pipelined-consumed');
    await ch.declareQueue({ name: queue, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
    const results = await Promise.allSettled([
      ch.consume(queue, { consumerTag: '', noAck: true }, () => undefined),
      ch.consume(unique('pipelined-no-queue'), { consumerTag: '', noAck: true }, () => undefined),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const [overtaken, refused] = results.map((r) => (r as PromiseRejectedResult).reason as unknown);
    expect(refused).toMatchObject({ code: 404, classId: 60, methodId: 20, recoverable: false });
    expect(overtaken).toBeInstanceOf(ChannelError);
    expect(overtaken).toMatchObject({ recoverable: true });
  });

  it('a refused call fails with its own error; the calls sent after it fail recoverably, the ones before it succeed', async () => {
    const { proxy, frames } = await proxied();
    const conn = await amqpTransport.connect(params({ port: proxy.port }), never);
    transportConnections.push(conn);
    const ch = await conn.createChannel();
    const before = unique('pipelined-before');
    const after = unique('pipelined-after');
    const declare = (name: string, passive = false) => ch.declareQueue({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive });
    try {
      frames.clear();
      const results = await Promise.allSettled([declare(before), declare(unique('pipelined-missing'), true), declare(after)]);
      expect(sentBeforeFirstAnswer(frames.crossings, ch.id)).toEqual([QUEUE_DECLARE, QUEUE_DECLARE, QUEUE_DECLARE]);
      expect(results[0].status).toBe('fulfilled');
      const refused = results[1].status === 'rejected' ? results[1].reason : undefined;
      expect(refused).toBeInstanceOf(ChannelError);
      expect(refused).toMatchObject({ code: 404, classId: 50, methodId: 10, recoverable: false });
      const overtaken = results[2].status === 'rejected' ? results[2].reason : undefined;
      expect(overtaken).toBeInstanceOf(ChannelError);
      expect(overtaken).toMatchObject({ recoverable: true });
      expect(String((overtaken as Error).message)).toContain('another call');
      expect(ch.isOpen).toBe(false);
    } finally {
      const admin = await conn.createChannel();
      await admin.deleteQueue(before).catch(() => undefined);
      await admin.deleteQueue(after).catch(() => undefined);
    }
  });

  it('a channel opened during a recovery takes calls before the broker confirmed the open; a closed connection refuses at once', async () => {
    const { proxy, frames } = await proxied();
    const conn = await amqpTransport.connect(params({ port: proxy.port }), never);
    transportConnections.push(conn);
    await (await conn.createChannel()).close(); // the first channel teaches the confirm channel class
    frames.clear();
    const early = conn.openChannel?.();
    expect(early).toBeDefined();
    const queue = unique('pipelined-early');
    const declared = early!.channel.declareQueue({ name: queue, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
    await early!.opened;
    expect((await declared).queue).toBe(queue);
    expect(sentBeforeFirstAnswer(frames.crossings, early!.channel.id)).toEqual([CHANNEL_OPEN, CONFIRM_SELECT, QUEUE_DECLARE]);
    await conn.close();
    expect(() => conn.openChannel?.()).toThrow(/closed/);
    expect(await rejection(early!.channel.declareQueue({ name: queue, durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false }))).toBeInstanceOf(ChannelError);
  });

  it('a channel opened during a recovery with no channel number left fails as createChannel does: a recoverable ChannelError', async () => {
    const conn = await amqpTransport.connect(params({ transportOptions: { channelMax: 1 } }), never);
    transportConnections.push(conn);
    await conn.createChannel(); // takes the only channel number (and teaches the confirm channel class)
    const created = await rejection(conn.createChannel());
    expect(created).toBeInstanceOf(ChannelError);
    expect(created.recoverable).toBe(true);
    let thrown: unknown;
    try {
      conn.openChannel?.();
    } catch (error) {
      thrown = error;
    }
    // A plain Error would end a recovering Channel for good (not recoverable) instead of retrying.
    expect(thrown).toBeInstanceOf(ChannelError);
    expect(thrown).toMatchObject({ recoverable: true });
  });
});

describe.skipIf(!reachable)('AMQP publishes released during a restore', () => {
  it('a publish released behind a restore the broker then refuses (recoverably) is sent again after the recovery, not failed with that refusal', async () => {
    const conn = new Connection(`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`);
    connections.push(conn);
    const channel = await conn.channel();
    const queue = unique('pipelined-locked');
    const declaration = { name: queue, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false };
    await channel.declareQueue(declaration);
    // Another connection takes the name as its exclusive queue: every restore of this
    // channel is refused with 405 RESOURCE_LOCKED (recoverable) until it lets go.
    const owner = await amqpTransport.connect(params(), never);
    transportConnections.push(owner);
    const admin = await owner.createChannel();
    await admin.deleteQueue(queue);
    await admin.declareQueue({ ...declaration, exclusive: true });

    const states: string[] = [];
    channel.on('state', ({ to }) => states.push(to));
    await rejection(channel.declareQueue({ ...declaration, name: unique('pipelined-missing'), passive: true }));
    for (let i = 0; i < 500 && !states.includes('retrying'); i++) await sleep(10);
    expect(states).toContain('retrying');

    // Waits for the channel; the next restore attempt releases it behind the refused queue.declare.
    const published = channel.publish(Buffer.from('kept'), {}, '', queue, { confirm: true });
    const settled = published.then(() => 'sent', (error: unknown) => error);
    const attempts = states.filter((s) => s === 'retrying').length;
    for (let i = 0; i < 1000 && states.filter((s) => s === 'retrying').length === attempts; i++) await sleep(10);
    expect(states.filter((s) => s === 'retrying').length).toBeGreaterThan(attempts);

    const recovered = new Promise<void>((resolve) => channel.once('recovered', () => resolve()));
    await owner.close(); // the exclusive queue goes with its connection: the next restore succeeds
    await recovered;
    expect(await settled).toBe('sent');
    try {
      expect((await channel.get(queue, { noAck: true }))?.message.body.toString()).toBe('kept');
    } finally {
      await channel.deleteQueue(queue).catch(() => undefined);
    }
  });
});
