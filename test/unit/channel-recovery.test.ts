/**
 * Channel recovery after a lost connection, on memory://.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type Channel, type ChannelState } from '../../src/index.js';
import { getMemoryBroker, memoryTransport, resetMemoryBrokers } from '../../src/transports/memory.js';
import type { Transport } from '../../src/transports/transport.js';

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

function reaches(channel: Channel, state: ChannelState): Promise<void> {
  return new Promise((resolve) => {
    const on = ({ to }: { to: ChannelState }): void => {
      if (to !== state) return;
      channel.off('state', on);
      resolve();
    };
    channel.on('state', on);
  });
}

describe('Channel recovery after a lost connection', () => {
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
});
