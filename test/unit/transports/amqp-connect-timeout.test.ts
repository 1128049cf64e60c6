import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, ConnectionClosed, ConnectTimeout } from '../../../src/index.js';

/** A TCP server that accepts and never says a word: an AMQP handshake against it hangs. */
async function silentServer(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, sockets };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

describe('amqp:// connectTimeout given by users (seconds)', () => {
  it('a connectTimeout past the timer limit (~24.8 days) or Infinity does not time out after 1 ms; a small one still does (no broker needed)', async () => {
    const { server, port, sockets } = await silentServer();
    cleanup.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    // A small one still times out (this also loads amqplib before the timed-out-or-not checks below).
    const quick = new Connection(`amqp://guest:guest@127.0.0.1:${port}//`, { connectTimeout: 0.05 });
    await expect(quick.connect()).rejects.toBeInstanceOf(ConnectTimeout);
    await quick.close();
    for (const connectTimeout of [30 * 24 * 3600, Infinity]) {
      const conn = new Connection(`amqp://guest:guest@127.0.0.1:${port}//`, { connectTimeout });
      let outcome = 'pending';
      const connecting = conn.connect().then(() => 'connected', (e: unknown) => (e as Error).name);
      void connecting.then((o) => { outcome = o; });
      await new Promise((r) => setTimeout(r, 50));
      expect(outcome).toBe('pending');
      await conn.close();
      expect(await connecting).toBe(new ConnectionClosed('').name);
    }
  });
});
