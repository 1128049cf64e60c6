import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, ConnectionClosed, ConnectionError } from '../../../src/errors.js';
import { getMemoryBroker, memoryTransport, resetMemoryBrokers } from '../../../src/transports/memory.js';
import { headersMatch, splitWords, topicMatches } from '../../../src/transports/memory-routing.js';
import type { ReturnedMessage } from '../../../src/transports/transport.js';
import { drain, exchange, openChannel, queue, send, text } from './memory-helpers.js';

afterEach(() => resetMemoryBrokers());

describe('memoryTransport', () => {
  it('declares what it is', () => {
    expect(memoryTransport.name).toBe('memory');
    expect(memoryTransport.defaultPort).toBeUndefined();
    expect(memoryTransport.capabilities).toEqual({ exchangeTypes: ['direct', 'topic', 'fanout', 'headers'], priorities: true, heartbeats: true, confirms: true });
    expect(memoryTransport.connectionErrors).toEqual([ConnectionError]);
    expect(memoryTransport.channelErrors).toEqual([ChannelError]);
    expect(memoryTransport.recoverableConnectionErrors).toEqual([ConnectionError]);
  });
});

describe('routing', () => {
  it('routes through the default exchange by queue name', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('tasks'));
    await send(ch, 'hello', '', 'tasks');
    await send(ch, 'lost', '', 'nobody');
    expect(await drain(ch, 'tasks')).toEqual(['hello']);
  });

  it('routes direct exchanges by exact key', async () => {
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('logs', 'direct'));
    await ch.declareQueue(queue('errors'));
    await ch.declareQueue(queue('all'));
    await ch.bindQueue('errors', 'logs', 'error');
    await ch.bindQueue('all', 'logs', 'error');
    await ch.bindQueue('all', 'logs', 'info');
    await send(ch, 'e', 'logs', 'error');
    await send(ch, 'i', 'logs', 'info');
    await send(ch, 'w', 'logs', 'warn');
    expect(await drain(ch, 'errors')).toEqual(['e']);
    expect(await drain(ch, 'all')).toEqual(['e', 'i']);
  });

  it('routes fanout exchanges to every bound queue, ignoring the key', async () => {
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('news', 'fanout'));
    for (const name of ['a', 'b']) {
      await ch.declareQueue(queue(name));
      await ch.bindQueue(name, 'news', 'whatever');
    }
    await send(ch, 'n', 'news', 'other');
    expect(await drain(ch, 'a')).toEqual(['n']);
    expect(await drain(ch, 'b')).toEqual(['n']);
  });

  it.each([
    ['stock.#', 'stock.usd.nyse', true],
    ['stock.#', 'stock', true],
    ['#', '', true],
    ['#', 'a.b.c', true],
    ['*', '', false],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['*.usd.*', 'stock.usd.nyse', true],
    ['*.usd.*', 'stock.usd', false],
    ['#.nyse', 'stock.usd.nyse', true],
    ['#.nyse', 'nyse', true],
    ['a.#.z', 'a.z', true],
    ['a.#.z', 'a.b.c.z', true],
    ['a.#.z', 'a.b.c', false],
    ['a.*.#', 'a', false],
    ['a.*.#', 'a.b', true],
    ['#.#', 'x', true],
    ['a.b', 'a.b', true],
    ['a.b', 'a.bc', false],
  ])('topic %s vs %s -> %s', (pattern, key, expected) => {
    expect(topicMatches(splitWords(pattern), splitWords(key))).toBe(expected);
  });

  it('routes topic exchanges with * and # wildcards', async () => {
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('market', 'topic'));
    await ch.declareQueue(queue('usd'));
    await ch.declareQueue(queue('stock'));
    await ch.bindQueue('usd', 'market', '*.usd.*');
    await ch.bindQueue('stock', 'market', 'stock.#');
    await send(ch, '1', 'market', 'stock.usd.nyse');
    await send(ch, '2', 'market', 'stock.eur');
    await send(ch, '3', 'market', 'bond.usd.ldn');
    await send(ch, '4', 'market', 'stock');
    expect(await drain(ch, 'usd')).toEqual(['1', '3']);
    expect(await drain(ch, 'stock')).toEqual(['1', '2', '4']);
  });

  it('matches headers with x-match all and any, ignoring x- keys', async () => {
    expect(headersMatch({ 'x-match': 'all', a: 1, b: 'x' }, { a: 1, b: 'x', c: 3 })).toBe(true);
    expect(headersMatch({ a: 1, b: 'x' }, { a: 1 })).toBe(false);
    expect(headersMatch({ 'x-match': 'any', a: 1, b: 'x' }, { b: 'x' })).toBe(true);
    expect(headersMatch({ 'x-match': 'any', a: 1 }, { a: 2 })).toBe(false);
    expect(headersMatch({ 'x-match': 'all', 'x-trace': 'no' }, {})).toBe(true);
    expect(headersMatch({ 'x-match': 'any', 'x-trace': 'no' }, { 'x-trace': 'no' })).toBe(false);
    expect(headersMatch({ 'x-match': 'any-with-x', 'x-trace': 'no' }, { 'x-trace': 'no' })).toBe(true);

    const { ch } = await openChannel();
    await ch.declareExchange(exchange('h', 'headers'));
    await ch.declareQueue(queue('all'));
    await ch.declareQueue(queue('any'));
    await ch.bindQueue('all', 'h', '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    await ch.bindQueue('any', 'h', '', { 'x-match': 'any', format: 'pdf', type: 'report' });
    await send(ch, 'both', 'h', '', { headers: { format: 'pdf', type: 'report' } });
    await send(ch, 'one', 'h', '', { headers: { format: 'pdf', type: 'log' } });
    await send(ch, 'none', 'h', '', { headers: { format: 'zip' } });
    await send(ch, 'no-headers', 'h', '');
    expect(await drain(ch, 'all')).toEqual(['both']);
    expect(await drain(ch, 'any')).toEqual(['both', 'one']);
  });

  it('falls back to an alternate exchange when nothing matches', async () => {
    const { ch } = await openChannel();
    await ch.declareExchange(exchange('unrouted', 'fanout'));
    await ch.declareExchange(exchange('main', 'direct', { arguments: { 'alternate-exchange': 'unrouted' } }));
    await ch.declareQueue(queue('leftovers'));
    await ch.bindQueue('leftovers', 'unrouted', '');
    await send(ch, 'x', 'main', 'nowhere');
    expect(await drain(ch, 'leftovers')).toEqual(['x']);
  });

  it('unbinds, and stops routing there', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await ch.bindQueue('q', 'amq.direct', 'k');
    await send(ch, '1', 'amq.direct', 'k');
    await ch.unbindQueue('q', 'amq.direct', 'k');
    await send(ch, '2', 'amq.direct', 'k');
    expect(await drain(ch, 'q')).toEqual(['1']);
  });

  it('returns unroutable mandatory messages with 312 NO_ROUTE and drops the others', async () => {
    const { ch } = await openChannel();
    const returned: ReturnedMessage[] = [];
    ch.on('return', (m) => returned.push(m));
    await ch.publish(Buffer.from('m'), { messageId: 'id1' }, 'amq.direct', 'nowhere', { mandatory: true });
    await ch.publish(Buffer.from('dropped'), {}, 'amq.direct', 'nowhere');
    expect(returned).toHaveLength(1);
    expect(returned[0]).toMatchObject({ replyCode: 312, replyText: 'NO_ROUTE', properties: { messageId: 'id1' }, deliveryInfo: { exchange: 'amq.direct', routingKey: 'nowhere' } });
    expect(text(returned[0])).toBe('m');
  });
});

