/**
 * Channel recovery after a lost connection, on memory://, some with a transport whose
 * consumer restores can be held: acks while later consumers are still being restored, what a
 * broker error met in that window does, a consumer cancelled in it, and publishes in it (with
 * and without flow control). Also a consumer resumed after the broker cancelled it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, Connection, type ChannelState } from '../../src/index.js';
import { getMemoryBroker, memoryTransport, resetMemoryBrokers } from '../../src/transports/memory.js';
import type { ConsumeOptions, QueueDeclaration, RawMessage, Transport, TransportChannel } from '../../src/transports/transport.js';
import { reaches } from '../helpers/channel-states.js';

/** memory:// whose channels hold each `consume` on a held queue until released (or fail it). */
function holdingTransport() {
  const held = new Set<string>();
  const waiting: { queue: string; release: () => void; fail: (error: Error) => void }[] = [];
  const done: Promise<unknown>[] = [];
  let reached: (() => void) | undefined;
  const transport: Transport = {
    ...memoryTransport,
    async connect(params, signal) {
      const connection = await memoryTransport.connect(params, signal);
      const createChannel = connection.createChannel.bind(connection);
      connection.createChannel = async (): Promise<TransportChannel> => {
        const channel = await createChannel();
        const consume = channel.consume.bind(channel);
        channel.consume = async (queue: string, options: ConsumeOptions, onMessage: (message: RawMessage) => void) => {
          if (!held.has(queue)) return consume(queue, options, onMessage);
          const consumed = new Promise<void>((release, fail) => {
            waiting.push({ queue, release, fail });
            reached?.();
          }).then(() => consume(queue, options, onMessage));
          done.push(consumed.catch(() => undefined));
          return consumed;
        };
        return channel;
      };
      return connection;
    },
  };
  return {
    transport,
    hold: (queue: string) => held.add(queue),
    /** Resolves once a held consume is waiting. */
    reached: () => (waiting.length > 0 ? Promise.resolve() : new Promise<void>((resolve) => (reached = resolve))),
    releaseAll: () => {
      held.clear();
      for (const w of waiting.splice(0)) w.release();
    },
    failNext: (error: Error) => waiting.shift()?.fail(error),
    /** The queues whose consume is being held, in the order they were asked. */
    waiting: () => waiting.map((w) => w.queue),
    /** Resolves once every held consume that was released has settled. */
    settled: () => Promise.all(done),
  };
}

const open: Connection[] = [];
function connection(url: string, transport: Transport): Connection {
  const conn = new Connection(url, { transport, retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.03 } });
  open.push(conn);
  return conn;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

const declaration = (name: string, overrides: Partial<QueueDeclaration> = {}): QueueDeclaration => ({
  name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false, ...overrides,
});

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};


/**
 * A channel on memory://`name` consuming queue `name` (no acks), whose connection was just
 * dropped: its recovery is under way, held at the consumer's restore.
 */
async function heldAtConsumerRestore(name: string) {
  const held = holdingTransport();
  const conn = connection(`memory://${name}`, held.transport);
  const channel = await conn.channel();
  await channel.declareQueue(declaration(name));
  const tag = await channel.consume(name, { consumerTag: '', noAck: true }, () => undefined);
  held.hold(name);
  getMemoryBroker(name).dropConnections();
  await held.reached();
  return { ...held, channel, tag };
}

