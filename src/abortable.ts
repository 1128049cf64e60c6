/**
 * Waiting for something that cannot itself be cancelled (a channel opening, a pool member
 * coming free), for as long as nobody cancels the wait.
 */

/**
 * `pending`, unless `signal` aborts first: the wait then rejects at once with `reason()`, and
 * a value that still comes later goes to `discard` (closed, given back) instead of leaking.
 *
 * @example
 * ```ts
 * const channel = await unlessAborted(conn.channel(), signal, () => new ConnectionClosed('retired'), (ch) => void ch.close());
 * ```
 */
export function unlessAborted<T>(pending: Promise<T>, signal: AbortSignal, reason: () => Error, discard: (value: T) => void): Promise<T> {
  if (signal.aborted) {
    pending.then(discard, () => undefined);
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(reason());
    signal.addEventListener('abort', abort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        if (signal.aborted) discard(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(error);
      },
    );
  });
}
