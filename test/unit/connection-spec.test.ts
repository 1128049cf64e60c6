/**
 * kombu's Connection spec (kombu-connection-spec.txt), entry by entry where kombu-ts had a gap:
 * the defaults, members and argument forms a kombu user calls, checked on memory://.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, ConfigurationError, Connection, ConnectionError, IllegalStateError } from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const open: Connection[] = [];
function connection(url: string, options: ConstructorParameters<typeof Connection>[1] = {}): Connection {
  const conn = new Connection(url, { retryPolicy: { intervalStart: 0.01, intervalStep: 0.01, intervalMax: 0.03 }, ...options });
  open.push(conn);
  return conn;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  resetMemoryBrokers();
});

describe("kombu's Connection spec", () => {
  it('connect_timeout defaults to 5 seconds, as kombu (an explicit one still wins)', () => {
    expect(connection('memory://ct').info().connectTimeout).toBe(5);
    expect(connection('amqp://guest:guest@rabbit//').info().connectTimeout).toBe(5);
    expect(connection('memory://ct', { connectTimeout: 2 }).info().connectTimeout).toBe(2);
    expect(connection('memory://ct?connect_timeout=3').info().connectTimeout).toBe(3);
  });

  it('heartbeatCheck(rate) refuses a rate that is not a number >= 1 with ConfigurationError, connected or not', async () => {
    const conn = connection('memory://hb', { heartbeat: 10 });
    for (const rate of [NaN, 0, -1, 0.5, Infinity, '2']) {
      expect(() => conn.heartbeatCheck(rate as number)).toThrow(ConfigurationError);
    }
    await conn.connect();
    for (const rate of [NaN, 0, -1, 0.5, Infinity, '2']) {
      expect(() => conn.heartbeatCheck(rate as number)).toThrow(/rate must be a number >= 1/);
    }
    expect(conn.connected).toBe(true);
    expect(() => conn.heartbeatCheck()).not.toThrow();
    expect(() => conn.heartbeatCheck(2.5)).not.toThrow();
  });
});
