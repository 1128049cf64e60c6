/**
 * The amqp transport against the real RabbitMQ, at the level of the transport contract:
 * round trip, authentication, channel errors, returns, cancels, nacks, close.
 * Faults (stalls, cuts, forced closes, alarms) are in amqp-transport-faults.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessRefused, ChannelError, ConnectionClosed, type KombuError, MessageNacked } from '../../src/errors.js';
import { amqpTransport } from '../../src/transports/amqp.js';
import type { RawMessage, ReturnedMessage } from '../../src/transports/transport.js';
import { amqpFixture, never, once, params, rabbitmqctl, rejection, requireRabbitmq, unique } from '../helpers/rabbitmq.js';

const reachable = await requireRabbitmq('amqp-transport.test');

describe.skipIf(!reachable)('amqp transport (RabbitMQ)', () => {
  const { open, declareQueue, trackExchange, closeAll } = amqpFixture();

  it('connects, publishes with confirm, consumes and acks (round trip)', async () => {
    const conn = await open();
    expect(amqpTransport.name).toBe('amqp');
    expect(amqpTransport.defaultPort).toBe(5672);
    const ch = await conn.createChannel();
    expect(ch.isOpen).toBe(true);
    const exchange = unique('x');
    trackExchange(exchange);
    await ch.declareExchange({ name: exchange, type: 'direct', durable: false, autoDelete: false, arguments: {}, passive: false });
    const queue = await declareQueue(ch);
    await ch.bindQueue(queue, exchange, 'rk');
    await ch.qos(10);

    const timestamp = Math.floor(Date.now() / 1000);
    await ch.publish(Buffer.from('hello'), {
      contentType: 'text/plain', contentEncoding: 'utf-8', headers: { 'x-n': 1, s: 'v' }, deliveryMode: 2, priority: 3,
      correlationId: 'c1', replyTo: 'r', messageId: 'm1', timestamp, type: 't', appId: 'app', expiration: '60000',
    }, exchange, 'rk', { confirm: true });

    const received = new Promise<RawMessage>((resolve) => {
      void ch.consume(queue, { consumerTag: 'ctag-1', noAck: false }, resolve);
    });
    const message = await received;
    expect(message.body.toString()).toBe('hello');
    expect(message.properties).toMatchObject({
      contentType: 'text/plain', contentEncoding: 'utf-8', headers: { 'x-n': 1, s: 'v' }, deliveryMode: 2, priority: 3,
      correlationId: 'c1', replyTo: 'r', messageId: 'm1', timestamp, type: 't', appId: 'app', expiration: '60000',
    });
    expect(message.deliveryInfo).toMatchObject({ exchange, routingKey: 'rk', consumerTag: 'ctag-1', redelivered: false });
    ch.ack(message.deliveryInfo.deliveryTag);
    await ch.cancel('ctag-1');

    // get(): a message with messageCount, then empty
    await ch.publish(Buffer.from('a'), {}, '', queue, { confirm: false });
    await ch.publish(Buffer.from('b'), {}, '', queue, { confirm: true });
    const first = await ch.get(queue, { noAck: false });
    expect(first?.body.toString()).toBe('a');
    expect(first?.deliveryInfo.messageCount).toBe(1);
    ch.reject(first!.deliveryInfo.deliveryTag, false);
    const second = await ch.get(queue, { noAck: true });
    expect(second?.body.toString()).toBe('b');
    expect(await ch.get(queue, { noAck: true })).toBeUndefined();

    await ch.publish(Buffer.from('c'), {}, '', queue, { confirm: true });
    expect(await ch.purgeQueue(queue)).toBe(1);
    await ch.unbindQueue(queue, exchange, 'rk');
    expect(await ch.deleteQueue(queue)).toBe(0);
    await ch.deleteExchange(exchange);

    const closed = once<KombuError | undefined>(ch, 'close');
    await ch.close();
    expect(await closed).toBeUndefined();
    expect(ch.isOpen).toBe(false);
  });

  it('requeues with reject(requeue) and redelivers with recover()', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    await ch.publish(Buffer.from('x'), {}, '', queue, { confirm: true });
    const m1 = await ch.get(queue, { noAck: false });
    ch.reject(m1!.deliveryInfo.deliveryTag, true);
    const m2 = await ch.get(queue, { noAck: false });
    expect(m2?.deliveryInfo.redelivered).toBe(true);
    await ch.recover(true);
    const m3 = await ch.get(queue, { noAck: false });
    expect(m3?.body.toString()).toBe('x');
    ch.ack(m3!.deliveryInfo.deliveryTag);
  });

  it('coalesced acks settle exactly the acked deliveries: the rest are redelivered', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    for (let i = 0; i < 10; i++) await ch.publish(Buffer.from(String(i)), {}, '', queue, { confirm: i === 9 });
    await ch.qos(10);
    const first: RawMessage[] = [];
    const all = new Promise<void>((resolve) => {
      void ch.consume(queue, { consumerTag: 'coalesce-1', noAck: false }, (message) => {
        first.push(message);
        if (first.length === 10) resolve();
      });
    });
    await all;
    // In one tick: 0-3 in a run (one multiple ack), then every other one of the rest.
    for (const message of first) {
      const n = Number(message.body.toString());
      if (n < 4 || n % 2 === 0) ch.ack(message.deliveryInfo.deliveryTag);
    }
    await ch.close(); // the waiting acks go out before channel.close; the others are requeued

    const again = await conn.createChannel();
    const redelivered: string[] = [];
    for (;;) {
      const message = await again.get(queue, { noAck: false });
      if (!message) break;
      redelivered.push(message.body.toString());
      again.ack(message.deliveryInfo.deliveryTag);
    }
    expect(redelivered.sort()).toEqual(['5', '7', '9']);
    expect(again.isOpen).toBe(true); // no ack for an unknown tag reached the broker
    await again.close();
    const check = await conn.createChannel();
    expect((await check.declareQueue({ name: queue, durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: true })).messageCount).toBe(0);
  });

  it('wrong password -> AccessRefused, quickly, without the password in the message', async () => {
    const started = Date.now();
    const error = await rejection(amqpTransport.connect(params({ password: 'not-the-password' }), never));
    expect(error).toBeInstanceOf(AccessRefused);
    expect(error.recoverable).toBe(false);
    expect(error.code).toBe(403);
    expect(error.message).toContain("'guest'");
    expect(error.message).not.toContain('not-the-password');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('unknown vhost -> AccessRefused naming the vhost and the user', async () => {
    const error = await rejection(amqpTransport.connect(params({ virtualHost: '/no-such-vhost' }), never));
    expect(error).toBeInstanceOf(AccessRefused);
    expect(error.recoverable).toBe(false);
    expect(error.message).toContain("RabbitMQ refused access to vhost '/no-such-vhost' for user 'guest'");
  });

  it('passes user names, passwords and vhosts with reserved characters untouched', async () => {
    const user = `kombu-ts-test-${randomUUID().slice(0, 8)}@x:y`;
    const password = 'p@ss:w/rd%41?#&+ é';
    const vhost = `kombu/ts%41 test-${randomUUID().slice(0, 8)}`;
    await rabbitmqctl('add_user', user, password);
    await rabbitmqctl('add_vhost', vhost);
    try {
      await rabbitmqctl('set_permissions', '-p', vhost, user, '.*', '.*', '.*');
      const conn = await open({ userid: user, password, virtualHost: vhost, loginMethod: 'AMQPLAIN' });
      const ch = await conn.createChannel();
      const ok = await ch.declareQueue({ name: '', durable: false, exclusive: true, autoDelete: true, arguments: {}, passive: false });
      expect(ok.queue).toMatch(/^amq\.gen-/);
    } finally {
      await closeAll();
      await rabbitmqctl('delete_vhost', vhost);
      await rabbitmqctl('delete_user', user);
    }
  });

  it('passive declare of a missing queue -> ChannelError 404, channel close event; the connection lives', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const closed = once<KombuError | undefined>(ch, 'close');
    const error = await rejection(
      ch.declareQueue({ name: unique('missing'), durable: false, exclusive: false, autoDelete: false, arguments: {}, passive: true }),
    );
    expect(error).toBeInstanceOf(ChannelError);
    expect(error).toMatchObject({ code: 404, classId: 50, methodId: 10, recoverable: false });
    const closeError = await closed;
    expect(closeError).toBeInstanceOf(ChannelError);
    expect(closeError?.code).toBe(404);
    expect(ch.isOpen).toBe(false);
    // operations on the closed channel are refused, typed
    const refused = await rejection(ch.purgeQueue('whatever'));
    expect(refused).toBeInstanceOf(ChannelError);
    expect(() => ch.ack(1)).toThrow(ChannelError);
    await expect(ch.publish(Buffer.from('x'), {}, '', 'q')).rejects.toBeInstanceOf(ChannelError);
    // a new channel on the same connection works
    const ch2 = await conn.createChannel();
    await declareQueue(ch2);
    expect(ch2.isOpen).toBe(true);
  });

  it('redeclare with different arguments -> ChannelError 406', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    const error = await rejection(
      ch.declareQueue({ name: queue, durable: true, exclusive: false, autoDelete: false, arguments: { 'x-max-length': 5 }, passive: false }),
    );
    expect(error).toBeInstanceOf(ChannelError);
    expect(error).toMatchObject({ code: 406, classId: 50, methodId: 10 });
  });

  it('publish with confirm to a missing exchange -> ChannelError 404', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const closed = once<KombuError | undefined>(ch, 'close');
    const error = await rejection(ch.publish(Buffer.from('x'), {}, unique('no-exchange'), 'rk', { confirm: true }));
    expect(error).toBeInstanceOf(ChannelError);
    expect(error).toMatchObject({ code: 404, classId: 60, methodId: 40 });
    expect((await closed)?.code).toBe(404);
  });

  it("a call in flight when another call's refusal closes the channel -> recoverable ChannelError naming that refusal", async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    // Frames on a channel are handled in order: the publish's 404 closes the channel while
    // the declare, sent right after it, waits for its reply.
    const refused = rejection(ch.publish(Buffer.from('x'), {}, unique('no-exchange'), 'rk', { confirm: true }));
    const overtaken = rejection(ch.declareQueue({ name: queue, durable: false, exclusive: false, autoDelete: true, arguments: {}, passive: true }));
    expect(await refused).toMatchObject({ code: 404, classId: 60, methodId: 40, recoverable: false });
    const error = await overtaken;
    expect(error).toBeInstanceOf(ChannelError);
    expect(error.recoverable).toBe(true);
    expect(error.message).toMatch(/^Cannot declare queue on channel \d+: the broker closed it over another call \(.*404.*basic\.publish/);
    expect(error.cause).toMatchObject({ code: 404 });
  });

  it('a nack (x-overflow reject-publish) -> MessageNacked', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch, { 'x-max-length': 1, 'x-overflow': 'reject-publish' });
    await ch.publish(Buffer.from('1'), {}, '', queue, { confirm: true });
    const error = await rejection(ch.publish(Buffer.from('2'), {}, '', queue, { confirm: true }));
    expect(error).toBeInstanceOf(MessageNacked);
    expect(ch.isOpen).toBe(true);
  });

  it('mandatory publish to nowhere -> return event', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const returned = once<ReturnedMessage>(ch, 'return');
    await ch.publish(Buffer.from('lost'), { messageId: 'r1' }, 'amq.direct', unique('nowhere'), { mandatory: true, confirm: true });
    const message = await returned;
    expect(message).toMatchObject({ replyCode: 312, replyText: 'NO_ROUTE', properties: { messageId: 'r1' } });
    expect(message.deliveryInfo.exchange).toBe('amq.direct');
    expect(message.body.toString()).toBe('lost');
  });

  it('deleting the queue of a consumer -> cancel event', async () => {
    const conn = await open();
    const ch = await conn.createChannel();
    const queue = await declareQueue(ch);
    const tag = await ch.consume(queue, { consumerTag: 'cancel-me', noAck: true }, () => {});
    expect(tag).toBe('cancel-me');
    const cancelled = once<string>(ch, 'cancel');
    const other = await conn.createChannel();
    await other.deleteQueue(queue);
    expect(await cancelled).toBe('cancel-me');
    expect(ch.isOpen).toBe(true);
  });

  it('every channel is in confirm mode, the first one and those opened without waiting for confirm.select-ok', async () => {
    const conn = await open();
    const channels = [await conn.createChannel(), await conn.createChannel(), await conn.createChannel()];
    const queue = await declareQueue(channels[0]!);
    // Confirmed publishes settle on each (they would wait forever on a channel not in confirm mode).
    await Promise.all(channels.map((ch) => ch.publish(Buffer.from('x'), {}, '', queue, { confirm: true })));
    const localPort = (conn as unknown as { raw: { connection: { stream: { localPort: number } } } }).raw.connection.stream.localPort;
    const { stdout } = await rabbitmqctl('list_channels', 'name', 'confirm', '--no-table-headers', '--quiet');
    const ours = stdout.split('\n').filter((line) => line.includes(`:${localPort} -> `));
    expect(ours).toHaveLength(3);
    for (const line of ours) expect(line.trim().split(/\s+/).at(-1)).toBe('true');
  });

  it('close() closes channels without errors, is safe twice, and refuses later calls', async () => {
    const conn = await amqpTransport.connect(params({ heartbeat: 10 }), never);
    const ch = await conn.createChannel();
    const events: Array<[string, unknown]> = [];
    conn.on('close', (error) => events.push(['connection', error]));
    ch.on('close', (error) => events.push(['channel', error]));
    await conn.close();
    await conn.close();
    expect(events).toEqual([['channel', undefined], ['connection', undefined]]);
    await expect(conn.createChannel()).rejects.toBeInstanceOf(ConnectionClosed);
    await expect(ch.purgeQueue('x')).rejects.toBeInstanceOf(ChannelError);
    await ch.close(); // no-op
  });
});
