/**
 * kombu's compression registry (kombu/compression.py, 5.2), byte-compatible on the wire.
 *
 * Convention (kombu's Producer/Message): the producer compresses the serialized body and
 * sets the message header `compression` to the *content type* returned by `compress()`
 * (`application/x-gzip`, not `zlib`); the consumer calls `decompress(body, headers.compression)`
 * before deserializing. Codecs are keyed by content type; names are aliases.
 *
 * Formats, as Python writes them:
 * - `application/x-gzip` (aliases `zlib`, `gzip`): despite the type and the alias, kombu
 *   writes a *zlib* stream (`zlib.compress`). We write the same, and decompress zlib or gzip.
 * - `application/x-bz2` (`bzip2`, `bzip`): bz2 via compressjs (pure JS, loaded on first use).
 * - `application/x-lzma` (`lzma`, `xz`): Python's `lzma.compress` default, the .xz container
 *   with a CRC64 check, via lzma-native (prebuilt liblzma, loaded on first use); decoding
 *   also takes the legacy .lzma format, as Python's FORMAT_AUTO does.
 * - `application/x-brotli` (`brotli`): Node's built-in brotli.
 * - `application/zstd` (`zstd`, `zstandard`): Node's built-in zstd where Node has it (22.15+).
 * Every codec is synchronous, so the whole API is synchronous, like kombu's.
 */
import * as zlib from 'node:zlib';
import { DecodeError, DriverMissingError, EncodeError, KombuError } from './errors.js';
import { lazyRequire } from './lazy-require.js';

/** Compresses bytes. */
export type CompressFn = (body: Buffer) => Buffer | Uint8Array;
/** Decompresses bytes. */
export type DecompressFn = (body: Buffer) => Buffer | Uint8Array;

/** What `compress` returns: the compressed body and the value of the `compression` header. */
export interface Compressed {
  body: Buffer;
  contentType: string;
}

