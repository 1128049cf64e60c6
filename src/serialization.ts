/**
 * kombu's serializer registry (kombu/serialization.py, 5.2), byte-compatible on the wire.
 *
 * What kombu does and we copy:
 * - `dumps` without a serializer: a Buffer goes as `application/data` + `binary`, a string
 *   as `text/plain` + `utf-8`, anything else through the default serializer (`json`).
 *   `raw` is not a registered name but a special case of `dumps`.
 * - `loads` checks the content type against `accept` (content types or names) before it
 *   decodes anything; `application/data` and `application/text` are always trusted. A
 *   missing content type means `application/data`. With no decoder for the type, bytes are
 *   decoded as text in `contentEncoding` unless that is `binary`/`ascii-8bit`.
 * - Without `accept`, the content types disabled by `disableInsecureSerializers()` are
 *   refused; at load, every type but json is disabled (msgpack too), as in kombu.
 * See builtin-serializers.ts for the json/msgpack wire details, and pickle/yaml refusal.
 */
import { ContentDisallowed, DecodeError, EncodeError, KombuError, SerializationError } from './errors.js';
import { jsonDumps, jsonLoads, msgpackDumps, msgpackLoads, refusingCodec } from './builtin-serializers.js';

/** Turns a body into bytes (or text, encoded afterwards in the content encoding). */
export type Encoder = (body: unknown) => Buffer | Uint8Array | string;
/** Turns received bytes back into a body. */
export type Decoder = (data: Buffer) => unknown;

/** What `dumps` returns: the properties to send with the body. */
export interface Serialized {
  contentType: string;
  contentEncoding: string;
  body: Buffer;
}

/** Options of {@link SerializerRegistry.loads}. */
export interface LoadsOptions {
  /** Content types or serializer names to accept; others raise ContentDisallowed. */
  accept?: Iterable<string> | null;
  /** Decode even a content type that is disabled (used only when `accept` is not given). */
  force?: boolean;
}

/** Content types accepted whatever the accept list says (kombu's TRUSTED_CONTENT). */
export const TRUSTED_CONTENT: ReadonlySet<string> = new Set(['application/data', 'application/text']);
/** Content encodings whose bytes are returned as they are. */
export const SKIP_DECODE: ReadonlySet<string> = new Set(['binary', 'ascii-8bit']);
/** The accept list consumers use when none is given, as kombu. */
export const DEFAULT_ACCEPT: readonly string[] = Object.freeze(['json']);

const NOT_INSTALLED = 'SERIALIZER_NOT_INSTALLED';

interface Codec { contentType: string; contentEncoding: string; encoder: Encoder }

function toBuffer(payload: Buffer | Uint8Array | string, encoding: string): Buffer {
  if (typeof payload !== 'string') {
    return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  }
  return Buffer.from(payload, Buffer.isEncoding(encoding) && encoding !== 'binary' ? encoding : 'utf8');
}

function rethrowAs(wrapper: typeof EncodeError | typeof DecodeError, error: unknown): never {
  if (error instanceof KombuError) throw error;
  const message = error instanceof Error ? error.message : String(error);
  throw new wrapper(message, { cause: error });
}

/**
 * Keeps track of serialization methods by name and content type (kombu's SerializerRegistry).
 * A new registry is empty; {@link createSerializerRegistry} gives one with the built-ins.
 *
 * @example
 * ```ts
 * const reg = new SerializerRegistry();
 * reg.register('upper', (b) => String(b).toUpperCase(), (d) => d.toString(), 'text/x-upper', 'utf-8');
 * reg.dumps('hi', 'upper'); // { contentType: 'text/x-upper', contentEncoding: 'utf-8', body: <Buffer 48 49> }
 * ```
 */
export class SerializerRegistry {
  readonly #encoders = new Map<string, Codec>();
  readonly #decoders = new Map<string, Decoder>();
  readonly #disabled = new Set<string>();
  #default: Codec | undefined;
  /** Content type -> serializer name. */
  readonly typeToName = new Map<string, string>();
  /** Serializer name -> content type. */
  readonly nameToType = new Map<string, string>();

