/**
 * `pipelineCalls`: a channel's calls go out at once instead of one per round trip, by
 * replacing amqplib's `sendOrEnqueue` on that channel (see amqplib-internals.ts for the other
 * adaptations of amqplib's internals, and the channel internals used here). Pinned down by
 * test/integration/amqp-pipelining.test.ts.
 */
import type { ConfirmChannel } from 'amqplib';
import type { ChannelInternals, Reply } from './amqplib-internals.js';

/** A call sent and its answer awaited; `late` for basic.consume and basic.cancel (see {@link pipelineCalls}). */
interface Sent {
  reply: Reply;
  late: boolean;
  method: number;
  fields: Record<string, unknown>;
}
/** A call not sent yet: it waits for the late answers in flight. */
interface HeldCall {
  method: number;
  fields: Record<string, unknown>;
  reply: Reply;
}
/** A publish made behind held calls: `send` publishes it once they are sent, or fails it with why they never will be. */
interface HeldPublish {
  send: (error?: Error) => void;
}
type Held = HeldCall | HeldPublish;
const isPublish = (held: Held): held is HeldPublish => 'send' in held;
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
 * behind them, and everything after it, is held until their answers are in. Publishes made
 * behind a held call are held with it (see {@link holdPublish}): the calls must take effect
 * before them. Acks are not held: an ack depends on no declaration.
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

/** True while calls made on `channel` are held (see {@link pipelineCalls}): a publish made now goes through {@link holdPublish}. */
export function callsHeld(channel: ConfirmChannel): boolean {
  return (pipelines.get(channel as unknown as ChannelInternals)?.held.length ?? 0) > 0;
}

/**
 * Holds a publish made while calls are held (see {@link callsHeld}): `send` runs once the
 * calls made before it are sent, or with an error should the channel end first.
 *
 * A publish is no call (nothing answers it), so nothing holds it for its own sake; but the
 * broker routes it when it reads it, and a queue.declare or queue.bind made before it and held
 * must take effect first: a publish overtaking them finds no queue and is dropped, confirmed
 * all the same. The whole publish is held, amqplib's confirm bookkeeping included, so that
 * its confirm keeps its place among the channel's publishes.
 */
export function holdPublish(channel: ConfirmChannel, send: (ended?: Error) => void): void {
  pipelines.get(channel as unknown as ChannelInternals)?.held.push({ send });
}

/** Sends the held calls and publishes the late answers in flight no longer hold back; a call that cannot be sent fails through its callback. */
function release(channel: ChannelInternals, pipeline: Pipeline): void {
  while (pipeline.held.length > 0) {
    const next = pipeline.held[0]!;
    if (isPublish(next)) {
      pipeline.held.shift();
      next.send();
      continue;
    }
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
      for (const { reply } of pipeline.replies.splice(0)) reply(new Error(CHANNEL_ENDED));
      for (const held of pipeline.held.splice(0)) {
        if (isPublish(held)) held.send(new Error(CHANNEL_ENDED));
        else held.reply(new Error(CHANNEL_ENDED));
      }
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
