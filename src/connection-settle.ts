/**
 * Waiting for a connection actor to settle after a `connect`: what `connect()` and
 * `ensureConnection()` await. It resolves when the actor is `connected` and rejects when it is
 * closed, when it failed, or (through `onFailure`) when the caller's own retries are spent.
 *
 * A function of the link, not a method of Connection: it needs only what the link holds (the
 * actor, the last real error, the masked broker URLs), and it keeps connection.ts to the
 * facade. Its closures live as long as one wait, never as long as the connection.
 */
import { summarizeError } from '../machines/index.js';
import type { ConnectionLink } from './connection-link.js';
import type { ConnectionState } from './connection-status.js';
import { ConnectionClosed, ConnectionError, TimeoutError } from './errors.js';
import { afterSeconds, type Timer } from './seconds.js';

const settled = (state: ConnectionState): boolean => state === 'connected' || state === 'failed' || state === 'closing' || state === 'closed';

/**
 * Waits until `link`'s actor settles after a `connect`; resolves with `value` when connected.
 * `from` is the state the wait starts in. `onFailure` is called once per failed attempt; when
 * it returns true the wait gives up with the last error. At `timeout` the wait rejects, and
 * with `cancel` it also stops the attempt (the caller's own; a reconnect the caller only
 * joined goes on).
 *
 * @example
 * ```ts
 * const wait = settle(this, link, 'idle', policy.timeout, onFailure, true);
 * link.actor.send({ type: 'connect', schedule });
 * return wait;
 * ```
 */
export function settle<T>(
  value: T,
  link: ConnectionLink,
  from: ConnectionState,
  timeout: number | undefined,
  onFailure?: (state: ConnectionState) => boolean,
  cancel = true,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let timer: Timer | undefined;
    let last = from;
    const finish = (state: ConnectionState): boolean => {
      const entered = state !== last;
      last = state;
      if (!settled(state) && !(state === 'backoff' || state === 'failover')) return false;
      if (state === 'backoff' || state === 'failover') {
        // A snapshot without a state change (a channel opened meanwhile) is no new failure.
        if (!entered || !onFailure?.(state)) return false;
      }
      sub.unsubscribe();
      timer?.cancel();
      if (state === 'connected') resolve(value);
      else if (state === 'closing' || state === 'closed') reject(new ConnectionClosed('Connection was closed.'));
      else reject(link.lastError ?? new ConnectionError('Connection failed.')); // backoff, failover, failed
      return true;
    };
    const sub = link.actor.subscribe({
      next: (snapshot) => finish(snapshot.value as ConnectionState),
      complete: () => finish('closed'),
    });
    if (timeout !== undefined) {
      timer = afterSeconds(timeout, () => {
        sub.unsubscribe();
        const error = new TimeoutError(`Could not connect to ${link.hosts.join(', ')} within ${timeout} s.`);
        if (cancel) {
          link.lastError = error;
          link.actor.send({ type: 'cancel', error: summarizeError(error) });
        }
        reject(error);
      });
    }
  });
}