  /**
   * Registers an encoder and/or decoder under `name` and `contentType`.
   *
   * @param contentEncoding - the charset the encoder writes (`utf-8`), or `binary`.
   * @example
   * ```ts
   * registry.register('csv', toCsv, fromCsv, 'text/csv', 'utf-8');
   * ```
   */
  register(name: string, encoder: Encoder | null, decoder: Decoder | null, contentType: string,
    contentEncoding = 'utf-8'): void {
    if (encoder) this.#encoders.set(name, { contentType, contentEncoding, encoder });
    if (decoder) this.#decoders.set(contentType, decoder);
    this.typeToName.set(contentType, name);
    this.nameToType.set(name, contentType);
  }

  /**
   * Removes a serializer; throws SerializationError (code `SERIALIZER_NOT_INSTALLED`) if unknown.
   *
   * @example
   * ```ts
   * registry.unregister('csv');
   * ```
   */
  unregister(name: string): void {
    const contentType = this.nameToType.get(name);
    if (contentType === undefined) {
      throw new SerializationError(`No encoder/decoder installed for ${name}`, { code: NOT_INSTALLED });
    }
    this.#decoders.delete(contentType);
    this.#encoders.delete(name);
    this.typeToName.delete(contentType);
    this.nameToType.delete(name);
  }

