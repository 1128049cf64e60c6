/**
 * The codecs behind kombu's built-in serializer names, written for Python interop.
 *
 * json: kombu 5.2 writes `json.dumps(obj)` with Python's defaults, i.e. `", "` / `": "`
 * separators, `ensure_ascii=True` (`"\u00e9"`), and the non-JSON tokens `NaN`, `Infinity`,
 * `-Infinity` for non-finite floats. We decode all of that (JSON.parse, plus a fallback
 * for the three tokens) and encode compactly with `JSON.stringify` (raw UTF-8, no spaces),
 * which kombu and Celery read fine. BigInts are written as JSON integers, as Python does
 * for its ints; decoding integers beyond 2^53 loses precision (JSON.parse on Node 20).
 *
 * msgpack: kombu packs with `use_bin_type=True` and unpacks with `raw=False`: str and bin
 * are distinct. msgpackr is set up to write what Python's packer writes (plain maps with
 * fix sizes, no record extension, `undefined` as nil) and safe integers beyond 32 bits are
 * sent as msgpack integers (msgpackr alone would send them as float64, which Python reads
 * as a float). Decoding returns `number` for safe integers and `bigint` beyond.
 *
 * pickle and yaml are registered under kombu's names and content types only to refuse
 * them with a clear message: unpickling runs arbitrary code, and kombu-ts never evaluates
 * anything it receives.
 */
import { ContentDisallowed, EncodeError } from './errors.js';
import { lazyRequire } from './lazy-require.js';

/** The tokens Python's json module writes for non-finite floats. */
const PY_NONFINITE = /"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g;

function parseWithPythonConstants(text: string, original: unknown): unknown {
  if (!/NaN|Infinity/.test(text)) throw original;
  const tag = `\u0000kombu-ts:${Math.random().toString(36).slice(2)}:`;
  const values = new Map<string, number>([
    [`${tag}NaN`, Number.NaN], [`${tag}Infinity`, Infinity], [`${tag}-Infinity`, -Infinity],
  ]);
  const rewritten = text.replace(PY_NONFINITE, (match, token: string | undefined) =>
    token === undefined ? match : JSON.stringify(tag + token));
  return JSON.parse(rewritten, (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(tag) ? values.get(value) ?? value : value);
}

/**
 * Decodes JSON as kombu writes it, including Python's `NaN`, `Infinity`, `-Infinity`.
 *
 * @example
 * ```ts
 * jsonLoads(Buffer.from('{"a": NaN, "b": "\\u00e9"}')); // { a: NaN, b: 'é' }
 * ```
 */
export function jsonLoads(data: Buffer): unknown {
  const text = data.toString('utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    return parseWithPythonConstants(text, error);
  }
}

/**
 * Encodes a value as compact JSON (UTF-8, no spaces). BigInts become JSON integers.
 *
 * @example
 * ```ts
 * jsonDumps({ id: 1n << 60n, name: 'é' }); // '{"id":1152921504606846976,"name":"é"}'
 * ```
 */
export function jsonDumps(body: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(body);
  } catch (error) {
    if (!(error instanceof TypeError) || !/bigint/i.test(error.message)) throw error;
    // Slow path, only for bodies that hold BigInts: tag them as strings, then unquote.
    const tag = `kombu-ts-bigint-${Math.random().toString(36).slice(2)}:`;
    text = JSON.stringify(body, (_key, value: unknown) =>
      typeof value === 'bigint' ? `${tag}${value.toString()}` : value);
    text = text?.replace(new RegExp(`"${tag}(-?\\d+)"`, 'g'), '$1');
  }
  if (text === undefined) {
    throw new EncodeError(`cannot encode ${typeof body} as JSON`);
  }
  return text;
}

interface MsgpackrModule {
  Packr: new (options: Record<string, unknown>) => { pack(value: unknown): Buffer };
  Unpackr: new (options: Record<string, unknown>) => { unpack(data: Buffer): unknown };
}

const loadMsgpackr = lazyRequire<MsgpackrModule>('msgpackr', 'msgpack serialization');
let codec: { pack(value: unknown): Buffer; unpack(data: Buffer): unknown } | undefined;

function msgpackCodec(): NonNullable<typeof codec> {
  if (codec === undefined) {
    const { Packr, Unpackr } = loadMsgpackr();
    const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' });
    codec = { pack: (value) => packr.pack(value), unpack: (data) => unpackr.unpack(data) };
  }
  return codec;
}

function isWideInteger(value: number): boolean {
  return Number.isSafeInteger(value) && (value > 0xffffffff || value < -0x80000000);
}

/** Copies (only where needed) so that safe integers beyond 32 bits are packed as integers. */
function widenIntegers(value: unknown): unknown {
  if (typeof value === 'number') return isWideInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((item: unknown, i) => {
      const widened = widenIntegers(item);
      if (widened !== item) (out ??= value.slice())[i] = widened;
    });
    return out ?? value;
  }
  if (value instanceof Map) {
    let changed = false;
    const entries = [...value].map(([k, v]: [unknown, unknown]) => {
      const w = widenIntegers(v);
      changed ||= w !== v;
      return [k, w] as const;
    });
    return changed ? new Map(entries) : value;
  }
  if (typeof value === 'object' && value !== null) {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    let out: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(value)) {
      const widened = widenIntegers(v);
      if (widened !== v) (out ??= { ...value })[k] = widened;
    }
    return out ?? value;
  }
  return value;
}

/**
 * Encodes a value as msgpack the way Python's `msgpack.packb(x, use_bin_type=True)` does.
 * Loads msgpackr on first use ({@link DriverMissingError} "install msgpackr" when absent).
 *
 * @example
 * ```ts
 * msgpackDumps({ a: 1 }); // <Buffer 81 a1 61 01>, the bytes Python writes
 * ```
 */
export function msgpackDumps(body: unknown): Buffer {
  return msgpackCodec().pack(widenIntegers(body));
}

/**
 * Decodes msgpack the way Python's `msgpack.unpackb(x, raw=False)` does: str -> string,
 * bin -> Buffer, ints beyond 2^53 -> bigint.
 *
 * @example
 * ```ts
 * msgpackLoads(Buffer.from([0x81, 0xa1, 0x61, 0x01])); // { a: 1 }
 * ```
 */
export function msgpackLoads(data: Buffer): unknown {
  return msgpackCodec().unpack(data);
}

/**
 * An encoder/decoder pair that refuses a Python-only format (pickle, yaml).
 *
 * @example
 * ```ts
 * const { encode, decode } = refusingCodec('pickle', 'application/x-python-serialize');
 * decode(Buffer.alloc(1)); // throws ContentDisallowed
 * ```
 */
export function refusingCodec(name: string, contentType: string): {
  encode: (body: unknown) => never;
  decode: (data: Buffer) => never;
} {
  const why = name === 'pickle'
    ? 'unpickling can execute arbitrary code'
    : 'kombu-ts has no YAML codec';
  return {
    encode: () => {
      throw new EncodeError(`kombu-ts cannot serialize ${name} (${contentType}): ${why}; use json or msgpack`);
    },
    decode: () => {
      throw new ContentDisallowed(
        `Refusing to deserialize ${name} (${contentType}): ${why}; ask the producer to use json or msgpack`,
      );
    },
  };
}
