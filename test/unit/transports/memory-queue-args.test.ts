import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker, resetMemoryBrokers } from '../../../src/transports/memory.js';
import { MemoryQueue } from '../../../src/transports/memory-queue.js';
import type { DeathEntry } from '../../../src/transports/memory-routing.js';
import type { RawMessage } from '../../../src/transports/transport.js';
import { drain, exchange, flush, openChannel, queue, send } from './memory-helpers.js';

const standalone: MemoryBroker[] = [];

afterEach(() => {
  vi.useRealTimers();
  resetMemoryBrokers();
  for (const broker of standalone.splice(0)) broker.reset();
});

/** A standalone broker on a hand-driven clock, reached through transportOptions.broker. */
async function onClock() {
  const clock = { now: 1_000_000 };
  const broker = new MemoryBroker('clocked', { now: () => clock.now });
  standalone.push(broker);
  const { conn, ch } = await openChannel({ transportOptions: { broker } });
  return { clock, broker, conn, ch };
}

describe('x-max-priority', () => {
  it('delivers higher priorities first, capped at the maximum, FIFO within a level', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('p', { arguments: { 'x-max-priority': 5 } }));
    await send(ch, 'low', '', 'p', { priority: 1 });
    await send(ch, 'none', '', 'p');
    await send(ch, 'capped', '', 'p', { priority: 200 });
    await send(ch, 'five', '', 'p', { priority: 5 });
    await send(ch, 'mid', '', 'p', { priority: 3 });
    expect(await drain(ch, 'p')).toEqual(['capped', 'five', 'mid', 'low', 'none']);
  });

  it('ignores priorities on a queue without x-max-priority', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('plain'));
    await send(ch, 'a', '', 'plain', { priority: 1 });
    await send(ch, 'b', '', 'plain', { priority: 9 });
    expect(await drain(ch, 'plain')).toEqual(['a', 'b']);
  });

  it('requeues to the head of the message priority level', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('p', { arguments: { 'x-max-priority': 2 } }));
    await send(ch, 'hi', '', 'p', { priority: 2 });
    await send(ch, 'lo', '', 'p', { priority: 0 });
    const m = await ch.get('p', { noAck: false });
    await send(ch, 'hi2', '', 'p', { priority: 2 });
    ch.reject(m!.deliveryInfo.deliveryTag, true);
    expect(await drain(ch, 'p')).toEqual(['hi', 'hi2', 'lo']);
  });
});

describe('TTL', () => {
  it('expires messages by x-message-ttl and per-message expiration, lazily', async () => {
    const { clock, ch } = await onClock();
    await ch.declareQueue(queue('t', { arguments: { 'x-message-ttl': 1000 } }));
    await send(ch, 'queue-ttl', '', 't');
    await send(ch, 'short', '', 't', { expiration: '100' });
    await send(ch, 'long', '', 't', { expiration: '5000' });
    clock.now += 500;
    expect(await ch.declareQueue(queue('t', { passive: true }))).toMatchObject({ messageCount: 2 });
    clock.now += 500;
    expect(await drain(ch, 't')).toEqual([]);
  });

  it('works with vi.setSystemTime on the default clock', async () => {
    vi.useFakeTimers({ now: new Date('2024-01-01T00:00:00Z') });
    const { ch } = await openChannel();
    await ch.declareQueue(queue('t'));
    await send(ch, 'old', '', 't', { expiration: '60000' });
    await send(ch, 'keep', '', 't');
    vi.setSystemTime(new Date('2024-01-01T00:01:00Z'));
    expect(await drain(ch, 't')).toEqual(['keep']);
  });

  it('refuses an expiration that is not a number of ms (406)', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('t'));
    await expect(send(ch, 'x', '', 't', { expiration: 'soon' })).rejects.toMatchObject({ code: 406 });
  });

  it('dead-letters expired messages with an x-death header and no expiration', async () => {
    const { clock, ch } = await onClock();
    await ch.declareExchange(exchange('dlx', 'fanout'));
    await ch.declareQueue(queue('dead'));
    await ch.bindQueue('dead', 'dlx', '');
    await ch.declareQueue(queue('t', { arguments: { 'x-dead-letter-exchange': 'dlx' } }));
    await send(ch, 'gone', '', 't', { expiration: '10', headers: { keep: 1 } });
    clock.now += 10;
    expect(await ch.get('t', { noAck: true })).toBeUndefined();
    const dead = await ch.get('dead', { noAck: true });
    expect(dead?.body.toString()).toBe('gone');
    expect(dead?.properties.expiration).toBeUndefined();
    expect(dead?.properties.headers).toMatchObject({ keep: 1, 'x-first-death-reason': 'expired', 'x-first-death-queue': 't' });
    const deaths = dead?.properties.headers?.['x-death'] as DeathEntry[];
    expect(deaths[0]).toMatchObject({ queue: 't', reason: 'expired', count: 1, exchange: '', 'routing-keys': ['t'], 'original-expiration': '10' });
  });

  it('deletes a queue unused for x-expires ms', async () => {
    const { clock, broker, ch } = await onClock();
    await ch.declareQueue(queue('tmp', { arguments: { 'x-expires': 1000 } }));
    clock.now += 999;
    expect(broker.queueInfo('tmp')).toBeDefined();
    clock.now += 1000;
    expect(broker.queueInfo('tmp')).toBeUndefined();
  });
});

