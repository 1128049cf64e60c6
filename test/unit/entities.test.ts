import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../../src/channel.js';
import { DeclarationCache, maybeDeclare } from '../../src/common.js';
import { Connection } from '../../src/connection.js';
import { Exchange, Queue, binding, deliveryModeOf, toQueueArguments } from '../../src/entities.js';
import { ConfigurationError, NotBoundError } from '../../src/errors.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';
import type { ExchangeDeclaration, QueueDeclaration } from '../../src/transports/transport.js';

/** A Channel stand-in that records the calls entities make. */
function recordingChannel(): { channel: Channel; calls: unknown[][] } {
  const calls: unknown[][] = [];
  const fake = {
    declareExchange: async (d: ExchangeDeclaration) => void calls.push(['declareExchange', d.name, d.type, d.passive]),
    deleteExchange: async (name: string, o: unknown) => void calls.push(['deleteExchange', name, o]),
    declareQueue: async (d: QueueDeclaration) => {
      calls.push(['declareQueue', d.name, d.arguments, d.passive]);
      return { queue: d.name || 'amq.gen-xyz', messageCount: 0, consumerCount: 0 };
    },
    bindQueue: async (q: string, e: string, k: string, a?: unknown) => void calls.push(['bindQueue', q, e, k, a]),
    unbindQueue: async (q: string, e: string, k: string, a?: unknown) => void calls.push(['unbindQueue', q, e, k, a]),
    deleteQueue: async (q: string, o: unknown) => {
      calls.push(['deleteQueue', q, o]);
      return 0;
    },
    purgeQueue: async (q: string) => {
      calls.push(['purgeQueue', q]);
      return 2;
    },
    get: async () => undefined,
  };
  return { channel: fake as unknown as Channel, calls };
}

afterEach(() => resetMemoryBrokers());

describe('Exchange', () => {
  it('has kombu defaults and converts delivery modes', () => {
    const e = new Exchange('media');
    expect(e).toMatchObject({ name: 'media', type: 'direct', durable: true, autoDelete: false, passive: false, deliveryMode: undefined });
    expect(new Exchange('x', { deliveryMode: 'transient' }).deliveryMode).toBe(1);
    expect(new Exchange('x', { deliveryMode: 'persistent' }).deliveryMode).toBe(2);
    expect(deliveryModeOf(undefined)).toBe(2);
    expect(deliveryModeOf(1)).toBe(1);
    expect(() => deliveryModeOf('sometimes' as never)).toThrow(ConfigurationError);
  });

  it('is unbound until bind(channel), which returns a bound copy', async () => {
    const e = new Exchange('media', { type: 'topic' });
    expect(e.isBound).toBe(false);
    expect(() => e.channel).toThrow(NotBoundError);
    await expect(e.declare()).rejects.toBeInstanceOf(NotBoundError);
    const { channel, calls } = recordingChannel();
    const bound = e.bind(channel);
    expect(bound).not.toBe(e);
    expect(bound.isBound).toBe(true);
    expect(bound.maybeBind(recordingChannel().channel)).toBe(bound);
    expect(bound.equals(e)).toBe(true);
    await bound.declare();
    await bound.declare({ passive: true });
    await bound.delete({ ifUnused: true });
    expect(calls).toEqual([
      ['declareExchange', 'media', 'topic', false],
      ['declareExchange', 'media', 'topic', true],
      ['deleteExchange', 'media', { ifUnused: true }],
    ]);
  });

  it('never declares the default exchange, nor a noDeclare one', async () => {
    const { channel, calls } = recordingChannel();
    await new Exchange('').bind(channel).declare();
    await new Exchange('x', { noDeclare: true }).bind(channel).declare();
    expect(calls).toEqual([]);
  });

  it('caches declarations unless auto-delete', () => {
    expect(new Exchange('a').canCacheDeclaration).toBe(true);
    expect(new Exchange('a', { autoDelete: true }).canCacheDeclaration).toBe(false);
    expect(new Exchange('a').ident).toBe('E|a');
  });
});

