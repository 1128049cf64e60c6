/**
 * A minimal external store: `subscribe`, `getSnapshot` and the interop symbol, so that React's
 * `useSyncExternalStore(store.subscribe, store.getSnapshot)`, Svelte's store contract and
 * RxJS's `from(store)` take a Connection or a Pool as it is.
 */

/** An observer in the TC39/RxJS shape. */
export interface Observer<T> {
  next?: (value: T) => void;
  error?: (error: unknown) => void;
  complete?: () => void;
}

/** What `subscribe` returns: call it, or call `.unsubscribe()` (RxJS). */
export type Unsubscribe = (() => void) & { unsubscribe(): void };

/** The interop symbol RxJS and others look for. */
export const observableSymbol: symbol | '@@observable' =
  (Symbol as unknown as { observable?: symbol }).observable ?? '@@observable';

/**
 * Holds the latest snapshot and notifies subscribers when it changes. Svelte's contract (call
 * the listener at once with the current value) is followed by `subscribe`; React's
 * `useSyncExternalStore` tolerates that first call.
 */
export class Store<T> {
  #value: T;
  /** Made on the first subscription: most stores are only read. */
  #observers: Set<Observer<T>> | undefined;
  #done = false;

  constructor(initial: T) {
    this.#value = initial;
  }

  /** The latest value. Bound, so it can be handed out as it is (`useSyncExternalStore`). */
  readonly get = (): T => this.#value;

  set(value: T): void {
    this.#value = value;
    if (!this.#observers?.size) return;
    for (const observer of [...this.#observers]) {
      try {
        observer.next?.(value);
      } catch (error) {
        // A subscriber's bug must not break the lifecycle that feeds it: surface it as Node does.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Bound, as {@link get}. */
  readonly subscribe = (listener: ((value: T) => void) | Observer<T>): Unsubscribe => {
    const observer: Observer<T> = typeof listener === 'function' ? { next: listener } : listener;
    const off = (): void => {
      this.#observers?.delete(observer);
    };
    const unsubscribe = Object.assign(off, { unsubscribe: off });
    if (this.#done) {
      observer.next?.(this.#value);
      observer.complete?.();
      return unsubscribe;
    }
    (this.#observers ??= new Set()).add(observer);
    observer.next?.(this.#value);
    return unsubscribe;
  };

  /** Ends the stream: observers get `complete()` and are dropped. */
  complete(): void {
    if (this.#done) return;
    this.#done = true;
    const observers = this.#observers;
    this.#observers = undefined;
    if (observers) for (const observer of observers) observer.complete?.();
  }
}

/** Makes `target` an interop observable (for RxJS `from()`), delegating to its `subscribe`. */
export function installObservable(prototype: object): void {
  for (const key of new Set([observableSymbol, '@@observable'])) {
    Object.defineProperty(prototype, key, {
      value: function (this: unknown) {
        return this;
      },
      configurable: true,
    });
  }
}
