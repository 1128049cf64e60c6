/**
 * The Connection and Channel facades over real RabbitMQ: the lifecycle the machines promise,
 * proven against the broker (refused credentials, unknown vhost, failover, channel errors,
 * broker-forced closes, a stalled peer).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AccessRefused, ChannelError, Connection, type Channel } from '../../src/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { rabbitmqctl, requireRabbitmq, sleep, unique, RABBITMQ_PORT } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-connection.test');
const URL = `amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}//`;
const opened: Connection[] = [];
const proxies: FaultProxy[] = [];
const fast = { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 };

function connection(url = URL, options: ConstructorParameters<typeof Connection>[1] = {}): Connection {
  const conn = new Connection(url, { retryPolicy: fast, ...options });
  opened.push(conn);
  return conn;
}
const queueDecl = (name: string) => ({ name, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: false });
async function until(check: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !check(); ) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}
async function cleanup(channel: Channel, queue: string): Promise<void> {
  await channel.deleteQueue(queue).catch(() => undefined);
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

describe.skipIf(!reachable)('Connection on RabbitMQ', () => {
  it('wrong password fails in one attempt with AccessRefused, never retried', async () => {
    const conn = connection(`amqp://guest:wrong-password@127.0.0.1:${RABBITMQ_PORT}//`);
    const attempts: number[] = [];
    conn.on('state', ({ to, attempt }) => to === 'connecting' && attempts.push(attempt));
    const error = await conn.ensureConnection().catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(AccessRefused);
    expect((error as Error).message).not.toContain('wrong-password');
    expect(attempts).toEqual([1]);
    expect(conn.state).toBe('failed');
  });

  it('unknown vhost fails in one attempt with AccessRefused', async () => {
    const conn = connection(`amqp://guest:guest@127.0.0.1:${RABBITMQ_PORT}/no-such-vhost`);
    await expect(conn.ensureConnection()).rejects.toBeInstanceOf(AccessRefused);
  });

  it('fails over from a refusing port to the real broker', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    proxies.push(proxy);
    proxy.refuse(true);
    const conn = connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//;${URL}`);
    const failovers: string[] = [];
    conn.on('failover', ({ from, to }) => failovers.push(`${from} -> ${to}`));
    await conn.connect();
    expect(failovers).toEqual([`amqp://guest:**@127.0.0.1:${proxy.port}// -> amqp://guest:**@127.0.0.1:${RABBITMQ_PORT}//`]);
    expect(conn.port).toBe(RABBITMQ_PORT);
  });

  it('a channel error (missing exchange, redeclare with other arguments) keeps the connection up; the channel reopens', async () => {
    const conn = connection();
    const channel = await conn.channel();
    const queue = unique('chan-error');
    await channel.declareQueue(queueDecl(queue));
    const missing = await channel.publish(Buffer.from('x'), {}, unique('no-such-exchange'), 'rk', { confirm: true }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ChannelError);
    expect((missing as ChannelError).code).toBe(404);
    const redeclare = await channel.declareQueue({ ...queueDecl(queue), arguments: { 'x-max-length': 5 } }).catch((e: unknown) => e);
    expect(redeclare).toBeInstanceOf(ChannelError);
    expect((redeclare as ChannelError).code).toBe(406);
    await channel.whenOpen();
    expect(conn.state).toBe('connected');
    await channel.publish(Buffer.from('after'), {}, '', queue, { confirm: true });
    const got = await channel.get(queue, { noAck: true });
    expect(got?.message.body.toString()).toBe('after');
    await cleanup(channel, queue);
  });

  it('a consumer resumes after rabbitmqctl close_all_connections', async () => {
    const conn = connection(URL, { connectionName: `resume-${process.pid}` });
    const channel = await conn.channel();
    const queue = unique('resume');
    await channel.declareQueue(queueDecl(queue));
    const bodies: string[] = [];
    await channel.consume(queue, { consumerTag: '', noAck: false }, (message, epoch) => {
      bodies.push(message.body.toString());
      channel.ack(message.deliveryInfo.deliveryTag, false, epoch);
    });
    await channel.publish(Buffer.from('before'), {}, '', queue, { confirm: true });
    await until(() => bodies.length === 1);
    const disconnected = new Promise((resolve) => conn.once('disconnected', resolve));
    await rabbitmqctl('close_all_connections', 'kombu-ts test: forced close');
    await disconnected;
    await channel.publish(Buffer.from('after'), {}, '', queue, { confirm: true });
    await until(() => bodies.includes('after'));
    expect(conn.state).toBe('connected');
    expect(channel.epoch).toBeGreaterThanOrEqual(2);
    await cleanup(channel, queue);
  });

  it('notices a stalled broker (TCP open, no bytes) within the heartbeat bound and reconnects', async () => {
    const proxy = await startFaultProxy({ targetPort: RABBITMQ_PORT });
    proxies.push(proxy);
    const conn = connection(`amqp://guest:guest@127.0.0.1:${proxy.port}//;${URL}`, { heartbeat: 2 });
    await conn.connect();
    await sleep(300);
    proxy.stall();
    const stalledAt = Date.now();
    const event = await new Promise<{ error: { name: string } | undefined }>((resolve) => conn.once('disconnected', resolve));
    const detected = Date.now() - stalledAt;
    expect(event.error?.name).toBe('HeartbeatTimeout');
    expect(detected).toBeLessThanOrEqual(2500); // the bound: heartbeat 2 -> noticed within 2.5 s
    await until(() => conn.state === 'connected');
  });

  it('closes cleanly: no socket or timer of ours left', async () => {
    const count = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout').length;
    const before = count();
    const conn = connection(URL, { heartbeat: 5 });
    const channel = await conn.channel();
    await channel.qos(10);
    await conn.close();
    await sleep(50);
    expect(count()).toBeLessThanOrEqual(before);
  });
});
