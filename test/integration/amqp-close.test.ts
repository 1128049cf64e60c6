/**
 * close() as an operator's shutdown meets it: whatever the connection is doing, close()
 * ends it, and nothing of ours (socket, timer) is left to keep the process alive.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, ConnectionClosed, ConnectionError } from '../../src/index.js';
import { requireRabbitmq, RABBITMQ_PORT } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-close.test');
const URL = `amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`;
const opened: Connection[] = [];
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

describe.skipIf(!reachable)('close() on RabbitMQ', () => {
  it('ends an ensure() call retrying for ever: it rejects with ConnectionClosed and leaves no timer', async () => {
    const before = timers();
    const conn = new Connection(URL);
    opened.push(conn);
    await conn.connect();
    let calls = 0;
    let retrying!: () => void;
    const retried = new Promise<void>((resolve) => (retrying = resolve));
    // On a healthy connection kombu retries at once (no sleep), for ever by default.
    const flaky = conn.ensure(undefined, async () => {
      calls += 1;
      throw new ConnectionError('broker hiccup', { recoverable: true });
    }, { errback: () => { if (calls >= 2) retrying(); } });
    const result = flaky();
    result.catch(() => undefined);
    await retried;
    await conn.close();
    expect(timers()).toBeLessThanOrEqual(before);
    await expect(result).rejects.toBeInstanceOf(ConnectionClosed);
    expect(calls).toBeGreaterThanOrEqual(2);
  });
});