describe('Queue', () => {
  it('converts kombu options into x- arguments (seconds to ms), over queueArguments', () => {
    const q = new Queue('q', {
      expires: 1.5,
      messageTtl: 0.25,
      maxLength: 10,
      maxLengthBytes: 1024,
      maxPriority: 9,
      arguments: { 'x-queue-mode': 'lazy', 'x-max-length': 1 },
      queueArguments: { 'x-dead-letter-exchange': 'dlx' },
    });
    expect(q.queueArguments).toEqual({
      'x-queue-mode': 'lazy',
      'x-dead-letter-exchange': 'dlx',
      'x-expires': 1500,
      'x-message-ttl': 250,
      'x-max-length': 10,
      'x-max-length-bytes': 1024,
      'x-max-priority': 9,
    });
    expect(toQueueArguments({ a: 1 }, {})).toEqual({ a: 1 });
    for (const bad of [{ expires: Number.NaN }, { messageTtl: Infinity }, { messageTtl: -1 }, { maxLength: 1.5 }, { maxPriority: -1 }, { maxLengthBytes: Number.NaN }]) {
      expect(() => toQueueArguments({}, bad), JSON.stringify(bad)).toThrow(ConfigurationError);
      expect(() => new Queue('q', bad), JSON.stringify(bad)).toThrow(/expires|messageTtl|maxLength|maxPriority|maxLengthBytes/);
    }
  });

  it('exclusive implies autoDelete; a string exchange becomes a direct Exchange', () => {
    const q = new Queue('q', { exclusive: true, exchange: 'tasks', routingKey: 'k' });
    expect(q.autoDelete).toBe(true);
    expect(q.exchange).toBeInstanceOf(Exchange);
    expect(q.exchange?.type).toBe('direct');
    expect(q.durable).toBe(true);
  });

  it('declare() declares the exchange, the queue, the binding and the extra bindings', async () => {
    const { channel, calls } = recordingChannel();
    const media = new Exchange('media', { type: 'topic' });
    const logs = new Exchange('logs');
    const q = new Queue('video', { exchange: media, routingKey: 'video.#', messageTtl: 1, bindingArguments: { a: 1 }, bindings: [binding(logs, { routingKey: 'error' })] });
    expect(await q.bind(channel).declare()).toBe('video');
    expect(calls).toEqual([
      ['declareExchange', 'media', 'topic', false],
      ['declareQueue', 'video', { 'x-message-ttl': 1000 }, false],
      ['bindQueue', 'video', 'media', 'video.#', { a: 1 }],
      ['declareExchange', 'logs', 'direct', false],
      ['bindQueue', 'video', 'logs', 'error', undefined],
    ]);
  });

  it('a queue on the default exchange is declared without exchange or binding', async () => {
    const { channel, calls } = recordingChannel();
    await new Queue('plain').bind(channel).declare();
    await new Queue('plain2', { exchange: '' }).bind(channel).declare();
    expect(calls.map((c) => c[0])).toEqual(['declareQueue', 'declareQueue']);
  });

  it('takes the name the broker gives, and exposes purge/delete/unbind/get', async () => {
    const { channel, calls } = recordingChannel();
    const q = new Queue('', { exchange: 'x', routingKey: 'k' }).bind(channel);
    expect(q.canCacheDeclaration).toBe(false);
    await q.declare();
    expect(q.name).toBe('amq.gen-xyz');
    expect(await q.purge()).toBe(2);
    await q.unbind();
    expect(await q.delete({ ifEmpty: true })).toBe(0);
    expect(await q.get()).toBeUndefined();
    expect(calls.slice(-3)).toEqual([
      ['purgeQueue', 'amq.gen-xyz'],
      ['unbindQueue', 'amq.gen-xyz', 'x', 'k', undefined],
      ['deleteQueue', 'amq.gen-xyz', { ifEmpty: true }],
    ]);
  });

  it('throws NotBoundError when unbound', async () => {
    const q = new Queue('q');
    expect(() => q.channel).toThrow(NotBoundError);
    await expect(q.get()).rejects.toBeInstanceOf(NotBoundError);
    await expect(q.purge()).rejects.toBeInstanceOf(NotBoundError);
  });

  it('does not cache auto-delete or expiring queues', () => {
    expect(new Queue('q').canCacheDeclaration).toBe(true);
    expect(new Queue('q', { autoDelete: true }).canCacheDeclaration).toBe(false);
    expect(new Queue('q', { expires: 10 }).canCacheDeclaration).toBe(false);
  });
});

describe('maybeDeclare', () => {
  it('shares declarations in flight and forgets on clear()', async () => {
    const cache = new DeclarationCache();
    let runs = 0;
    const declare = async (): Promise<void> => {
      runs++;
      await new Promise((r) => setTimeout(r, 5));
    };
    const results = await Promise.all([cache.declare('E|a', declare), cache.declare('E|a', declare)]);
    expect(results).toEqual([true, false]);
    expect(runs).toBe(1);
    expect(await cache.declare('E|a', declare)).toBe(false);
    cache.clear();
    expect(await cache.declare('E|a', declare)).toBe(true);
    expect(runs).toBe(2);
  });

  it('caches per connection, binds unbound entities and names server-named queues', async () => {
    getMemoryBroker('entities');
    const conn = new Connection('memory://entities');
    const channel = await conn.channel();
    const other = new Connection('memory://entities');
    const exchange = new Exchange('cached');
    expect(await maybeDeclare(exchange, channel)).toBe(true);
    expect(await maybeDeclare(exchange, channel)).toBe(false);
    expect(await maybeDeclare(exchange, await other.channel())).toBe(true);
    const unnamed = new Queue('', { exclusive: true });
    expect(await maybeDeclare(unnamed, channel)).toBe(true);
    expect(unnamed.name).toMatch(/.+/);
    const auto = new Queue('auto', { autoDelete: true });
    expect(await maybeDeclare(auto, channel)).toBe(true);
    expect(await maybeDeclare(auto, channel)).toBe(true);
    expect(await maybeDeclare(exchange.bind(channel), undefined, { retry: true })).toBe(false);
    await conn.close();
    await other.close();
  });

  it('is cleared when the connection is lost and regained', async () => {
    const broker = getMemoryBroker('entities-reconnect');
    const conn = new Connection('memory://entities-reconnect');
    const channel = await conn.channel();
    await maybeDeclare(new Exchange('e'), channel);
    expect(conn.declaredEntities.has('E|e')).toBe(true);
    const back = new Promise((resolve) => conn.once('connected', resolve));
    broker.dropConnections();
    expect(conn.declaredEntities.size).toBe(0);
    await back;
    expect(await maybeDeclare(new Exchange('e'), channel)).toBe(true);
    await conn.close();
  });
});
