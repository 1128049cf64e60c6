import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from '../../helpers/fault-proxy.js';

/** A tiny echo server; `sockets` lets a test close the server side of a connection. */
async function startEcho(): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Client {
  socket: net.Socket;
  received: () => string;
  closed: Promise<void>;
}

async function connect(port: number): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('waitFor: timed out');
    await sleep(5);
  }
}

describe('startFaultProxy', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let proxy: FaultProxy;
  const clients: net.Socket[] = [];

  beforeEach(async () => {
    echo = await startEcho();
    proxy = await startFaultProxy({ targetPort: echo.port });
  });

  afterEach(async () => {
    for (const socket of clients.splice(0)) socket.destroy();
    await proxy.close();
    await echo.close();
  });

  async function client(): Promise<Client> {
    const c = await connect(proxy.port);
    clients.push(c.socket);
    return c;
  }

  it('forwards both ways and counts live pairs', async () => {
    const c = await client();
    c.socket.write('hello');
    await waitFor(() => c.received() === 'hello');
    expect(proxy.connectionCount).toBe(1);
    const d = await client();
    await waitFor(() => proxy.connectionCount === 2);
    d.socket.end();
    await waitFor(() => proxy.connectionCount === 1);
  });

  it('cut() destroys every pair', async () => {
    const a = await client();
    const b = await client();
    await waitFor(() => echo.sockets.size === 2);
    proxy.cut();
    await Promise.all([a.closed, b.closed]);
    expect(proxy.connectionCount).toBe(0);
    await waitFor(() => echo.sockets.size === 0);
    // the proxy still accepts new connections after a cut
    const c = await client();
    c.socket.write('again');
    await waitFor(() => c.received() === 'again');
  });

  it('stall() holds bytes without closing; resume() delivers them', async () => {
    const c = await client();
    c.socket.write('a');
    await waitFor(() => c.received() === 'a');
    proxy.stall();
    c.socket.write('b');
    await sleep(100);
    expect(c.received()).toBe('a');
    expect(c.socket.destroyed).toBe(false);
    expect(proxy.connectionCount).toBe(1);
    proxy.resume();
    await waitFor(() => c.received() === 'ab');
  });

  it('stall() applies to connections opened during the stall', async () => {
    proxy.stall();
    const c = await client();
    c.socket.write('x');
    await sleep(100);
    expect(c.received()).toBe('');
    proxy.resume();
    await waitFor(() => c.received() === 'x');
  });

  it('stall() hides an upstream close until resume()', async () => {
    const c = await client();
    await waitFor(() => echo.sockets.size === 1);
    proxy.stall();
    for (const socket of echo.sockets) socket.destroy();
    await sleep(100);
    expect(c.socket.destroyed).toBe(false);
    proxy.resume();
    await c.closed;
    expect(proxy.connectionCount).toBe(0);
  });

  it('refuse() closes new connections at once; refuse(false) lets them in again', async () => {
    const live = await client();
    proxy.refuse();
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
    clients.push(socket);
    const outcome = await new Promise<string>((resolve) => {
      socket.on('data', () => resolve('data'));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      socket.on('close', () => resolve('closed'));
    });
    expect(['ECONNRESET', 'closed']).toContain(outcome);
    // existing pairs are untouched
    live.socket.write('still');
    await waitFor(() => live.received() === 'still');
    proxy.refuse(false);
    const c = await client();
    c.socket.write('in');
    await waitFor(() => c.received() === 'in');
  });

  it('close() stops the server and cuts everything', async () => {
    const c = await client();
    await proxy.close();
    await c.closed;
    expect(proxy.connectionCount).toBe(0);
    await expect(connect(proxy.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // a second proxy so afterEach has something to close
    proxy = await startFaultProxy({ targetPort: echo.port });
  });

  it('an unreachable target closes the client', async () => {
    const dead = await startEcho();
    await dead.close();
    const p = await startFaultProxy({ targetPort: dead.port });
    try {
      const c = await connect(p.port);
      clients.push(c.socket);
      await c.closed;
      expect(p.connectionCount).toBe(0);
    } finally {
      await p.close();
    }
  });
});
