/**
 * Garbage collection on demand, for tests that prove something is no longer kept: V8's `gc`
 * exposed at run time (no `--expose-gc` flag needed on the test runner).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Runs full collections between turns of the event loop: a WeakRef's target read in this
 * turn is kept until the turn ends, so each collection waits for the next one.
 */
export async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
}
