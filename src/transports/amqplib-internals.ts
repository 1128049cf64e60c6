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
 * - `pipelineCalls`: a channel's calls go out at once, not one per round trip (except behind
 *   a basic.consume or basic.cancel, whose answers RabbitMQ sends late).
 * - `acceptLongLongHeaders`: reads the `L` (64-bit integer) header values py-amqp writes,
 *   which amqplib refuses with a connection-killing error.
 *
 * The tests that pin them down: test/integration/amqplib-internals.test.ts (the handshake
 * collected, every way a socket ends after open, confirm channels), the confirm-mode test in
 * amqp-transport.test.ts, and the throughput benchmark.
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';

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
interface ChannelInternals {
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
type Reply = (error: unknown, frame?: unknown) => unknown;

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

/** A call sent and its answer awaited; `late` for basic.consume and basic.cancel (see {@link pipelineCalls}). */
interface Sent {
  reply: Reply;
  late: boolean;
  method: number;
  fields: Record<string, unknown>;
}
/** A call not sent yet: it waits for the late answers in flight. */
interface Held {
  method: number;
  fields: Record<string, unknown>;
  reply: Reply;
}
/** A channel's answers still awaited, in the order its calls were sent, the calls held back, and the one dispatcher amqplib calls for each answer. */
interface Pipeline {
  replies: Sent[];
  /** How many of `replies` are late. */
  late: number;
  held: Held[];
  dispatch: Reply;
}
const pipelines = new WeakMap<ChannelInternals, Pipeline>();

/** What amqplib gives the calls still waiting when a channel ends. */
const CHANNEL_ENDED = 'Channel ended, no reply will be forthcoming';

/** basic.consume and basic.cancel (class 60, methods 20 and 30). */
const BASIC_CONSUME = (60 << 16) | 20;
const BASIC_CANCEL = (60 << 16) | 30;

/**
 * amqplib sends a channel's calls one at a time: each waits for the answer to the one before,
 * a round trip per call. The broker reads a channel's frames in order and answers them in
 * order, so the calls can all go at once, their answers matched to them in that order: a
 * recovery restoring ten queues, their bindings and consumers costs one round trip instead of
 * thirty, and so do calls an application makes together (`Promise.all`).
 *
 * Except basic.consume and basic.cancel: RabbitMQ's queue sends their consume-ok and
 * cancel-ok through the channel's mailbox, behind the frames already read, so it answers the
 * calls sent after them first (a queue.declare behind a consume gets its declare-ok before the
 * consume-ok). Their oks keep their order among themselves (each is queued before the next
 * consume or cancel is handled), so consumes and cancels go out together; any other call
 * behind them, and everything after it, is held until their answers are in.
 *
 * `sendOrEnqueue` is replaced on this channel only (other amqplib users in the process are
 * untouched): with no call in flight it does what amqplib does; with one in flight it sends at
 * once (or holds the call) and queues the answer's callback. amqplib still calls `reply` with
 * each answer, which is then our dispatcher: it hands the answer to the oldest call and stays
 * in place while more are awaited. When the broker closes the channel, the oldest call gets
 * the close (amqplib tells from it whether that call was refused) and the others the error
 * amqplib gives to calls a channel ends under. amqplib's `pending` stays empty throughout.
 * Only a channel with the internals described here is changed; with another amqplib it stays
 * one call at a time.
 */
export function pipelineCalls(channel: ConfirmChannel): void {
  const internals = channel as unknown as Partial<ChannelInternals>;
  if (typeof internals.sendOrEnqueue !== 'function' || typeof internals.sendImmediately !== 'function') return;
  if (!('reply' in internals) || !Array.isArray(internals.pending)) return;
  internals.sendOrEnqueue = sendPipelined;
}

function sendPipelined(this: ChannelInternals, method: number, fields: Record<string, unknown>, reply: Reply): void {
  const late = method === BASIC_CONSUME || method === BASIC_CANCEL;
  let pipeline = pipelines.get(this);
  if (!pipeline && this.reply === null && !late) {
    // Nothing in flight: as amqplib.
    this.reply = reply;
    try {
      this.sendImmediately(method, fields);
    } catch (error) {
      this.reply = null;
      throw error;
    }
    return;
  }
  if (!pipeline) {
    // A call in flight without a pipeline was sent as amqplib does, so it is no late one.
    pipeline = { replies: this.reply ? [{ reply: this.reply, late: false, method: 0, fields: {} }] : [], late: 0, held: [], dispatch: dispatcher(this) };
    pipelines.set(this, pipeline);
  }
  if (pipeline.held.length > 0 || (!late && pipeline.late > 0)) {
    pipeline.held.push({ method, fields, reply });
    return;
  }
  send(this, pipeline, method, fields, reply, late);
}

/** Sends a call behind those in flight (throws as amqplib's send does; nothing is then awaited for it). */
function send(channel: ChannelInternals, pipeline: Pipeline, method: number, fields: Record<string, unknown>, reply: Reply, late: boolean): void {
  pipeline.replies.push({ reply, late, method, fields });
  if (late) pipeline.late++;
  channel.reply = pipeline.dispatch;
  try {
    channel.sendImmediately(method, fields);
  } catch (error) {
    pipeline.replies.pop();
    if (late) pipeline.late--;
    if (pipeline.replies.length === 0 && pipeline.held.length === 0) {
      pipelines.delete(channel);
      channel.reply = null;
    }
    throw error;
  }
}

/** Sends the held calls the late answers in flight no longer hold back; one that cannot be sent fails through its callback. */
function release(channel: ChannelInternals, pipeline: Pipeline): void {
  while (pipeline.held.length > 0) {
    const next = pipeline.held[0]!;
    const late = next.method === BASIC_CONSUME || next.method === BASIC_CANCEL;
    if (!late && pipeline.late > 0) return;
    pipeline.held.shift();
    try {
      send(channel, pipeline, next.method, next.fields, next.reply, late);
    } catch (error) {
      next.reply(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/**
 * Which of the unanswered calls the broker's close `error` refused: the oldest, as the broker
 * handles a channel's frames in order. But a refused basic.consume may have consumes before it
 * whose oks the broker had not sent yet (see {@link pipelineCalls}), never to come: the one
 * refused is then the consume whose queue the broker's text names ("no queue 'q'", "queue 'q'
 * in exclusive use", "locked queue 'q'"); the oldest when none does.
 */
function refusedCall(replies: readonly Sent[], error: unknown): number {
  const close = (error as { fields?: { classId?: unknown; methodId?: unknown; replyText?: unknown } } | null)?.fields;
  if (!close || typeof close.replyText !== 'string' || (Number(close.classId) << 16 | Number(close.methodId)) !== BASIC_CONSUME) return 0;
  const text = close.replyText;
  for (let i = 0; i < replies.length && replies[i]!.late; i++) {
    const queue = replies[i]!.fields['queue'];
    if (replies[i]!.method === BASIC_CONSUME && typeof queue === 'string' && queue !== '' && text.includes(`queue '${queue}'`)) return i;
  }
  return 0;
}

/** The one function amqplib calls with each answer while several are awaited (made when a second call goes out). */
function dispatcher(channel: ChannelInternals): Reply {
  return (error: unknown, frame?: unknown): unknown => {
    const pipeline = pipelines.get(channel);
    if (!pipeline) return undefined;
    if (error !== null) {
      // The channel ended (closed by the broker: `error` is its close frame) or is ending.
      pipelines.delete(channel);
      const [refused] = pipeline.replies.splice(refusedCall(pipeline.replies, error), 1);
      for (const { reply } of [...pipeline.replies.splice(0), ...pipeline.held.splice(0)]) reply(new Error(CHANNEL_ENDED));
      return refused?.reply(error);
    }
    const oldest = pipeline.replies.shift();
    if (oldest?.late) pipeline.late--;
    // Before the answer's callback, which may make calls of its own: they go behind the held ones.
    release(channel, pipeline);
    // amqplib cleared `reply` before calling us: stay in place while answers are awaited.
    if (pipeline.replies.length > 0) channel.reply = pipeline.dispatch;
    else pipelines.delete(channel);
    return oldest?.reply(null, frame);
  };
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
