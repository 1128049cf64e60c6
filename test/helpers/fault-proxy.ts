/**
 * A small TCP fault proxy for tests (ioredis's mock-server idea): it sits between a client
 * and a real broker on 127.0.0.1 and can break the link the ways networks break.
 *
 * - `cut()`     destroys every open client/upstream socket pair now (a dead peer, RST).
 * - `stall()`   stops forwarding in both directions but keeps the sockets open: the peer
 *               looks alive to TCP and silent to the protocol (a frozen broker, a black-holed
 *               route). Sockets are paused, so bytes stay in the kernel buffers and are
 *               delivered after `resume()` (nothing is dropped). An upstream that closes
 *               during a stall is hidden from the client until `resume()` or `cut()`.
 * - `refuse()`  closes new connections as soon as they are accepted.
 * - `tap`       (an option) sees every chunk forwarded, in the order the proxy forwards them:
 *               what the client sent before the broker's answers, and after.
 *
 * Pausing (rather than reading and discarding) keeps the stall honest: the client's writes
 * eventually meet TCP backpressure exactly as they would against a hung broker.
 */
import net from 'node:net';

export interface FaultProxyOptions {
  /** Where the real server listens; 127.0.0.1 by default. */
  targetHost?: string;
  targetPort: number;
  /** Sees each chunk as it is forwarded, `from` the client or the broker. */
  tap?: (from: 'client' | 'broker', chunk: Buffer) => void;
}

export interface FaultProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** Live client/upstream pairs. */
  readonly connectionCount: number;
  /** Destroys every open client and upstream socket now. */
  cut(): void;
  /** Stops forwarding both ways without closing anything; new pairs start stalled too. */
  stall(): void;
  /** Forwards again (held bytes flow on). */
  resume(): void;
  /** While on, new connections are closed as soon as they are accepted. */
  refuse(on?: boolean): void;
  /** Stops listening, cuts every pair, leaves no handles behind. */
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** The upstream closed while stalled: the client is kept in the dark until resume/cut. */
  upstreamGone: boolean;
}

/**
 * Starts a fault proxy in front of `targetHost:targetPort`.
 *
 * @example
 * ```ts
 * const proxy = await startFaultProxy({ targetPort: 5672 });
 * const conn = await transport.connect({ ...params, port: proxy.port }, signal);
 * proxy.stall();        // broker goes silent, TCP stays open
 * await proxy.close();
 * ```
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const targetHost = options.targetHost ?? '127.0.0.1';
  const { targetPort } = options;
  const pairs = new Set<Pair>();
  let stalled = false;
  let refusing = false;

  const destroyPair = (pair: Pair): void => {
    if (!pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream.destroy();
  };

  const server = net.createServer((client) => {
    if (refusing) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    client.pause();
    const upstream = net.connect({ host: targetHost, port: targetPort });
    upstream.pause();
    const pair: Pair = { client, upstream, upstreamGone: false };
    pairs.add(pair);
    // Pipe by hand so pausing one side is all a stall needs.
    client.on('data', (chunk: Buffer) => {
      options.tap?.('client', chunk);
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('data', (chunk: Buffer) => {
      options.tap?.('broker', chunk);
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => { if (!stalled) upstream.resume(); });
    upstream.on('drain', () => { if (!stalled) client.resume(); });
    const end = (): void => destroyPair(pair);
    // A frozen broker does not say goodbye: while stalled, an upstream that closes (the
    // broker's own heartbeat check giving up on us, say) stays invisible to the client.
    const upstreamEnd = (): void => {
      if (stalled) pair.upstreamGone = true;
      else destroyPair(pair);
    };
    client.on('error', end);
    client.on('close', end);
    client.on('end', end);
    upstream.on('error', upstreamEnd);
    upstream.on('close', upstreamEnd);
    upstream.on('end', upstreamEnd);
    upstream.once('connect', () => {
      if (!stalled && pairs.has(pair)) {
        client.resume();
        upstream.resume();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy: no TCP address');

  const cut = (): void => {
    for (const pair of [...pairs]) destroyPair(pair);
  };

  return {
    port: address.port,
    get connectionCount() {
      return pairs.size;
    },
    cut,
    stall() {
      stalled = true;
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream.pause();
      }
    },
    resume() {
      stalled = false;
      for (const pair of [...pairs]) {
        if (pair.upstreamGone) destroyPair(pair);
        else if (!pair.upstream.connecting) {
          // (a pair still connecting is resumed by its 'connect' handler)
          pair.client.resume();
          pair.upstream.resume();
        }
      }
    },
    refuse(on = true) {
      refusing = on;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      cut();
      await closed;
    },
  };
}
