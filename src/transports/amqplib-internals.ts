/**
 * Where kombu-ts reaches into amqplib's internals, all in one place to check when amqplib is
 * upgraded. Each adaptation looks for the internals it expects and leaves amqplib as it is
 * when they are not there, so a different amqplib only loses the gain, never a function:
 *
 * - `coalesceWrites`: one `writev` per pass of amqplib's muxer instead of a `write` per frame.
 * - `releaseHandshake`: frees what amqplib keeps of its opening handshake (about 4 KiB per
 *   connection).
 * - `openConfirmChannel`: a confirm channel in one round trip instead of two, or in none
 *   (`openConfirmChannelEarly`: calls go out behind the open).
 * - `pipelineCalls` (amqplib-pipelining.ts): a channel's calls go out at once, not one per
 *   round trip (except behind a basic.consume or basic.cancel, whose answers RabbitMQ sends late).
 * - `acceptLongLongHeaders`: reads the `L` (64-bit integer) header values py-amqp writes,
 *   which amqplib refuses with a connection-killing error.
 *
 * The tests that pin them down: test/integration/amqplib-internals.test.ts (the handshake
 * collected, every way a socket ends after open, confirm channels), the confirm-mode test in
 * amqp-transport.test.ts, and the throughput benchmark.
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { pipelineCalls } from './amqplib-pipelining.js';

/** amqplib's connection internals used here (not in its typings). */
export interface ConnectionInternals {
  /** The socket (a net.Socket or tls.TLSSocket). */
  stream: NodeJS.ReadableStream & { destroy(error?: Error): void; destroyed: boolean };
  /** amqplib's handler for a socket error or end: closes the connection with `error`. */
  onSocketError?: (error: Error) => void;
  /** Negotiated heartbeat, seconds (0 = off). */
  heartbeat?: number;
  /** Moves frames from the channels' buffers to `out` (the socket), one `write()` per frame. */
  muxer?: Muxer;
  /** Bytes received and not parsed yet; `recvFrame()` parses and decodes the first frame. */
  rest?: Buffer;
  recvFrame?: (this: ConnectionInternals) => unknown;
}

interface Muxer {
  out?: unknown;
  _readIncoming?: (this: Muxer) => void;
}

type Corkable = { cork(): void; uncork(): void };
const corkable = (stream: unknown): stream is Corkable =>
  typeof (stream as Partial<Corkable>).cork === 'function' && typeof (stream as Partial<Corkable>).uncork === 'function';

/** The corked version of each muxer pass function met (one, unless two amqplib copies are loaded). */
const corkedPasses = new WeakMap<(this: Muxer) => void, (this: Muxer) => void>();

/**
 * Write coalescing: amqplib's muxer writes every frame (each publish, each ack) with its own
 * `socket.write()`, which is one syscall and, with TCP_NODELAY, one TCP segment per frame.
 * Corking the socket for the length of each muxer pass sends the pass's frames as one
 * `writev` instead: fewer syscalls for us and fewer packets for the broker to read. Frame
 * order and amqplib's own backpressure (write() returning false, 'drain') are unchanged.
 * If a future amqplib has no such muxer, writes simply stay uncoalesced.
 */
export function coalesceWrites(internals: ConnectionInternals): void {
  const muxer = internals.muxer;
  const pass = muxer?._readIncoming;
  if (!muxer || typeof pass !== 'function' || muxer.out !== internals.stream || !corkable(muxer.out)) return;
  let corked = corkedPasses.get(pass);
  if (!corked) {
    // Shared by every connection: the muxer it runs for is `this`, its socket `this.out`.
    corked = function readIncomingCorked(this: Muxer): void {
      const out = this.out as Corkable;
      out.cork();
      try {
        pass.call(this);
      } finally {
        out.uncork();
      }
    };
    corkedPasses.set(pass, corked);
  }
  muxer._readIncoming = corked;
}

/** Each socket's amqplib connection, for the shared `end` listener. */
const socketOwners = new WeakMap<object, ConnectionInternals>();

/** The socket ended: amqplib's own reaction (close everything with 'Unexpected close'). */
function onSocketEnd(this: object): void {
  const internals = socketOwners.get(this);
  internals?.onSocketError?.(new Error('Unexpected close'));
}

/** amqplib's channel internals used to open a confirm channel early and to pipeline its calls. */
export interface ChannelInternals {
  /** Takes a channel number (synchronous, though amqplib's `open()` awaits it). */
  allocate(): unknown;
  /** Sends a call; resolves with its answer's fields. */
  rpc(method: number, fields: Record<string, unknown>, expect: number): Promise<unknown>;
  sendImmediately(method: number, fields: Record<string, unknown>): unknown;
  sendOrEnqueue(method: number, fields: Record<string, unknown>, reply: Reply): void;
  /** The answer awaited for the call in flight (amqplib: one at a time). */
  reply: Reply | null;
  /** amqplib's calls waiting for the one in flight to be answered. */
  pending: unknown[] | null;
}
type ConfirmChannelClass = new (connection: unknown) => ConfirmChannel & ChannelInternals;
/** amqplib's reply callback: `(null, frame)` for an answer; `(frame)` for a channel.close, `(Error)` when the channel ends. */
export type Reply = (error: unknown, frame?: unknown) => unknown;

