import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChannelError } from '../../../src/errors.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../../src/transports/memory.js';
import type { RawMessage, TransportChannel } from '../../../src/transports/transport.js';
import { flush, openChannel, queue, send } from './memory-helpers.js';

afterEach(() => resetMemoryBrokers());

function collect(into: RawMessage[]): (m: RawMessage) => void {
  return (m) => into.push(m);
}

const bodies = (ms: RawMessage[]) => ms.map((m) => m.body.toString());

async function fill(ch: TransportChannel, name: string, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) await send(ch, String(i), '', name);
}

describe('consume', () => {
  it('delivers asynchronously, never inside publish', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const got: RawMessage[] = [];
    const tag = await ch.consume('q', { consumerTag: 'mine', noAck: true }, collect(got));
    expect(tag).toBe('mine');
    const publishing = send(ch, 'a', '', 'q');
    expect(got).toHaveLength(0);
    await publishing;
    await flush();
    expect(got[0]?.deliveryInfo).toEqual({ exchange: '', routingKey: 'q', consumerTag: 'mine', deliveryTag: 1, redelivered: false });
  });

  it('generates a consumer tag when given none', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    expect(await ch.consume('q', { consumerTag: '', noAck: true }, () => undefined)).toMatch(/^amq\.ctag-/);
  });

  it('round-robins among the consumers of a queue', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const a: RawMessage[] = [];
    const b: RawMessage[] = [];
    await ch.consume('q', { consumerTag: 'a', noAck: true }, collect(a));
    const ch2 = await conn.createChannel();
    await ch2.consume('q', { consumerTag: 'b', noAck: true }, collect(b));
    await fill(ch, 'q', 4);
    await flush();
    expect(bodies(a)).toEqual(['1', '3']);
    expect(bodies(b)).toEqual(['2', '4']);
  });

  it('honours prefetch per channel; noAck deliveries do not count', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 5);
    await ch.qos(2);
    const got: RawMessage[] = [];
    await ch.consume('q', { consumerTag: 'c', noAck: false }, collect(got));
    await flush();
    expect(bodies(got)).toEqual(['1', '2']);
    ch.ack(got[0]!.deliveryInfo.deliveryTag);
    await flush();
    expect(bodies(got)).toEqual(['1', '2', '3']);
    ch.ack(got[2]!.deliveryInfo.deliveryTag, true);
    await flush();
    expect(bodies(got)).toEqual(['1', '2', '3', '4', '5']);

    const ch2 = await conn.createChannel();
    await ch2.declareQueue(queue('free'));
    await fill(ch2, 'free', 5);
    await ch2.qos(1);
    const free: RawMessage[] = [];
    await ch2.consume('free', { consumerTag: 'f', noAck: true }, collect(free));
    await flush();
    expect(free).toHaveLength(5);
  });

  it('prefetch limits each consumer (RabbitMQ), or the channel as a whole with global', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('a'));
    await ch.declareQueue(queue('b'));
    await fill(ch, 'a', 3);
    await fill(ch, 'b', 3);
    await ch.qos(2);
    const got: RawMessage[] = [];
    await ch.consume('a', { consumerTag: 'ca', noAck: false }, collect(got));
    await ch.consume('b', { consumerTag: 'cb', noAck: false }, collect(got));
    await flush();
    expect(got).toHaveLength(4);
    await ch.close();

    const shared = await conn.createChannel();
    await shared.qos(3, 0, true);
    const all: RawMessage[] = [];
    await shared.consume('a', { consumerTag: 'ga', noAck: false }, collect(all));
    await shared.consume('b', { consumerTag: 'gb', noAck: false }, collect(all));
    await flush();
    expect(all).toHaveLength(3);
  });

  it('requeues rejected messages at the head, flagged redelivered', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 2);
    const first = await ch.get('q', { noAck: false });
    expect(first?.deliveryInfo.redelivered).toBe(false);
    ch.reject(first!.deliveryInfo.deliveryTag, true);
    const again = await ch.get('q', { noAck: false });
    expect(again?.body.toString()).toBe('1');
    expect(again?.deliveryInfo).toMatchObject({ redelivered: true, deliveryTag: 2 });
    ch.reject(again!.deliveryInfo.deliveryTag, false);
    expect((await ch.get('q', { noAck: true }))?.body.toString()).toBe('2');
  });

  it('closes the channel with 406 on an unknown or twice-acked delivery tag', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 1);
    const m = await ch.get('q', { noAck: false });
    const closed: unknown[] = [];
    ch.on('close', (e) => closed.push(e));
    ch.ack(m!.deliveryInfo.deliveryTag);
    ch.ack(m!.deliveryInfo.deliveryTag);
    expect(ch.isOpen).toBe(false);
    expect(closed[0]).toBeInstanceOf(ChannelError);
    expect(closed[0]).toMatchObject({ code: 406, classId: 60, methodId: 80 });
    const ch2 = await conn.createChannel();
    ch2.reject(99, true);
    expect(ch2.isOpen).toBe(false);
  });

  it('ack(0, multiple) acks every outstanding delivery', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 3);
    await ch.qos(3);
    const got: RawMessage[] = [];
    await ch.consume('q', { consumerTag: 'c', noAck: false }, collect(got));
    await flush();
    ch.ack(0, true);
    await ch.close();
    expect(getMemoryBroker('unit').queueInfo('q')?.messageCount).toBe(0);
  });

  it('recover() redelivers the unacked messages of the channel', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 3);
    const got: RawMessage[] = [];
    await ch.consume('q', { consumerTag: 'c', noAck: false }, collect(got));
    await flush();
    expect(got).toHaveLength(3);
    await ch.recover(true);
    await flush();
    expect(bodies(got)).toEqual(['1', '2', '3', '1', '2', '3']);
    expect(got.slice(3).every((m) => m.deliveryInfo.redelivered)).toBe(true);
    expect(got.map((m) => m.deliveryInfo.deliveryTag)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('returns unacked messages, in order, when the channel closes', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 3);
    await ch.qos(2);
    await ch.consume('q', { consumerTag: 'c', noAck: false }, () => undefined);
    await flush();
    expect(getMemoryBroker('unit').queueInfo('q')?.messageCount).toBe(1);
    await ch.close();
    const ch2 = await conn.createChannel();
    const first = await ch2.get('q', { noAck: true });
    expect(first?.body.toString()).toBe('1');
    expect(first?.deliveryInfo.redelivered).toBe(true);
    expect((await ch2.get('q', { noAck: true }))?.deliveryInfo.redelivered).toBe(true);
    expect((await ch2.get('q', { noAck: true }))?.deliveryInfo.redelivered).toBe(false);
  });

  it('returns unacked messages when the broker drops the connection', async () => {
    const broker = getMemoryBroker('unit');
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await fill(ch, 'q', 2);
    await ch.consume('q', { consumerTag: 'c', noAck: false }, () => undefined);
    await flush();
    expect(broker.queueInfo('q')).toEqual({ queue: 'q', messageCount: 0, consumerCount: 1 });
    broker.dropConnections();
    expect(broker.queueInfo('q')).toEqual({ queue: 'q', messageCount: 2, consumerCount: 0 });
  });

  it('cancel() stops deliveries and keeps the unacked ones ackable', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const got: RawMessage[] = [];
    await ch.consume('q', { consumerTag: 'c', noAck: false }, collect(got));
    await fill(ch, 'q', 1);
    await flush();
    await ch.cancel('c');
    await ch.cancel('c');
    await fill(ch, 'q', 1);
    await flush();
    expect(got).toHaveLength(1);
    ch.ack(got[0]!.deliveryInfo.deliveryTag);
    expect(ch.isOpen).toBe(true);
  });

  it('emits cancel when the broker deletes a consumed queue', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const cancelled: string[] = [];
    ch.on('cancel', (tag) => cancelled.push(tag));
    await ch.consume('q', { consumerTag: 'c1', noAck: true }, () => undefined);
    await ch.consume('q', { consumerTag: 'c2', noAck: true }, () => undefined);
    const other = await conn.createChannel();
    await other.deleteQueue('q');
    expect(cancelled).toEqual(['c1', 'c2']);
    expect(ch.isOpen).toBe(true);
  });

  it('deletes an auto-delete queue when its last consumer cancels', async () => {
    const broker = getMemoryBroker('unit');
    const { ch } = await openChannel();
    await ch.declareQueue(queue('auto', { autoDelete: true }));
    await ch.consume('auto', { consumerTag: 'a', noAck: true }, () => undefined);
    await ch.consume('auto', { consumerTag: 'b', noAck: true }, () => undefined);
    await ch.cancel('a');
    expect(broker.queueInfo('auto')).toBeDefined();
    await ch.cancel('b');
    expect(broker.queueInfo('auto')).toBeUndefined();
  });

  it('refuses a second consumer next to an exclusive one (403) and a reused tag (530)', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await ch.consume('q', { consumerTag: 'x', noAck: true, exclusive: true }, () => undefined);
    const ch2 = await conn.createChannel();
    await expect(ch2.consume('q', { consumerTag: 'y', noAck: true }, () => undefined)).rejects.toMatchObject({ code: 403 });
    await expect(ch.consume('q', { consumerTag: 'x', noAck: true }, () => undefined)).rejects.toMatchObject({ code: 530 });
  });

  it('consuming a missing queue fails 404', async () => {
    const { ch } = await openChannel();
    await expect(ch.consume('nope', { consumerTag: 'c', noAck: true }, () => undefined)).rejects.toMatchObject({ code: 404, classId: 60, methodId: 20 });
  });

  it('keeps delivering large backlogs across pump batches', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('big'));
    for (let i = 0; i < 2500; i++) await send(ch, String(i), '', 'big');
    const got: RawMessage[] = [];
    await ch.consume('big', { consumerTag: 'c', noAck: true }, collect(got));
    // Eventually, however loaded the machine: this is about batches, not speed.
    await vi.waitFor(() => expect(got).toHaveLength(2500), { timeout: 10_000, interval: 5 });
    expect(got[2499]?.body.toString()).toBe('2499');
  });
});