  #contentType(nameOrType: string): string {
    if (nameOrType.includes('/')) return nameOrType;
    const contentType = this.nameToType.get(nameOrType);
    if (contentType === undefined) {
      throw new SerializationError(`No encoder/decoder installed for ${nameOrType}`, { code: NOT_INSTALLED });
    }
    return contentType;
  }

  /**
   * Lets `loads` (without `accept`) decode this serializer (name or content type) again.
   *
   * @example
   * ```ts
   * registry.enable('msgpack');
   * ```
   */
  enable(name: string): void {
    this.#disabled.delete(this.#contentType(name));
  }

  /**
   * Makes `loads` (without `accept`) refuse this serializer (name or content type).
   *
   * @example
   * ```ts
   * registry.disable('application/x-msgpack');
   * ```
   */
  disable(name: string): void {
    this.#disabled.add(this.#contentType(name));
  }

  /** True when `loads` without `accept` refuses this serializer (name or content type). */
  isDisabled(name: string): boolean {
    return this.#disabled.has(this.#contentType(name));
  }

  /** Content types that have a decoder. */
  decoderTypes(): string[] {
    return [...this.#decoders.keys()];
  }

  /**
   * Makes `name` the serializer `dumps` uses for non-string, non-Buffer bodies.
   *
   * @example
   * ```ts
   * registry.setDefaultSerializer('msgpack');
   * ```
   */
  setDefaultSerializer(name: string): void {
    const codec = this.#encoders.get(name);
    if (codec === undefined) throw new EncodeError(`No encoder installed for ${name}`, { code: NOT_INSTALLED });
    this.#default = codec;
  }

  /**
   * Serializes a body for sending (kombu's `dumps`).
   *
   * Without `serializer`, a Buffer/Uint8Array is sent as `application/data` + `binary`, a string
   * as `text/plain` + `utf-8`, anything else with the default serializer (`json`).
   * `serializer: 'raw'` sends bytes or text as they are under `application/data`.
   * Throws EncodeError (with `cause`) when the encoder fails or `serializer` is unknown.
   *
   * @example
   * ```ts
   * registry.dumps({ hello: 'world' });
   * // { contentType: 'application/json', contentEncoding: 'utf-8', body: <Buffer 7b 22 ...> }
   * ```
   */
  dumps(body: unknown, serializer?: string | null): Serialized {
    if (serializer === 'raw') return rawEncode(body);
    const isBytes = body instanceof Uint8Array;
    if (!serializer && isBytes) return { contentType: 'application/data', contentEncoding: 'binary', body: toBuffer(body, 'binary') };
    if (!serializer && typeof body === 'string') {
      return { contentType: 'text/plain', contentEncoding: 'utf-8', body: Buffer.from(body, 'utf8') };
    }
    const codec = serializer ? this.#encoders.get(serializer) : this.#default;
    if (codec === undefined) {
      throw new EncodeError(`No encoder installed for ${serializer ?? '(default)'}`, { code: NOT_INSTALLED });
    }
    try {
      const payload = codec.encoder(body);
      return { contentType: codec.contentType, contentEncoding: codec.contentEncoding, body: toBuffer(payload, codec.contentEncoding) };
    } catch (error) {
      return rethrowAs(EncodeError, error);
    }
  }

  /**
   * Deserializes a received body (kombu's `loads`).
   *
   * Refuses (ContentDisallowed) a content type missing from `accept` (names such as `'json'`
   * or content types such as `'application/json'`), except `application/data` and
   * `application/text`. Returns bytes for `binary` content without a decoder, text for other
   * content without a decoder, and the body as it is when it is empty. A failing decoder
   * raises DecodeError with the failure as `cause`.
   *
   * @example
   * ```ts
   * registry.loads(Buffer.from('{"a": 1}'), 'application/json', 'utf-8', { accept: ['json'] }); // { a: 1 }
   * registry.loads(Buffer.from('x'), 'application/x-msgpack', 'binary', { accept: ['json'] }); // throws ContentDisallowed
   * ```
   */
  loads(data: Buffer | Uint8Array | string, contentType: string | null | undefined,
    contentEncoding: string | null | undefined, options: LoadsOptions = {}): unknown {
    const type = contentType || 'application/data';
    if (options.accept != null) {
      if (!TRUSTED_CONTENT.has(type) && !this.prepareAcceptContent(options.accept).has(type)) {
        throw this.#refuse(type, 'untrusted');
      }
    } else if (this.#disabled.has(type) && !options.force) {
      throw this.#refuse(type, 'disabled');
    }
    const encoding = (contentEncoding || 'utf-8').toLowerCase();
    if (data.length === 0) return data;
    const decoder = this.#decoders.get(type);
    if (decoder) {
      try {
        return decoder(typeof data === 'string' ? Buffer.from(data, 'utf8') : toBuffer(data, 'binary'));
      } catch (error) {
        return rethrowAs(DecodeError, error);
      }
    }
    if (typeof data === 'string' || SKIP_DECODE.has(encoding)) return data;
    try {
      return new TextDecoder(encoding, { fatal: true }).decode(data);
    } catch (error) {
      return rethrowAs(DecodeError, error);
    }
  }

  /**
   * Maps serializer names to content types, keeping content types as they are (kombu's
   * `prepare_accept_content`). Throws SerializationError for an unknown name.
   *
   * @example
   * ```ts
   * registry.prepareAcceptContent(['json', 'application/x-msgpack']);
   * // Set { 'application/json', 'application/x-msgpack' }
   * ```
   */
  prepareAcceptContent(accept: Iterable<string>): Set<string> {
    const out = new Set<string>();
    for (const entry of accept) out.add(this.#contentType(entry));
    return out;
  }

  #refuse(contentType: string, why: string): ContentDisallowed {
    const name = this.typeToName.get(contentType);
    const alias = name ? `${name} (${contentType})` : contentType;
    return new ContentDisallowed(`Refusing to deserialize ${why} content of type ${alias}`);
  }
}

/**
 * kombu's `raw_encode`: bytes as `application/data` + `binary`, text as `application/data` + `utf-8`.
 *
 * @example
 * ```ts
 * rawEncode('héllo'); // { contentType: 'application/data', contentEncoding: 'utf-8', body: <Buffer 68 c3 a9 ...> }
 * ```
 */
