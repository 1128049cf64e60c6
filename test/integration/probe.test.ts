import { describe, expect, it } from 'vitest';
import { Connection } from '../../src/index.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { unique, sleep, rabbitmqctl } from '../helpers/rabbitmq.js';
const URL = 'amqp://guest:guest@127.0.0.1:5672//';
const race = (p: Promise<unknown>, ms = 300) => Promise.race([p.then(() => 'resolved', (e) => 'rejected ' + e), sleep(ms).then(() => 'pending')]);
const openChannels = (conn: Connection) => ((conn.connection as any).connection.channels as unknown[]).filter((c) => c).length;
describe('probe', () => {
  for (const delay of [0, 1, 2, 3, 5, 8]) it('channel.close while recovering from 404, delay ' + delay, async () => {
    const conn = new Connection(URL);
    const ch = await conn.channel();
    const q = unique('rc');
    await ch.declareQueue({ name: q, durable: false, exclusive: false, autoDelete: true, arguments: {}, passive: false });
    await ch.consume(q, { consumerTag: '', noAck: false }, () => {});
    console.log('open channels', openChannels(conn));
    await ch.publish(Buffer.from('x'), {}, unique('nox'), 'x', { confirm: true }).catch(() => {});
    for (let i = 0; i < delay; i++) await new Promise((r) => setImmediate(r));
    const st = ch.state;
    await ch.close();
    await sleep(200);
    console.log(delay, 'state at close', st, 'open channels after', openChannels(conn), ch.state);
    await conn.close();
  });
});