/** AMQP's confirm.select method (class 85, method 10), channel.open and channel.open-ok (class 20). */
const CONFIRM_SELECT = (85 << 16) | 10;
const CHANNEL_OPEN = (20 << 16) | 10;
const CHANNEL_OPEN_OK = (20 << 16) | 11;

/** amqplib's ConfirmChannel class, learnt from the first confirm channel it makes. */
let confirmChannelClass: ConfirmChannelClass | undefined;

/**
 * Opens a confirm channel. amqplib's `createConfirmChannel()` waits for the broker's answer
 * to channel.open and then to confirm.select: two round trips. A channel is in confirm mode
 * for every publish after confirm.select, answered or not (the broker reads a channel's
 * frames in order), so once amqplib's ConfirmChannel class is known, confirm.select goes
 * with `nowait`: one round trip less for every channel opened, recoveries included (about
 * 0.3 ms on an idle local broker, more on a busy one). Should it fail, the broker closes the
 * channel, which then ends like any channel closed by the broker. Its calls are pipelined
 * (see {@link pipelineCalls}).
 */
export async function openConfirmChannel(model: ChannelModel): Promise<ConfirmChannel> {
  const early = openConfirmChannelEarly(model);
  if (early) {
    await early.opened;
    return early.channel;
  }
  const channel = await model.createConfirmChannel();
  const learnt = channel.constructor as Partial<ConfirmChannelClass> & { prototype?: Partial<ChannelInternals> };
  const proto = learnt.prototype;
  if (
    typeof proto?.allocate === 'function' && typeof proto.rpc === 'function' && typeof proto.sendImmediately === 'function'
    && typeof proto.sendOrEnqueue === 'function'
  ) {
    confirmChannelClass = learnt as ConfirmChannelClass;
  }
  pipelineCalls(channel);
  return channel;
}

/**
 * Opens a confirm channel without waiting for the broker's answer, once amqplib's
 * ConfirmChannel class is known (undefined before: use {@link openConfirmChannel}). The
 * channel takes calls at once: they go out behind channel.open and confirm.select and are
 * answered in order after them (see {@link pipelineCalls}). `opened` settles with the
 * broker's answer to the open; should the broker refuse it, the calls fail with it.
 */
export function openConfirmChannelEarly(model: ChannelModel): { channel: ConfirmChannel; opened: Promise<unknown> } | undefined {
  const Class = confirmChannelClass;
  if (!Class) return undefined;
  const channel = new Class(model.connection);
  pipelineCalls(channel);
  // amqplib's open() takes the channel number after a turn of the event loop's microtasks; the
  // open must be sent now, ahead of confirm.select and of whatever the caller sends next.
  channel.allocate();
  const opened = channel.rpc(CHANNEL_OPEN, { outOfBand: '' }, CHANNEL_OPEN_OK);
  channel.sendImmediately(CONFIRM_SELECT, { nowait: true });
  return { channel, opened };
}

type Listener = (...args: unknown[]) => void;
const isAmqplibSocketHandler = (listener: Listener): boolean => listener.name === 'bound onSocketError';

/**
 * Frees what amqplib keeps of its opening handshake for the connection's whole life, about
 * 2.5 KiB per connection. Two socket listeners hold it (amqplib 2.x):
 *
 * - `socket.on('end', conn.onSocketError.bind(conn, new Error('Unexpected close')))`. V8 keeps
 *   an error's stack unformatted until somebody reads it: call-site records that hold every
 *   function of the handshake and, through them, its scope (tuned options, client
 *   properties). It is swapped for a shared listener that makes the same error when the
 *   socket really ends.
 * - `connect()`'s `socket.once('error', ...)`, which reports a failure to connect and does
 *   nothing once the connection is open, but holds `connect()`'s scope (the parsed URL, the
 *   open frames, the credentials). It is removed; amqplib's own 'error' listener stays.
 *
 * Each step happens only when amqplib's own listeners are found as described, so another
 * amqplib version is left as it is. (bench/heap-breakdown.ts applies it to plain amqplib too,
 * to show how much of amqplib's own heap it is.)
 */
export function releaseHandshake(internals: ConnectionInternals): void {
  const socket = internals.stream;
  if (typeof internals.onSocketError !== 'function') return;
  const onEnd = (socket.listeners('end') as Listener[]).find(isAmqplibSocketHandler);
  if (onEnd) {
    socketOwners.set(socket, internals);
    socket.removeListener('end', onEnd);
    socket.on('end', onSocketEnd);
  }
  const onError = socket.rawListeners('error') as (Listener & { listener?: Listener })[];
  if (!onError.some(isAmqplibSocketHandler)) return;
  for (const wrapper of onError) {
    // A `once` listener is a wrapper whose `listener` is the function given; connect()'s is anonymous.
    if (wrapper.listener && wrapper.listener.name === '') socket.removeListener('error', wrapper.listener);
  }
}

