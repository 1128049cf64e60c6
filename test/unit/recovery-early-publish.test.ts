/**
 * Publishes during a channel recovery (src/channel.ts `#routed`), on memory:// with consumer
 * restores held: once the declarations are restored publishes go, unless the broker blocks
 * the connection; when it unblocks them they go then, not only after the consumers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type Channel, type ChannelState } from '../../src/index.js';
import { getMemoryBroker, memoryTransport, resetMemoryBrokers } from '../../src/transports/memory.js';
import type { ConsumeOptions, RawMessage, Transport, TransportChannel } from '../../src/transports/transport.js';

/** memory:// whose `consume` of `queue` waits for release() once armed. */
function holding(queue: string) {
  let armed = false;
  const waiting: (() => void)[] = [];
  let reached: (() => void) | undefined;
  const transport: Transport = {
    ...memoryTransport,
    async connect(params, signal) {
      const connection = await memoryTransport.connect(params, signal);
      const createChannel = connection.createChannel.bind(connection);
      connection.createChannel = async (): Promise<TransportChannel> => {
        const channel = await createChannel();
        const consume = channel.consume.bind(channel);
        channel.consume = async (q: string, options: ConsumeOptions, onMessage: (message: RawMessage) => void) => {
          if (!armed || q !== queue) return consume(q, options, onMessage);
          await new Promise<void>((release) => {
            waiting.push(release);
            reached?.();
          });
          return consume(q, options, onMessage);
        };
        return channel;
      };
      return connection;
    },
  };
  return {
    transport,
    arm: () => void (armed = true),
    reached: () => (waiting.length > 0 ? Promise.resolve() : new Promise<void>((resolve) => (reached = resolve))),
    release: () => {
      armed = false;
      for (const r of waiting.splice(0)) r();
    },
  };
}

const open: Connection[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};
const reaches = (channel: Channel, state: ChannelState): Promise<void> =>
  new Promise((resolve) => {
    const on = ({ to }: { to: ChannelState }): void => {
      if (to === state) {
        channel.off('state', on);
        resolve();
      }
    };
    channel.on('state', on);
  });

async function recoveringHeldAtConsumers(name: string) {
  const held = holding(name);
  const conn = new Connection(`memory://${name}`, { transport: held.transport, retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.01 } });
  open.push(conn);
  const channel = await conn.channel();
  await channel.declareQueue({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
  await channel.consume(name, { consumerTag: '', noAck: true }, () => undefined);
  held.arm();
  getMemoryBroker(name).dropConnections();
  await held.reached();
  return { conn, channel, release: held.release };
}

describe('publishes during a recovery and flow control', () => {
  it('a publish blocked by the broker during a recovery goes when it unblocks, before the consumers are restored', async () => {
    const { channel, release } = await recoveringHeldAtConsumers('unblock-early');
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
    const { channel, release } = await recoveringHeldAtConsumers('still-blocked');
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
});
