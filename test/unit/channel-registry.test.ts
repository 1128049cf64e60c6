/**
 * ChannelRegistry.restore: the order of its calls (all made at once), what waits for a
 * server-named queue's new name, when publishes may go (`routed`), and which error a failed
 * restore reports (restoreFailure). Plus the same through a whole recovery on memory://: a
 * server-named queue with its binding and consumer, and a publish made during the outage.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelRegistry, restoreFailure } from '../../src/channel-registry.js';
import { ChannelError, Connection, ConnectionError } from '../../src/index.js';
import { getMemoryBroker, memoryTransport, resetMemoryBrokers } from '../../src/transports/memory.js';
import type { QueueDeclaration, QueueDeclareOk, TransportChannel } from '../../src/transports/transport.js';

const declaration = (name: string, overrides: Partial<QueueDeclaration> = {}): QueueDeclaration => ({
  name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false, ...overrides,
});

/** A transport channel that records each call as it is made and answers when told to. */
function recordingChannel() {
  const calls: string[] = [];
  const answers: (() => void)[] = [];
  let serverNamed = 0;
  const call = <T>(what: string, value: T): Promise<T> => {
    calls.push(what);
    return new Promise<T>((resolve) => answers.push(() => resolve(value)));
  };
  const channel = {
    declareExchange: (d: { name: string }) => call(`exchange ${d.name}`, undefined),
    declareQueue: (d: QueueDeclaration) =>
      call<QueueDeclareOk>(`queue ${d.name || "''"}`, { queue: d.name || `amq.gen-${++serverNamed}`, messageCount: 0, consumerCount: 0 }),
    qos: (count: number) => call(`qos ${count}`, undefined),
    bindQueue: (queue: string, exchange: string, routingKey: string) => call(`bind ${queue} ${exchange} ${routingKey}`, undefined),
    consume: (queue: string, options: { consumerTag?: string }) => call(`consume ${queue} ${options.consumerTag}`, options.consumerTag ?? ''),
    cancel: (tag: string) => call(`cancel ${tag}`, undefined),
  } as unknown as TransportChannel;
  return {
    channel,
    calls,
    /** Answers every call made so far, in order, and lets their continuations run. */
    answerAll: async () => {
      for (let round = 0; round < 10; round++) {
        for (const answer of answers.splice(0)) answer();
        await new Promise((resolve) => setImmediate(resolve));
      }
    },
  };
}

describe('ChannelRegistry.restore', () => {
  it('makes every call at once, in order: exchanges, qos, queues, bindings, then consumers; publishes may go after the bindings', async () => {
    const registry = new ChannelRegistry<() => void>();
    registry.exchangeDeclared({ name: 'x', type: 'direct', durable: false, autoDelete: false, arguments: {}, passive: false });
    registry.qos(10, undefined, undefined);
    registry.queueDeclared(declaration('a'), { queue: 'a', messageCount: 0, consumerCount: 0 });
    registry.queueDeclared(declaration('b'), { queue: 'b', messageCount: 0, consumerCount: 0 });
    registry.bound('a', 'x', 'ka', undefined);
    registry.bound('b', 'x', 'kb', undefined);
    registry.consumerAdded('t1', 'a', { consumerTag: '', noAck: false }, () => undefined);
    registry.consumerAdded('t2', 'b', { consumerTag: '', noAck: false }, () => undefined);
    const { channel, calls, answerAll } = recordingChannel();
    let routedAfter = -1;
    const restored = registry.restore(channel, (h) => h, () => (routedAfter = calls.length));
    await Promise.resolve();
    // Nothing was answered yet, and everything was sent.
    expect(calls).toEqual(['exchange x', 'qos 10', 'queue a', 'queue b', 'bind a x ka', 'bind b x kb', 'consume a t1', 'consume b t2']);
    expect(routedAfter).toBe(6);
    await answerAll();
    await restored;
  });

  it("waits for a server-named queue's declaration only for what needs its new name", async () => {
    const registry = new ChannelRegistry<() => void>();
    registry.queueDeclared(declaration(''), { queue: 'amq.gen-old', messageCount: 0, consumerCount: 0 });
    registry.queueDeclared(declaration('named'), { queue: 'named', messageCount: 0, consumerCount: 0 });
    registry.bound('amq.gen-old', 'amq.direct', 'k1', undefined);
    registry.bound('named', 'amq.direct', 'k2', undefined);
    registry.consumerAdded('t1', 'amq.gen-old', { consumerTag: '', noAck: true }, () => undefined);
    const { channel, calls, answerAll } = recordingChannel();
    let routed = false;
    const restored = registry.restore(channel, (h) => h, () => (routed = true));
    await Promise.resolve();
    expect(calls).toEqual(["queue ''", 'queue named', 'bind named amq.direct k2']);
    expect(routed).toBe(false);
    await answerAll();
    await restored;
    expect(calls.slice(3)).toEqual(['bind amq.gen-1 amq.direct k1', 'consume amq.gen-1 t1']);
    expect(routed).toBe(true);
    expect(registry.nameOf('amq.gen-old')).toBe('amq.gen-1');
  });
});