export function rawEncode(body: unknown): Serialized {
  if (typeof body === 'string') return { contentType: 'application/data', contentEncoding: 'utf-8', body: Buffer.from(body, 'utf8') };
  if (body instanceof Uint8Array) return { contentType: 'application/data', contentEncoding: 'binary', body: toBuffer(body, 'binary') };
  throw new EncodeError(`the raw serializer takes a string or bytes, not ${body === null ? 'null' : typeof body}`);
}

/**
 * A registry with kombu's built-ins: `json` (default), `msgpack`, and `pickle`/`yaml` (refused),
 * with every decoder but json disabled, as kombu's global registry is at import.
 *
 * @example
 * ```ts
 * const reg = createSerializerRegistry();
 * reg.loads(reg.dumps([1, 2]).body, 'application/json', 'utf-8'); // [1, 2]
 * ```
 */
export function createSerializerRegistry(): SerializerRegistry {
  const reg = new SerializerRegistry();
  reg.register('json', jsonDumps, jsonLoads, 'application/json', 'utf-8');
  const pickle = refusingCodec('pickle', 'application/x-python-serialize');
  reg.register('pickle', pickle.encode, pickle.decode, 'application/x-python-serialize', 'binary');
  const yaml = refusingCodec('yaml', 'application/x-yaml');
  reg.register('yaml', yaml.encode, yaml.decode, 'application/x-yaml', 'utf-8');
  reg.register('msgpack', msgpackDumps, msgpackLoads, 'application/x-msgpack', 'binary');
  reg.setDefaultSerializer('json');
  for (const type of reg.decoderTypes()) if (type !== 'application/json') reg.disable(type);
  return reg;
}

/** The global registry the module functions use (kombu's `kombu.serialization.registry`). */
export const registry: SerializerRegistry = createSerializerRegistry();

/** {@link SerializerRegistry.register} on the global registry. @example `register('csv', toCsv, fromCsv, 'text/csv')` */
export const register = (...args: Parameters<SerializerRegistry['register']>): void => registry.register(...args);
/** {@link SerializerRegistry.unregister} on the global registry. @example `unregister('csv')` */
export const unregister = (name: string): void => registry.unregister(name);
/** {@link SerializerRegistry.dumps} on the global registry. @example `dumps({ a: 1 }).body.toString() // '{"a":1}'` */
export const dumps = (body: unknown, serializer?: string | null): Serialized => registry.dumps(body, serializer);
/** {@link SerializerRegistry.loads} on the global registry. @example `loads(buf, 'application/json', 'utf-8', { accept: ['json'] })` */
export const loads = (...args: Parameters<SerializerRegistry['loads']>): unknown => registry.loads(...args);
/** {@link SerializerRegistry.prepareAcceptContent} on the global registry. @example `prepareAcceptContent(['json']) // Set {'application/json'}` */
export const prepareAcceptContent = (accept: Iterable<string>): Set<string> => registry.prepareAcceptContent(accept);

/**
 * Lets `loads` without `accept` decode the given serializers (names or content types);
 * by default pickle, yaml and msgpack, as kombu. Unknown names are ignored. pickle and yaml
 * are still refused by their decoders: kombu-ts cannot decode them.
 *
 * @example
 * ```ts
 * enableInsecureSerializers(['msgpack']);
 * ```
 */
export function enableInsecureSerializers(choices: readonly string[] | null = ['pickle', 'yaml', 'msgpack']): void {
  for (const choice of choices ?? []) {
    try { registry.enable(choice); } catch { /* unknown: ignored, as kombu */ }
  }
}

/**
 * Disables every decoder but the `allowed` ones (default `['json']`) for `loads` without
 * `accept`. Producers can still serialize in any format.
 *
 * @example
 * ```ts
 * disableInsecureSerializers(['json', 'msgpack']);
 * ```
 */
export function disableInsecureSerializers(allowed: readonly string[] | null = ['json']): void {
  for (const type of registry.decoderTypes()) registry.disable(type);
  for (const name of allowed ?? []) registry.enable(name);
}
