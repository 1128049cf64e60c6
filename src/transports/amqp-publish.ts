/**
 * The publish path of one AMQP channel: the write, its confirm, the wait for amqplib's
 * `drain`, and the publishes held behind calls the pipeline holds (amqplib-pipelining.ts).
 *
 * Backpressure: amqplib's `publish` returns false when the channel's write buffer is full.
 * The next publishes wait for amqplib's `drain` first, so a fast publisher that awaits its
 * publishes cannot fill memory.
 *
 * Why a class of its own: it keeps amqp-channel.ts to the channel's calls and life; what a
 * failed publish rejects with is the channel's {@link ChannelEnd}'s to say. Made by a
 * channel's first publish (a consuming channel has none); its methods are the prototype's, so
 * a publish costs no more than it did inline.
 */
import type { ConfirmChannel } from 'amqplib';
import { OperationalError } from '../errors.js';
import type { ChannelEnd } from './amqp-channel-end.js';
import { toPublishOptions } from './amqp-properties.js';
import { callsHeld, holdPublish } from './amqplib-pipelining.js';
import type { MessageProperties, PublishOptions } from './transport.js';

/**
 * @example
 * ```ts
 * const publisher = new ChannelPublisher(ch, end);   // made by AmqpChannel's first publish
 * await publisher.publish(Buffer.from('{}'), { contentType: 'application/json' }, '', 'tasks', { confirm: true });
 * ```
 */
export class ChannelPublisher {
  readonly #ch: ConfirmChannel;
  readonly #end: ChannelEnd;
  /** Pending while amqplib's write buffer is full; released by its `drain` or by the channel's end. */
  #drain: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  constructor(ch: ConfirmChannel, end: ChannelEnd) {
    this.#ch = ch;
    this.#end = end;
  }

  publish(body: Buffer, properties: MessageProperties, exchange: string, routingKey: string, options: PublishOptions): Promise<void> {
    if (!this.#end.isOpen) return Promise.reject(this.#end.publishOvertaken(exchange) ?? this.#end.closedError('publish'));
    // The write buffer is full: wait for amqplib's drain, then look again (it may have closed).
    if (this.#drain) return this.#drain.then(() => this.publish(body, properties, exchange, routingKey, options));
    const publishOptions = toPublishOptions(properties, options.mandatory === true);
    // One promise per publish, settled by amqplib's confirm callback (or by the write when
    // confirms are off): this is the hot path, so no async frames are stacked on it.
    return new Promise<void>((resolve, reject) => {
      const confirm = options.confirm === true;
      if (!callsHeld(this.#ch)) {
        this.#send(body, publishOptions, exchange, routingKey, confirm, resolve, reject);
        return;
      }
      // Calls made before it and held by the pipeline take effect first (its queue, its binding).
      holdPublish(this.#ch, (ended) => {
        // The channel ended under the calls held before it: it never left.
        if (ended) this.#end.confirmError(ended, exchange).then(reject, reject);
        else this.#send(body, publishOptions, exchange, routingKey, confirm, resolve, reject);
      });
    });
  }

  /** amqplib's `drain` came, or the channel ended: the publishes waiting for it go on (or fail). */
  releaseDrain(): void {
    const drained = this.#drained;
    this.#drain = undefined;
    this.#drained = undefined;
    drained?.();
  }

  #send(
    body: Buffer, publishOptions: ReturnType<typeof toPublishOptions>, exchange: string, routingKey: string, confirm: boolean,
    resolve: () => void, reject: (error: unknown) => void,
  ): void {
    let written: boolean;
    try {
      written = confirm
        ? this.#ch.publish(exchange, routingKey, body, publishOptions, (error: unknown) => {
          if (error === null || error === undefined) resolve();
          else this.#end.confirmError(error, exchange).then(reject, reject);
        })
        : this.#ch.publish(exchange, routingKey, body, publishOptions);
    } catch (error) {
      reject(this.#end.isOpen
        ? new OperationalError(`Cannot publish on channel ${this.#end.channelId}: ${String(error)}`, { cause: error })
        : this.#end.closedError('publish'));
      return;
    }
    if (!written) this.#drain ??= new Promise<void>((release) => (this.#drained = release));
    if (confirm) return;
    if (written) resolve();
    else {
      // Closed before the buffer drained: the message may never have left.
      this.#drain?.then(() => (this.#end.open ? resolve() : reject(this.#end.closedError('publish'))), reject);
    }
  }
}
