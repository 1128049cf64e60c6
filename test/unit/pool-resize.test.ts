/**
 * Shrinking pools while members are lent (kombu's `Resource.resize` and `pools.set_limit`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, IllegalStateError, pools, reset, setLimit, getLimit } from '../../src/index.js';
import { getMemoryBroker, resetMemoryBrokers } from '../../src/transports/memory.js';

const opened: { close(): Promise<void> }[] = [];
let seq = 0;
function fresh(): { conn: Connection; name: string } {
  const name = `pool-resize-${++seq}`;
  getMemoryBroker(name);
  const conn = new Connection(`memory://${name}`);
  opened.push(conn);
  return { conn, name };
}
const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !predicate(); i++) await tick();
  if (!predicate()) throw new Error(`timed out waiting for ${what}`);
}

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
  await reset();
  setLimit(10);
  resetMemoryBrokers();
});

describe('resize() while members are lent', () => {
  it('a waiter queued before a shrink is served once enough members come back', async () => {
    const { conn, name } = fresh();
    const pool = conn.Pool({ limit: 2 });
    opened.push(pool);
    const a = await pool.acquire();
    const b = await pool.acquire();
    const waiting = pool.acquire({ block: true });
    pool.resize(1, { ignoreErrors: true });
    pool.release(a); // over the new limit: retired, not lent
    await until(() => getMemoryBroker(name).liveConnections === 1, 'a retired');
    expect(pool.waiting).toBe(1);
    pool.release(b);
    expect(await waiting).toBe(b);
    expect([pool.size, pool.inUse]).toEqual([1, 1]);
  });
});

describe('setLimit() while pools are in use', () => {
  it('refuses a shrink without changing any limit, so asking again with ignoreErrors applies it', async () => {
    const { name } = fresh();
    const url = `memory://${name}`;
    const connections = pools.connections.get(url);
    const producers = pools.producers.get(url);
    const held = await connections.acquire();
    const other = await connections.acquire();
    expect(() => setLimit(1)).toThrow(IllegalStateError);
    expect(getLimit()).toBe(10);
    expect([producers.limit, connections.limit]).toEqual([10, 10]);
    setLimit(1, { ignoreErrors: true });
    expect([getLimit(), producers.limit, connections.limit]).toEqual([1, 1, 1]);
    connections.release(held);
    connections.release(other);
    await until(() => getMemoryBroker(name).liveConnections === 1, 'the member over the limit retired');
    expect([connections.size, connections.free]).toEqual([1, 1]);
  });
});