describe('x-max-length and dead-lettering', () => {
  it('drops from the head and dead-letters the dropped messages', async () => {
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('dlx', 'direct'));
    await ch.declareQueue(queue('overflow'));
    await ch.bindQueue('overflow', 'dlx', 'spill');
    await ch.declareQueue(queue('bounded', { arguments: { 'x-max-length': 2, 'x-dead-letter-exchange': 'dlx', 'x-dead-letter-routing-key': 'spill' } }));
    for (const b of ['1', '2', '3', '4']) await send(ch, b, '', 'bounded');
    expect(await drain(ch, 'bounded')).toEqual(['3', '4']);
    const spilled = await ch.get('overflow', { noAck: true });
    expect(spilled?.body.toString()).toBe('1');
    expect(spilled?.deliveryInfo).toMatchObject({ exchange: 'dlx', routingKey: 'spill' });
    expect((spilled?.properties.headers?.['x-death'] as DeathEntry[])[0]).toMatchObject({ reason: 'maxlen', queue: 'bounded' });
    expect(await drain(ch, 'overflow')).toEqual(['2']);
  });

  it('drops (without DLX) the oldest message', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('bounded', { arguments: { 'x-max-length': 1 } }));
    await send(ch, 'a', '', 'bounded');
    await send(ch, 'b', '', 'bounded');
    expect(await drain(ch, 'bounded')).toEqual(['b']);
  });

  it('dead-letters rejected messages (requeue: false) with the original routing key', async () => {
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('dlx', 'topic'));
    await ch.declareQueue(queue('rejects'));
    await ch.bindQueue('rejects', 'dlx', '#');
    await ch.declareQueue(queue('work', { arguments: { 'x-dead-letter-exchange': 'dlx' } }));
    await send(ch, 'bad', '', 'work');
    const got: RawMessage[] = [];
    await ch.consume('work', { consumerTag: 'w', noAck: false }, (m) => got.push(m));
    await flush();
    ch.reject(got[0]!.deliveryInfo.deliveryTag, false);
    const dead = await ch.get('rejects', { noAck: true });
    expect(dead?.deliveryInfo).toMatchObject({ exchange: 'dlx', routingKey: 'work', redelivered: false });
    expect((dead?.properties.headers?.['x-death'] as DeathEntry[])[0]).toMatchObject({ reason: 'rejected', queue: 'work', count: 1 });
  });

  it('counts repeated deaths and drops messages caught in an expiry cycle', async () => {
    const { clock, ch } = await onClock();
    await ch.declareExchange(exchange('dlx', 'direct'));
    await ch.declareQueue(queue('loop', { arguments: { 'x-dead-letter-exchange': 'dlx', 'x-message-ttl': 10 } }));
    await ch.bindQueue('loop', 'dlx', 'loop');
    await send(ch, 'circling', '', 'loop');
    clock.now += 10;
    expect(await ch.get('loop', { noAck: true })).toBeUndefined();

    await ch.declareQueue(queue('retry', { arguments: { 'x-dead-letter-exchange': 'dlx' } }));
    await ch.bindQueue('retry', 'dlx', 'retry');
    await send(ch, 'again', '', 'retry');
    for (let i = 0; i < 2; i++) {
      const m = await ch.get('retry', { noAck: false });
      ch.reject(m!.deliveryInfo.deliveryTag, false);
    }
    const last = await ch.get('retry', { noAck: true });
    expect((last?.properties.headers?.['x-death'] as DeathEntry[])[0]).toMatchObject({ reason: 'rejected', count: 2 });
  });
});

describe('a message TTL past Node\'s timer limit (~24.8 days)', () => {
  it('arms one expiry timer that waits, instead of re-checking every 1 ms', async () => {
    const expireHeads = vi.spyOn(MemoryQueue.prototype, 'expireHeads');
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('dlx-long', 'fanout'));
    await ch.declareQueue(queue('long-ttl', { arguments: { 'x-dead-letter-exchange': 'dlx-long', 'x-message-ttl': 30 * 24 * 3600 * 1000 } }));
    await send(ch, 'kept', '', 'long-ttl');
    const calls = expireHeads.mock.calls.length;
    await new Promise((r) => setTimeout(r, 30));
    expect(expireHeads.mock.calls.length).toBe(calls);
    expect((await ch.get('long-ttl', { noAck: true }))?.body.toString()).toBe('kept');
    expireHeads.mockRestore();
  });
});