describe('restoreFailure', () => {
  const refusal = (classId: number, methodId: number, code = 406) =>
    new ChannelError(`refused ${classId}.${methodId}`, { code, classId, methodId, recoverable: false });

  it("prefers the broker's refusal of one of the restore's calls, whatever came first", () => {
    const overtaken = new ChannelError('overtaken', { recoverable: true });
    const declare = refusal(50, 10);
    expect(restoreFailure([overtaken, declare])).toBe(declare);
    const consume = refusal(60, 20, 403);
    expect(restoreFailure([consume])).toBe(consume);
  });

  it('makes a refusal of other traffic (a publish, an ack) recoverable: the channel was lost, not refused', () => {
    for (const [classId, methodId] of [[60, 40], [60, 80]] as const) {
      const error = restoreFailure([refusal(classId, methodId, 404)]) as ChannelError;
      expect(error).toBeInstanceOf(ChannelError);
      expect(error).toMatchObject({ recoverable: true, code: 404, classId, methodId });
    }
  });

  it('retries a consumer refused because its queue is in exclusive use (the old connection the broker still holds)', () => {
    const inUse = new ChannelError("Channel 1 closed by the broker (403 ACCESS_REFUSED, on basic.consume): ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use", {
      code: 403, classId: 60, methodId: 20, recoverable: false,
    });
    expect(restoreFailure([inUse])).toMatchObject({ recoverable: true, code: 403, classId: 60, methodId: 20 });
    // Any other 403 on basic.consume stays final.
    expect(restoreFailure([refusal(60, 20, 403)])).toMatchObject({ recoverable: false });
  });

  it('leaves connection errors and errors naming no method as they are', () => {
    const lost = new ConnectionError('lost');
    expect(restoreFailure([lost])).toBe(lost);
    const plain = new ChannelError('no method', { recoverable: false });
    expect(restoreFailure([plain])).toBe(plain);
  });
});

describe('A recovery on memory://', () => {
  afterEach(() => resetMemoryBrokers());

  it('brings back a server-named queue under a new name, with its binding and consumer; a publish made during the outage reaches it', async () => {
    const conn = new Connection('memory://renamed-restore', { retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.03 } });
    try {
      const channel = await conn.channel();
      const ok = await channel.declareQueue(declaration('', { exclusive: true }));
      await channel.bindQueue(ok.queue, 'amq.direct', 'renamed');
      const got: string[] = [];
      await channel.consume(ok.queue, { consumerTag: '', noAck: true }, (message) => got.push(message.body.toString()));
      const recovered = new Promise<void>((resolve) => channel.once('recovered', () => resolve()));
      getMemoryBroker('renamed-restore').dropConnections();
      const published = channel.publish(Buffer.from('during'), {}, 'amq.direct', 'renamed');
      await recovered;
      await published;
      for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(got).toEqual(['during']);
      expect(getMemoryBroker('renamed-restore').queueInfo(ok.queue)).toBeUndefined(); // exclusive: gone with the old connection
    } finally {
      await conn.close();
    }
  });
});