function asBuffer(data: Buffer | Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function rethrowAs(wrapper: typeof EncodeError | typeof DecodeError, what: string, error: unknown): never {
  if (error instanceof KombuError) throw error;
  const message = error instanceof Error ? error.message : String(error);
  throw new wrapper(`${what}: ${message}`, { cause: error });
}

/**
 * Compression methods by content type, with name aliases (kombu's module-level registry).
 * A new registry is empty; {@link createCompressionRegistry} gives one with the built-ins.
 *
 * @example
 * ```ts
 * const reg = new CompressionRegistry();
 * reg.register('deflate-raw', zlib.deflateRawSync, zlib.inflateRawSync, 'application/x-deflate');
 * reg.compress(Buffer.from('hi'), 'deflate-raw').contentType; // 'application/x-deflate'
 * ```
 */
export class CompressionRegistry {
  readonly #encoders = new Map<string, CompressFn>();
  readonly #decoders = new Map<string, DecompressFn>();
  readonly #aliases = new Map<string, string>();

  /**
   * Registers a method under its content type; `name` and `aliases` resolve to it.
   *
   * @example
   * ```ts
   * registry.register('snappy', snappy.compressSync, snappy.uncompressSync, 'application/x-snappy', ['snap']);
   * ```
   */
  register(name: string, compress: CompressFn, decompress: DecompressFn, contentType: string,
    aliases: readonly string[] = []): void {
    this.#encoders.set(contentType, compress);
    this.#decoders.set(contentType, decompress);
    for (const alias of [name, ...aliases]) this.#aliases.set(alias, contentType);
  }

  /**
   * The content types of the registered methods (kombu's `encoders()`).
   *
   * @example
   * ```ts
   * registry.encoders(); // ['application/x-gzip', 'application/x-bz2', ...]
   * ```
   */
  encoders(): string[] {
    return [...this.#encoders.keys()];
  }

  /**
   * The names (aliases) accepted by `compress`/`decompress`, besides content types.
   *
   * @example
   * ```ts
   * registry.names(); // ['zlib', 'gzip', 'bzip2', 'bzip', ...]
   * ```
   */
  names(): string[] {
    return [...this.#aliases.keys()];
  }

  /** The content type a name or content type stands for. */
  resolve(method: string): string {
    return this.#aliases.get(method) ?? method;
  }

  /**
   * The compress function and content type for a name or content type (kombu's `get_encoder`).
   * Throws EncodeError for an unknown method.
   *
   * @example
   * ```ts
   * const { encoder, contentType } = registry.getEncoder('zlib'); // contentType 'application/x-gzip'
   * ```
   */
  getEncoder(method: string): { encoder: CompressFn; contentType: string } {
    const contentType = this.resolve(method);
    const encoder = this.#encoders.get(contentType);
    if (encoder === undefined) throw new EncodeError(`No compression method registered for ${method}`);
    return { encoder, contentType };
  }

  /**
   * The decompress function for a name or content type (kombu's `get_decoder`).
   * Throws DecodeError for an unknown method.
   *
   * @example
   * ```ts
   * registry.getDecoder('application/x-bz2')(body);
   * ```
   */
  getDecoder(method: string): DecompressFn {
    const decoder = this.#decoders.get(this.resolve(method));
    if (decoder === undefined) throw new DecodeError(`No compression method registered for ${method}`);
    return decoder;
  }

  /**
   * Compresses a body; set the message header `compression` to the returned `contentType`.
   * Strings are compressed as UTF-8. Throws EncodeError (with `cause`) on failure, and
   * DriverMissingError when the codec's optional package is not installed.
   *
   * @example
   * ```ts
   * const { body, contentType } = registry.compress(Buffer.from('{"a":1}'), 'zlib');
   * headers.compression = contentType; // 'application/x-gzip'
   * ```
   */
  compress(body: Buffer | Uint8Array | string, method: string): Compressed {
    const { encoder, contentType } = this.getEncoder(method);
    try {
      return { body: asBuffer(encoder(asBuffer(body))), contentType };
    } catch (error) {
      return rethrowAs(EncodeError, `${contentType} compression failed`, error);
    }
  }

  /**
   * Decompresses a body compressed with `contentType` (the `compression` header; names work
   * too). Throws DecodeError (with `cause`) on corrupt data.
   *
   * @example
   * ```ts
   * const raw = registry.decompress(message.body, message.headers['compression'] as string);
   * ```
   */
  decompress(body: Buffer | Uint8Array | string, contentType: string): Buffer {
    const decoder = this.getDecoder(contentType);
    try {
      return asBuffer(decoder(asBuffer(body)));
    } catch (error) {
      return rethrowAs(DecodeError, `${this.resolve(contentType)} decompression failed`, error);
    }
  }
}

// ---- built-in codecs ------------------------------------------------------------------

/** zlib stream or gzip member: Node's unzip tells them apart by their header. */
function zlibOrGzipDecompress(body: Buffer): Buffer {
  return zlib.unzipSync(body);
}

interface Bzip2Module { Bzip2: { compressFile(input: Uint8Array): Uint8Array; decompressFile(input: Uint8Array): Uint8Array } }
const loadCompressjs = lazyRequire<Bzip2Module>('compressjs', 'bzip2 compression');

interface LzmaNativeStream {
  easyEncoder(options: { preset: number; check: number }): void;
  autoDecoder(options: { flags: number }): void;
  bufferHandler: (buf: Buffer | null | undefined, processed: number | undefined, error: unknown) => void;
  code(chunk: Buffer | null, async: boolean): void;
  resetUnderlying(): void;
}
interface LzmaNativeModule {
  Stream: new () => LzmaNativeStream;
  CHECK_CRC64: number;
  CONCATENATED: number;
}
const loadLzmaNative = lazyRequire<LzmaNativeModule>('lzma-native', 'lzma (xz) compression');

/**
 * Runs an lzma-native stream synchronously. Its public API is stream/promise based; its
 * native Stream codes synchronously when `code(chunk, false)` and reports each output
 * buffer (then null at the end, or an error) through `bufferHandler` before returning.
 */
function runLzma(setup: (stream: LzmaNativeStream, lz: LzmaNativeModule) => void, input: Buffer): Buffer {
  const lz = loadLzmaNative();
  const stream = new lz.Stream();
  setup(stream, lz);
  const out: Buffer[] = [];
  let failure: unknown;
  stream.bufferHandler = (buf, _processed, error) => {
    if (error) failure ??= error;
    else if (buf) out.push(buf);
  };
  try {
    if (input.length > 0) stream.code(input, false);
    if (failure === undefined) stream.code(null, false);
  } finally {
    stream.resetUnderlying();
  }
  if (failure !== undefined) throw failure;
  return Buffer.concat(out);
}

const PYTHON_LZMA_PRESET = 6;

type ZstdZlib = { zstdCompressSync?: (b: Buffer) => Buffer; zstdDecompressSync?: (b: Buffer) => Buffer };
function zstd(which: 'zstdCompressSync' | 'zstdDecompressSync'): (b: Buffer) => Buffer {
  const fn = (zlib as ZstdZlib)[which];
  if (fn === undefined) {
    throw new DriverMissingError(`zstd compression needs Node.js >= 22.15 (node:zlib zstd); this is ${process.version}`);
  }
  return fn;
}

/**
 * A registry with kombu 5.2's methods: zlib (`application/x-gzip`), bzip2, lzma/xz, brotli, zstd.
 *
 * @example
 * ```ts
 * const reg = createCompressionRegistry();
 * reg.decompress(reg.compress('hello', 'xz').body, 'application/x-lzma').toString(); // 'hello'
 * ```
 */
export function createCompressionRegistry(): CompressionRegistry {
  const reg = new CompressionRegistry();
  reg.register('zlib', (b) => zlib.deflateSync(b), zlibOrGzipDecompress, 'application/x-gzip', ['gzip']);
  reg.register('bzip2', (b) => loadCompressjs().Bzip2.compressFile(b),
    (b) => loadCompressjs().Bzip2.decompressFile(b), 'application/x-bz2', ['bzip']);
  reg.register('brotli', (b) => zlib.brotliCompressSync(b), (b) => zlib.brotliDecompressSync(b),
    'application/x-brotli');
  reg.register('lzma',
    (b) => runLzma((s, lz) => s.easyEncoder({ preset: PYTHON_LZMA_PRESET, check: lz.CHECK_CRC64 }), b),
    (b) => runLzma((s, lz) => s.autoDecoder({ flags: lz.CONCATENATED }), b),
    'application/x-lzma', ['xz']);
  reg.register('zstd', (b) => zstd('zstdCompressSync')(b), (b) => zstd('zstdDecompressSync')(b),
    'application/zstd', ['zstandard']);
  return reg;
}

/** The global registry the module functions use. */
export const compressionRegistry: CompressionRegistry = createCompressionRegistry();

/** {@link CompressionRegistry.register} on the global registry. @example `register('snappy', c, d, 'application/x-snappy')` */
export const register = (...args: Parameters<CompressionRegistry['register']>): void => compressionRegistry.register(...args);
/** {@link CompressionRegistry.encoders} on the global registry. @example `encoders().includes('application/x-bz2')` */
export const encoders = (): string[] => compressionRegistry.encoders();
/** {@link CompressionRegistry.getEncoder} on the global registry. @example `getEncoder('zlib').contentType // 'application/x-gzip'` */
export const getEncoder = (method: string): { encoder: CompressFn; contentType: string } => compressionRegistry.getEncoder(method);
/** {@link CompressionRegistry.getDecoder} on the global registry. @example `getDecoder('application/x-gzip')(body)` */
export const getDecoder = (method: string): DecompressFn => compressionRegistry.getDecoder(method);
/** {@link CompressionRegistry.compress} on the global registry. @example `compress(body, 'bzip2') // { body, contentType: 'application/x-bz2' }` */
export const compress = (body: Buffer | Uint8Array | string, method: string): Compressed => compressionRegistry.compress(body, method);
/** {@link CompressionRegistry.decompress} on the global registry. @example `decompress(body, headers.compression)` */
export const decompress = (body: Buffer | Uint8Array | string, contentType: string): Buffer => compressionRegistry.decompress(body, contentType);
