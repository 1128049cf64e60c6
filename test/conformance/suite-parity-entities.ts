/**
 * Conformance: RabbitMQ parity of entity rules (the reference is a real RabbitMQ 3.10 node):
 * another connection's exclusive queue (405), an unknown exchange type (503, a connection
 * exception: the whole connection closes), and the predeclared `amq.rabbitmq.trace` exchange.
 * Test names start with "parity:" so they can be picked out on a shared broker.
 */
import { expect, it } from 'vitest';
import { ChannelError, ConnectionError, type ExchangeType } from '../../src/index.js';
import type { ContextGetter } from './context.js';

const queueBase = { durable: false, autoDelete: false, arguments: {} };
const exchangeBase = { durable: false, autoDelete: false, arguments: {}, passive: false };

export function parityEntityTests(get: ContextGetter): void {
  it("parity: another connection's exclusive queue is locked (405) to declare, passive declare and unbind, but unbinding what is not bound succeeds", async () => {
    const ctx = get();
    const owner = await ctx.connection().channel();
    const name = ctx.queueName('exclusive-locked');
    await owner.declareQueue({ ...queueBase, name, exclusive: true, passive: false });
    await owner.bindQueue(name, 'amq.direct', 'bound');
    const other = ctx.connection();
    const locked = [
      (ch: Awaited<ReturnType<typeof other.channel>>) => ch.declareQueue({ ...queueBase, name, exclusive: true, passive: false }),
      (ch: Awaited<ReturnType<typeof other.channel>>) => ch.declareQueue({ ...queueBase, name, exclusive: false, passive: false }),
      (ch: Awaited<ReturnType<typeof other.channel>>) => ch.declareQueue({ ...queueBase, name, exclusive: false, passive: true }),
      (ch: Awaited<ReturnType<typeof other.channel>>) => ch.unbindQueue(name, 'amq.direct', 'bound'),
    ];
    for (const [i, call] of locked.entries()) {
      const refused = call(await other.channel());
      await expect(refused, `call ${i}`).rejects.toBeInstanceOf(ChannelError);
      await expect(refused, `call ${i}`).rejects.toMatchObject({ code: 405 });
    }
    const channel = await other.channel();
    await channel.unbindQueue(name, 'amq.direct', 'never-bound');
    expect(channel.state).toBe('open');
  });

  it('parity: declaring an exchange of an unknown type is a connection exception (503): the whole connection closes', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const channel = await conn.channel();
    let disconnected = false;
    conn.on('disconnected', () => {
      disconnected = true;
    });
    const refused = channel.declareExchange({ ...exchangeBase, name: ctx.exchangeName('unknown-type'), type: 'x-no-such-type' as ExchangeType });
    await expect(refused).rejects.toBeInstanceOf(ConnectionError);
    await expect(refused).rejects.toMatchObject({ code: 503 });
    await ctx.until(() => disconnected, 'the connection to drop');
    // Checked before anything else: even redeclaring amq.direct with it is 503, not 406.
    const again = (await conn.channel()).declareExchange({ ...exchangeBase, name: 'amq.direct', durable: true, type: 'x-no-such-type' as ExchangeType });
    await expect(again).rejects.toMatchObject({ code: 503 });
  });

  it('parity: amq.rabbitmq.trace is there: a durable internal topic exchange that cannot be deleted', async () => {
    const ctx = get();
    const conn = ctx.connection();
    const name = 'amq.rabbitmq.trace';
    await (await conn.channel()).declareExchange({ ...exchangeBase, name, type: 'fanout', passive: true });
    await (await conn.channel()).declareExchange({ ...exchangeBase, name, type: 'topic', durable: true, internal: true });
    const checks: [number, (ch: Awaited<ReturnType<typeof conn.channel>>) => Promise<unknown>][] = [
      [406, (ch) => ch.declareExchange({ ...exchangeBase, name, type: 'topic', durable: true, internal: false })],
      [406, (ch) => ch.declareExchange({ ...exchangeBase, name, type: 'fanout', durable: true, internal: true })],
      [403, (ch) => ch.deleteExchange(name)],
    ];
    for (const [code, call] of checks) {
      const refused = call(await conn.channel());
      await expect(refused).rejects.toBeInstanceOf(ChannelError);
      await expect(refused).rejects.toMatchObject({ code });
    }
  });
}