const TAG_L = 0x4c; // 'L'
const TAG_l = 0x6c; // 'l'
const FRAME_HEADER = 2;
const LONG_LONG_REFUSED = 'Unexpected type tag "L"';

/**
 * Rewrites every `L` field of the table at `offset` (its 4-byte length first) to `l`, in
 * place; returns the offset after the table, or -1 on a type it does not know.
 */
function rewriteTable(buf: Buffer, offset: number): number {
  const end = offset + 4 + buf.readUInt32BE(offset);
  let at = offset + 4;
  while (at < end) {
    at += 1 + buf[at]!; // shortstr key
    at = rewriteValue(buf, at);
    if (at < 0) return -1;
  }
  return end;
}

function rewriteValue(buf: Buffer, at: number): number {
  const tag = buf[at]!;
  at++;
  switch (String.fromCharCode(tag)) {
    case 'V': return at;
    case 't': case 'b': case 'B': return at + 1;
    case 's': case 'u': return at + 2;
    case 'I': case 'i': case 'f': return at + 4;
    case 'D': return at + 5;
    case 'L': buf[at - 1] = TAG_l; return at + 8;
    case 'l': case 'd': case 'T': return at + 8;
    case 'S': case 'x': return at + 4 + buf.readUInt32BE(at);
    case 'F': return rewriteTable(buf, at);
    case 'A': {
      const end = at + 4 + buf.readUInt32BE(at);
      for (let i = at + 4; i < end;) {
        i = rewriteValue(buf, i);
        if (i < 0) return -1;
      }
      return end;
    }
    default: return -1;
  }
}

/**
 * The first frame of `rest` with the `L` fields of its headers table rewritten to `l`, or
 * undefined when it is no content header frame with such a table.
 */
function withLongLongsAsSigned(rest: Buffer): Buffer | undefined {
  try {
    return rewriteHeaderFrame(rest);
  } catch {
    return undefined; // a frame shorter than its tables say: amqplib's error stands
  }
}

function rewriteHeaderFrame(rest: Buffer): Buffer | undefined {
  if (rest.length < 7 || rest[0] !== FRAME_HEADER) return undefined;
  const copy = Buffer.from(rest);
  // Frame: type (1), channel (2), size (4); a content header: class, weight, body size (12),
  // then the property flags and the properties in order: content type, encoding, headers.
  const flagsAt = 7 + 12;
  const flags = copy.readUInt16BE(flagsAt);
  if ((flags & 0x2000) === 0) return undefined;
  let at = flagsAt + 2;
  if (flags & 0x8000) at += 1 + copy[at]!;
  if (flags & 0x4000) at += 1 + copy[at]!;
  return rewriteTable(copy, at) < 0 ? undefined : copy;
}

/** The tolerant version of each `recvFrame` met (one, unless two amqplib copies are loaded). */
const tolerantReceivers = new WeakMap<(this: ConnectionInternals) => unknown, (this: ConnectionInternals) => unknown>();

/**
 * py-amqp (Python kombu, Celery) writes an integer header outside the 32-bit range (a
 * timestamp in milliseconds, a size) with the tag `L`, a signed 64-bit integer, which
 * RabbitMQ passes through. amqplib 2.x knows only `l` for the same bytes and throws
 * `Unexpected type tag "L"` while decoding the delivery: the whole connection dies, and since
 * the message goes back to the queue, every reconnect meets it again (a reconnect loop
 * without end). On that error the frame is decoded again with those tags read as `l`:
 * same bytes, same meaning. Any other error is amqplib's as before.
 */
export function acceptLongLongHeaders(internals: ConnectionInternals): void {
  const receive = internals.recvFrame;
  if (typeof receive !== 'function' || !Buffer.isBuffer(internals.rest)) return;
  let tolerant = tolerantReceivers.get(receive);
  if (!tolerant) {
    tolerant = function recvFrameTolerant(this: ConnectionInternals): unknown {
      const rest = this.rest;
      try {
        return receive.call(this);
      } catch (error) {
        // A frame read in a nested call (amqplib recurses after reading the socket) was
        // handled there; one that throws here was parsed from `rest`.
        const rewritten = error instanceof TypeError && error.message.includes(LONG_LONG_REFUSED) && rest ? withLongLongsAsSigned(rest) : undefined;
        if (!rewritten) throw error;
        this.rest = rewritten;
        return receive.call(this);
      }
    };
    tolerantReceivers.set(receive, tolerant);
  }
  internals.recvFrame = tolerant;
}