describe('Channel recovery after a lost connection', () => {
  it('sends acks of deliveries that arrive while later consumers are still being restored', async () => {
    const { transport, hold, reached, releaseAll } = holdingTransport();
    const conn = connection('memory://acks', transport);
    const channel = await conn.channel();
    await channel.declareQueue(declaration('first'));
    await channel.declareQueue(declaration('second'));
    await channel.qos(1);
    const acked: boolean[] = [];
    let twoDuringRecovery: () => void = () => undefined;
    const both = new Promise<void>((resolve) => (twoDuringRecovery = resolve));
    await channel.consume('first', { consumerTag: '', noAck: false }, (message, epoch) => {
      if (channel.epoch < 2) return; // left unacked: the broker requeues it on the drop
      acked.push(channel.ack(message.deliveryInfo.deliveryTag, false, epoch));
      if (acked.length === 2) twoDuringRecovery();
    });
    await channel.consume('second', { consumerTag: '', noAck: false }, () => undefined);
    await channel.publish(Buffer.from('1'), {}, '', 'first');
    await channel.publish(Buffer.from('2'), {}, '', 'first');
    hold('second');
    getMemoryBroker('acks').dropConnections();
    await reached();
    // With prefetch 1 the second message only comes once the first one's ack reached the broker.
    await both;
    expect(acked).toEqual([true, true]);
    expect(channel.state).toBe('recovering');
    releaseAll();
    await reaches(channel, 'open');
  });

  it('sends waiting publishes once declarations are restored, without waiting for the consumers', async () => {
    const { channel, releaseAll } = await heldAtConsumerRestore('early');
    expect(channel.state).toBe('recovering');
    // The consumer's restore is held: the publish still goes, and lands.
    await channel.publish(Buffer.from('during'), {}, '', 'early');
    expect(channel.state).toBe('recovering');
    expect(getMemoryBroker('early').queueInfo('early')?.messageCount).toBe(1);
    releaseAll();
    await reaches(channel, 'open');
  });

  it('once the publishes that waited through the outage have gone, later ones go straight on while consumers are restored', async () => {
    const { transport, hold, reached, releaseAll } = holdingTransport();
    const conn = connection('memory://after-waiters', transport);
    const channel = await conn.channel();
    await channel.declareQueue(declaration('after-waiters'));
    await channel.consume('after-waiters', { consumerTag: '', noAck: true }, () => undefined);
    hold('after-waiters');
    const broker = getMemoryBroker('after-waiters');
    broker.refuseConnections = true;
    broker.dropConnections();
    const first = channel.publish(Buffer.from('1'), {}, '', 'after-waiters'); // waits through the outage
    broker.refuseConnections = false;
    await reached();
    await first;
    expect(channel.state).toBe('recovering');
    await channel.publish(Buffer.from('2'), {}, '', 'after-waiters');
    expect(channel.state).toBe('recovering');
    expect(broker.queueInfo('after-waiters')?.messageCount).toBe(2);
    releaseAll();
    await reaches(channel, 'open');
  });

  it('keeps a publish made during a recovery behind a declaration asked for before it', async () => {
    const { channel, releaseAll } = await heldAtConsumerRestore('order');
    const settled: string[] = [];
    const declared = channel.declareQueue(declaration('order-new')).then(() => settled.push('declare'));
    const published = channel.publish(Buffer.from('x'), {}, '', 'order-new').then(() => settled.push('publish'));
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toEqual([]);
    releaseAll();
    await Promise.all([declared, published]);
    expect(settled).toContain('publish');
  });

  it('a publish blocked by the broker during a recovery goes when it unblocks, before the consumers are restored', async () => {
    const { channel, releaseAll: release } = await heldAtConsumerRestore('unblock-early');
    const broker = getMemoryBroker('unblock-early');
    broker.blockConnections();
    await turns(3);
    let landed = false;
    const published = channel.publish(Buffer.from('x'), {}, '', 'unblock-early').then(() => (landed = true), (e: unknown) => e);
    await turns(10);
    expect(landed).toBe(false); // blocked: it waits
    expect(broker.queueInfo('unblock-early')?.messageCount).toBe(0);
    broker.unblockConnections();
    await turns(20);
    expect(channel.state).toBe('recovering');
    expect(landed).toBe(true);
    expect(broker.queueInfo('unblock-early')?.messageCount).toBe(1);
    release();
    await published;
    await reaches(channel, 'open');
  });

  it('a publish waiting in a blocked recovery does not go while still blocked', async () => {
    const { channel, releaseAll: release } = await heldAtConsumerRestore('still-blocked');
    const broker = getMemoryBroker('still-blocked');
    broker.blockConnections();
    await turns(3);
    let landed = false;
    void channel.publish(Buffer.from('x'), {}, '', 'still-blocked').then(() => (landed = true));
    release();
    await reaches(channel, 'open');
    await turns(10);
    expect(landed).toBe(false);
    expect(channel.buffered).toBe(1);
    broker.unblockConnections();
    await turns(10);
    expect(landed).toBe(true);
    expect(channel.buffered).toBe(0);
  });
  it('is suspended by a lost connection at once, with its error, and counts the reopen as a recovery', async () => {
    const conn = connection('memory://suspend', memoryTransport);
    const channel = await conn.channel();
    const seen: string[] = [];
    channel.on('state', ({ from, to, error }) => seen.push(`${from}>${to}${error ? ` (${error.name})` : ''}`));
    const reopened = reaches(channel, 'open');
    getMemoryBroker('suspend').dropConnections();
    await reopened;
    // No recovery attempt on the dead connection before the connection reports its loss.
    expect(seen).toEqual(['open>suspended (ConnectionError)', 'suspended>recovering (ConnectionError)', 'recovering>open']);
    expect(channel.actor?.getSnapshot().context.recoveries).toBe(1);
  });

  it('recovers again when a broker error provoked by an ack fails a consumer restore', async () => {
    const { channel, releaseAll, failNext } = await heldAtConsumerRestore('traffic');
    // What RabbitMQ answers a pending basic.consume when an ack of an unknown delivery tag
    // closed the channel meanwhile: the channel.close names basic.ack (60, 80).
    const recovering = reaches(channel, 'retrying');
    failNext(new ChannelError('Channel closed by server: 406 (PRECONDITION-FAILED)', { code: 406, classId: 60, methodId: 80, recoverable: false }));
    await recovering;
    releaseAll();
    await reaches(channel, 'open');
    expect(channel.epoch).toBe(3);
  });

  it('closes the half-restored transport channel when it is closed during its recovery', async () => {
    const { channel, releaseAll, settled } = await heldAtConsumerRestore('cancelled');
    await channel.close();
    releaseAll();
    await settled();
    // The consumer restore that was under way must not leave a consumer on a channel nobody owns.
    expect(getMemoryBroker('cancelled').queueInfo('cancelled')?.consumerCount).toBe(0);
  });

  it('a consumer cancelled while its restore is under way is not left on the new channel', async () => {
    const { channel, tag, releaseAll, settled } = await heldAtConsumerRestore('cancel-restore');
    await channel.cancel(tag);
    const reopened = reaches(channel, 'open');
    releaseAll();
    await settled();
    await reopened;
    expect(getMemoryBroker('cancel-restore').queueInfo('cancel-restore')?.consumerCount).toBe(0);
    // And the next recovery does not bring it back.
    const again = reaches(channel, 'open');
    getMemoryBroker('cancel-restore').dropConnections();
    await again;
    expect(getMemoryBroker('cancel-restore').queueInfo('cancel-restore')?.consumerCount).toBe(0);
  });

  it('restores all consumers of a channel at once, not one round trip after another', async () => {
    const { transport, hold, reached, releaseAll, waiting } = holdingTransport();
    const conn = connection('memory://together', transport);
    const channel = await conn.channel();
    for (const name of ['a', 'b', 'c']) {
      await channel.declareQueue(declaration(name));
      await channel.consume(name, { consumerTag: '', noAck: true }, () => undefined);
      hold(name);
    }
    getMemoryBroker('together').dropConnections();
    await reached();
    // A transport sends them in this order; amqplib sends each as the previous one is answered.
    expect(waiting()).toEqual(['a', 'b', 'c']);
    const reopened = reaches(channel, 'open');
    releaseAll();
    await reopened;
  });

  it('fails a restore with the refused declaration\'s own error, not with the calls made after it', async () => {
    const conn = connection('memory://refusal', memoryTransport);
    const channel = await conn.channel();
    await channel.declareQueue(declaration('first'));
    await channel.declareQueue(declaration('refusal'));
    await channel.declareQueue(declaration('later'));
    // Meanwhile the queue was declared again elsewhere with other arguments.
    const admin = await connection('memory://refusal', memoryTransport).channel();
    await admin.deleteQueue('refusal');
    await admin.declareQueue(declaration('refusal', { arguments: { 'x-max-length': 5 } }));
    const failed = new Promise<{ code: unknown; message: string } | undefined>((resolve) => channel.on('state', ({ from, error }) => {
      if (from === 'recovering') resolve(error);
    }));
    getMemoryBroker('refusal').dropConnections();
    // A call waiting for the channel meanwhile fails with that refusal, not with the lost connection.
    const waiting = channel.purgeQueue('first').then(() => undefined, (e: unknown) => e as { code: unknown; message: string });
    const error = await failed;
    expect(error?.code).toBe(406);
    expect(error?.message).toContain("queue 'refusal'");
    expect(await waiting).toMatchObject({ code: 406, message: expect.stringContaining("queue 'refusal'") });
  });

  it('still ends the channel when the broker refuses the consumer restore itself', async () => {
    const { channel, failNext } = await heldAtConsumerRestore('refused');
    const closed = reaches(channel, 'closed');
    failNext(new ChannelError('Operation failed: BasicConsume; 403 (ACCESS-REFUSED)', { code: 403, classId: 60, methodId: 20, recoverable: false }));
    await closed;
    expect(channel.state).toBe('closed');
  });
});

describe('A consumer resumed after the broker cancelled it', () => {
  it('consumes the server-named queue under the new name the broker gave it', async () => {
    const conn = connection('memory://renamed', memoryTransport);
    const channel = await conn.channel();
    const ok = await channel.declareQueue(declaration(''));
    await channel.bindQueue(ok.queue, 'amq.direct', 'renamed');
    const got: string[] = [];
    await channel.consume(ok.queue, { consumerTag: '', noAck: true }, (message) => got.push(message.body.toString()));
    const cancelled = new Promise<void>((resolve) => channel.once('consumerCancelled', () => resolve()));
    const states: ChannelState[] = [];
    channel.on('state', ({ to }) => states.push(to));
    const other = await connection('memory://renamed', memoryTransport).channel();
    await other.deleteQueue(ok.queue);
    await cancelled;
    // Declared again by the channel (a new name), bound again and consumed again: routed messages arrive.
    const publisher = other;
    for (let i = 0; i < 50 && got.length === 0; i++) {
      await publisher.publish(Buffer.from('back'), {}, 'amq.direct', 'renamed');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(got).toContain('back');
    expect(states).toEqual([]); // resumed as it is, not healed by a channel error and a recovery
  });
});
