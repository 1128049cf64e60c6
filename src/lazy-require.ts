/**
 * Loads optional packages on first use.
 *
 * kombu-ts keeps its optional codecs (msgpackr, compressjs, lzma-native) out of the import
 * graph: importing kombu-ts never fails because one of them is absent, and a program that
 * never uses msgpack never loads it. The first call that needs the package loads it
 * synchronously with `createRequire` (all of them ship CommonJS), so the serialization and
 * compression APIs stay synchronous like kombu's. A missing package becomes a
 * {@link DriverMissingError} whose message says what to install.
 */
import { createRequire } from 'node:module';
import { DriverMissingError } from './errors.js';

const requireFromHere = createRequire(import.meta.url);

function isModuleNotFound(error: unknown, pkg: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND')
    && typeof message === 'string' && message.includes(`'${pkg}'`);
}

/**
 * Returns a function that loads `pkg` the first time it is called and returns the cached
 * module afterwards.
 *
 * Throws {@link DriverMissingError} (code `MODULE_NOT_FOUND`) when the package is not
 * installed, and {@link DriverMissingError} with the load failure as `cause` when it is
 * installed but cannot load (a native binding without a prebuild for this platform).
 *
 * @param pkg - the package name, as given to `require`.
 * @param purpose - what needs it, for the error message ("msgpack serialization").
 *
 * @example
 * ```ts
 * const loadMsgpackr = lazyRequire<typeof import('msgpackr')>('msgpackr', 'msgpack serialization');
 * const { Packr } = loadMsgpackr(); // throws DriverMissingError "... install msgpackr" when absent
 * ```
 */
export function lazyRequire<T>(pkg: string, purpose: string): () => T {
  let loaded = false;
  let cached: T | undefined;
  return () => {
    if (loaded) return cached as T;
    try {
      cached = requireFromHere(pkg) as T;
    } catch (error) {
      if (isModuleNotFound(error, pkg)) {
        throw new DriverMissingError(
          `${purpose} needs the optional package "${pkg}": install ${pkg} (npm install ${pkg})`,
          { cause: error, code: 'MODULE_NOT_FOUND' },
        );
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new DriverMissingError(
        `${purpose} needs the optional package "${pkg}", which is installed but failed to load (${reason}); reinstall ${pkg}`,
        { cause: error },
      );
    }
    loaded = true;
    return cached;
  };
}