describe('messages', () => {
  it('copies body and headers at publish', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    const body = Buffer.from('abc');
    const headers = { nested: { n: 1 } };
    await ch.publish(body, { headers, contentType: 'text/plain' }, '', 'q');
    body.write('zzz');
    headers.nested.n = 2;
    const m = await ch.get('q', { noAck: true });
    expect(text(m)).toBe('abc');
    expect(m?.properties).toEqual({ headers: { nested: { n: 1 } }, contentType: 'text/plain' });
    expect(m?.deliveryInfo).toEqual({ exchange: '', routingKey: 'q', deliveryTag: 1, redelivered: false, messageCount: 0 });
  });

  it('reports messages left on get, purge and declare', async () => {
    const { ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    for (const b of ['1', '2', '3']) await send(ch, b, '', 'q');
    expect(await ch.declareQueue(queue('q', { passive: true }))).toEqual({ queue: 'q', messageCount: 3, consumerCount: 0 });
    expect((await ch.get('q', { noAck: true }))?.deliveryInfo.messageCount).toBe(2);
    expect(await ch.purgeQueue('q')).toBe(2);
    expect(await ch.get('q', { noAck: true })).toBeUndefined();
  });

  it('names server-named queues amq.gen-*', async () => {
    const { ch } = await openChannel();
    const ok = await ch.declareQueue(queue('', { exclusive: true }));
    expect(ok.queue).toMatch(/^amq\.gen-/);
    expect(getMemoryBroker('unit').queueInfo(ok.queue)).toEqual({ queue: ok.queue, messageCount: 0, consumerCount: 0 });
  });
});

describe('channel exceptions', () => {
  it('passive declare of a missing queue fails 404 and closes the channel', async () => {
    const { ch } = await openChannel();
    const closed: unknown[] = [];
    ch.on('close', (e) => closed.push(e));
    const error = await ch.declareQueue(queue('missing', { passive: true })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelError);
    expect(error).toMatchObject({ code: 404, classId: 50, methodId: 10, recoverable: false }); // as amqp:// says: asking again gets 404 again
    expect(ch.isOpen).toBe(false);
    expect(closed).toEqual([error]);
    await expect(ch.declareQueue(queue('x'))).rejects.toMatchObject({ name: 'ChannelError', code: 'CHANNEL_CLOSED' });
  });

  it('passive declare of a missing exchange fails 404', async () => {
    const { ch } = await openChannel();
    await expect(ch.declareExchange(exchange('nope', 'topic', { passive: true }))).rejects.toMatchObject({ code: 404, classId: 40 });
    expect(ch.isOpen).toBe(false);
  });

  it('redeclaring with other attributes fails 406 PRECONDITION_FAILED', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q', { arguments: { 'x-max-priority': 5 } }));
    await expect(ch.declareQueue(queue('q', { durable: false, arguments: { 'x-max-priority': 5 } }))).rejects.toMatchObject({ code: 406 });
    expect(ch.isOpen).toBe(false);
    const ch2 = await conn.createChannel();
    await ch2.declareQueue(queue('q', { arguments: { 'x-max-priority': 5 } }));
    await expect(ch2.declareQueue(queue('q', { arguments: {} }))).rejects.toMatchObject({ code: 406 });
    const ch3 = await conn.createChannel();
    await ch3.declareExchange(exchange('e', 'direct'));
    await ch3.declareExchange(exchange('e', 'direct'));
    await expect(ch3.declareExchange(exchange('e', 'topic'))).rejects.toMatchObject({ code: 406, classId: 40, methodId: 10 });
    expect(conn.isOpen).toBe(true);
  });

  it('publishing to a missing exchange fails 404 and closes the channel', async () => {
    const { ch } = await openChannel();
    let closedWith: unknown;
    ch.on('close', (e) => (closedWith = e));
    await expect(send(ch, 'x', 'ghost', 'k')).rejects.toMatchObject({ code: 404, classId: 60, methodId: 40 });
    expect(closedWith).toBeInstanceOf(ChannelError);
  });

  it('rejects invalid queue arguments and reserved names', async () => {
    const { conn, ch } = await openChannel();
    await expect(ch.declareQueue(queue('p', { arguments: { 'x-max-priority': 'high' } }))).rejects.toMatchObject({ code: 406 });
    const ch2 = await conn.createChannel();
    await expect(ch2.declareExchange(exchange('amq.mine', 'direct'))).rejects.toMatchObject({ code: 403 });
  });

  it('deleteQueue with ifUnused / ifEmpty fails 406 when violated', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('q'));
    await send(ch, 'x', '', 'q');
    await expect(ch.deleteQueue('q', { ifEmpty: true })).rejects.toMatchObject({ code: 406, classId: 50, methodId: 40 });
    const ch2 = await conn.createChannel();
    await ch2.consume('q', { consumerTag: 'c', noAck: true }, () => undefined);
    const ch3 = await conn.createChannel();
    await expect(ch3.deleteQueue('q', { ifUnused: true })).rejects.toMatchObject({ code: 406 });
    const ch4 = await conn.createChannel();
    expect(await ch4.deleteQueue('q')).toBe(0);
    expect(await ch4.deleteQueue('q')).toBe(0);
  });

  it('locks exclusive queues to their connection and deletes them when it closes', async () => {
    const { conn, ch } = await openChannel();
    await ch.declareQueue(queue('mine', { exclusive: true }));
    const other = await openChannel();
    await expect(other.ch.declareQueue(queue('mine', { exclusive: true }))).rejects.toMatchObject({ code: 405 });
    await conn.close();
    expect(getMemoryBroker('unit').queueInfo('mine')).toBeUndefined();
  });
});

describe('closed channels and connections', () => {
  it('refuses calls with typed errors and closes twice without complaint', async () => {
    const { conn, ch } = await openChannel();
    const events: string[] = [];
    ch.on('close', (e) => events.push(`ch:${String(e)}`));
    conn.on('close', (e) => events.push(`conn:${String(e)}`));
    await ch.close();
    await ch.close();
    await expect(ch.get('q', { noAck: true })).rejects.toThrow(/channel 1 is closed; cannot get/);
    expect(() => ch.ack(1)).toThrow(ChannelError);
    await conn.close();
    await conn.close();
    expect(events).toEqual(['ch:undefined', 'conn:undefined']);
    await expect(conn.createChannel()).rejects.toBeInstanceOf(ConnectionClosed);
    expect(() => conn.heartbeatCheck(2)).not.toThrow();
  });

  it('closes channels with the connection and refuses their calls with ConnectionError', async () => {
    const { conn, ch } = await openChannel();
    await conn.close();
    expect(ch.isOpen).toBe(false);
    await expect(send(ch, 'x', '', 'q')).rejects.toBeInstanceOf(ConnectionError);
  });
});
