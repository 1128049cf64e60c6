import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ContentDisallowed, DecodeError, EncodeError, SerializationError } from '../../src/errors.js';
import {
  DEFAULT_ACCEPT, SerializerRegistry, createSerializerRegistry, disableInsecureSerializers, dumps,
  enableInsecureSerializers, loads, prepareAcceptContent, rawEncode, registry,
} from '../../src/serialization.js';
import { askKombu, interopRequired, pythonKombuStatus, type KombuRequest } from '../fixtures/kombu/python-kombu.js';

const FIXTURES = new URL('../fixtures/kombu/', import.meta.url);
interface SerializerFixture { file: string; serializer: string | null; contentType: string; contentEncoding: string }
const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as {
  serializers: Record<string, SerializerFixture>;
};
const fixture = (name: string): SerializerFixture & { body: Buffer } => {
  const entry = manifest.serializers[name];
  if (!entry) throw new Error(`no fixture ${name}`);
  return { ...entry, body: readFileSync(new URL(entry.file, FIXTURES)) };
};

const BASIC = {
  id: 'a1b2c3', n: 42, neg: -7, pi: 3.5, ok: true, no: false, nothing: null,
  list: [1, 2.5, 'three', null], nested: { k: ['v'] }, unicode: 'h\u00e9llo \u2603 \u{1F600}', big: 2 ** 40,
};

afterEach(() => disableInsecureSerializers());

describe('dumps', () => {
  it('serializes objects with json by default, compactly', () => {
    const out = dumps({ a: 1, b: ['é'] });
    expect(out.contentType).toBe('application/json');
    expect(out.contentEncoding).toBe('utf-8');
    expect(out.body.toString('utf8')).toBe('{"a":1,"b":["é"]}');
  });

  it('sends bytes as application/data + binary and strings as text/plain + utf-8 (kombu)', () => {
    expect(dumps(Buffer.from([0, 255]))).toEqual({ contentType: 'application/data', contentEncoding: 'binary', body: Buffer.from([0, 255]) });
    expect(dumps(new Uint8Array([1, 2])).body).toEqual(Buffer.from([1, 2]));
    expect(dumps('héllo')).toEqual({ contentType: 'text/plain', contentEncoding: 'utf-8', body: Buffer.from('héllo') });
    expect(dumps('héllo', 'json').body.toString()).toBe('"héllo"');
  });

  it('raw sends text and bytes untouched under application/data', () => {
    expect(dumps('é', 'raw')).toEqual({ contentType: 'application/data', contentEncoding: 'utf-8', body: Buffer.from('é') });
    expect(rawEncode(Buffer.from('x')).contentEncoding).toBe('binary');
    expect(() => dumps({ a: 1 }, 'raw')).toThrow(EncodeError);
  });

  it('raises EncodeError for unknown serializers and failing encoders', () => {
    expect(() => dumps({}, 'nope')).toThrow(expect.objectContaining({ name: 'EncodeError', code: 'SERIALIZER_NOT_INSTALLED' }));
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    const error = (() => { try { dumps(circular); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(EncodeError);
    expect((error as EncodeError).cause).toBeInstanceOf(TypeError);
    expect(() => dumps(undefined, 'json')).toThrow(EncodeError);
  });

  it('writes BigInts as JSON integers', () => {
    expect(dumps({ id: 2n ** 64n, s: 'x' }).body.toString()).toBe('{"id":18446744073709551616,"s":"x"}');
  });

  it('refuses pickle and yaml on the producer side', () => {
    expect(() => dumps({}, 'pickle')).toThrow(/arbitrary code/);
    expect(() => dumps({}, 'yaml')).toThrow(EncodeError);
  });
});

describe('loads', () => {
  const json = (text: string): Buffer => Buffer.from(text, 'utf8');

  it('decodes json, with accept given as names or content types', () => {
    expect(loads(json('{"a": [1, 2]}'), 'application/json', 'utf-8', { accept: ['json'] })).toEqual({ a: [1, 2] });
    expect(loads(json('[1]'), 'application/json', 'utf-8', { accept: new Set(['application/json']) })).toEqual([1]);
    expect(loads(json('[1]'), 'application/json', 'utf-8', { accept: DEFAULT_ACCEPT })).toEqual([1]);
  });

  it('refuses content types outside accept with ContentDisallowed, before decoding', () => {
    const body = dumps({ a: 1 }, 'msgpack').body;
    expect(() => loads(body, 'application/x-msgpack', 'binary', { accept: ['json'] }))
      .toThrow(/Refusing to deserialize untrusted content of type msgpack \(application\/x-msgpack\)/);
    expect(() => loads(json('{}'), 'application/json', 'utf-8', { accept: [] })).toThrow(ContentDisallowed);
  });

  it('always trusts application/data and application/text', () => {
    expect(loads(Buffer.from([1, 2]), 'application/data', 'binary', { accept: ['json'] })).toEqual(Buffer.from([1, 2]));
    expect(loads(json('hi'), 'application/text', 'utf-8', { accept: [] })).toBe('hi');
  });

  it('decodes text without a decoder, and treats a missing content type as application/data', () => {
    expect(loads(json('héllo'), 'text/plain', 'utf-8', { accept: ['text/plain'] })).toBe('héllo');
    expect(loads(json('hi'), null, null, { accept: ['json'] })).toBe('hi');
    expect(loads(Buffer.from([0xe9]), 'text/plain', 'latin1', { accept: ['text/plain'] })).toBe('é');
    expect(loads(Buffer.alloc(0), 'application/json', 'utf-8')).toEqual(Buffer.alloc(0));
  });

  it('raises DecodeError with the cause for garbage', () => {
    const error = (() => { try { loads(json('{nope'), 'application/json', 'utf-8'); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).cause).toBeInstanceOf(SyntaxError);
    expect(() => loads(Buffer.from([0x92, 0x01]), 'application/x-msgpack', 'binary', { accept: ['msgpack'] })).toThrow(DecodeError);
    expect(() => loads(Buffer.from([0x01, 0x02]), 'application/x-msgpack', 'binary', { accept: ['msgpack'] })).toThrow(/end of buffer not reached/);
    expect(() => loads(Buffer.from([0xff, 0xfe]), 'text/plain', 'utf-8', { accept: ['text/plain'] })).toThrow(DecodeError);
  });

  it('without accept refuses the disabled types: everything but json (kombu)', () => {
    const body = dumps([1], 'msgpack').body;
    expect(() => loads(body, 'application/x-msgpack', 'binary')).toThrow(/disabled content of type msgpack/);
    expect(loads(body, 'application/x-msgpack', 'binary', { force: true })).toEqual([1]);
    enableInsecureSerializers(['msgpack', 'no-such-serializer']);
    expect(loads(body, 'application/x-msgpack', 'binary')).toEqual([1]);
    disableInsecureSerializers();
    expect(registry.isDisabled('msgpack')).toBe(true);
    expect(registry.isDisabled('json')).toBe(false);
  });

  it('never decodes pickle or yaml, even when accepted or enabled', () => {
    const pickled = Buffer.from('80049505000000000000004b012e', 'hex');
    expect(() => loads(pickled, 'application/x-python-serialize', 'binary'))
      .toThrow(/disabled content of type pickle/);
    expect(() => loads(pickled, 'application/x-python-serialize', 'binary', { accept: ['pickle'] }))
      .toThrow(expect.objectContaining({ name: 'ContentDisallowed', message: expect.stringMatching(/arbitrary code/) }));
    enableInsecureSerializers();
    expect(() => loads(json('a: 1'), 'application/x-yaml', 'utf-8')).toThrow(ContentDisallowed);
  });
});

describe('registry', () => {
  it('maps names and content types as kombu does', () => {
    expect(prepareAcceptContent(['json', 'msgpack', 'application/x-custom'])).toEqual(
      new Set(['application/json', 'application/x-msgpack', 'application/x-custom']));
    expect(() => prepareAcceptContent(['bogus'])).toThrow(SerializationError);
    expect(registry.typeToName.get('application/x-python-serialize')).toBe('pickle');
    expect(registry.nameToType.get('yaml')).toBe('application/x-yaml');
  });

  it('registers, uses and unregisters custom serializers', () => {
    const reg = createSerializerRegistry();
    reg.register('upper', (b) => String(b).toUpperCase(), (d) => d.toString('utf8').toLowerCase(), 'text/x-upper', 'utf-8');
    const out = reg.dumps('abc', 'upper');
    expect(out).toEqual({ contentType: 'text/x-upper', contentEncoding: 'utf-8', body: Buffer.from('ABC') });
    expect(reg.loads(out.body, out.contentType, out.contentEncoding, { accept: ['upper'] })).toBe('abc');
    reg.setDefaultSerializer('upper');
    expect(reg.dumps(42).body.toString()).toBe('42');
    reg.unregister('upper');
    expect(() => reg.dumps('x', 'upper')).toThrow(EncodeError);
    expect(() => reg.unregister('upper')).toThrow(SerializationError);
    expect(new SerializerRegistry().nameToType.size).toBe(0);
  });
});

describe('json codec', () => {
  it('round-trips', () => {
    const out = dumps(BASIC, 'json');
    expect(loads(out.body, out.contentType, out.contentEncoding)).toEqual(BASIC);
  });

  it("reads Python's NaN / Infinity / -Infinity tokens, but not inside strings", () => {
    const text = '{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN Infinity"}';
    expect(loads(Buffer.from(text), 'application/json', 'utf-8')).toEqual({ a: Number.NaN, b: [Infinity, -Infinity], c: 'NaN Infinity' });
    expect(loads(Buffer.from('NaN'), 'application/json', 'utf-8')).toBeNaN();
    expect(() => loads(Buffer.from('{"a": NaNa}'), 'application/json', 'utf-8')).toThrow(DecodeError);
  });
});

describe('msgpack codec', () => {
  it('round-trips, with bin as Buffer and wide integers as integers', () => {
    const body = { ...BASIC, bin: Buffer.from([0, 1, 254, 255]), huge: 2n ** 63n + 5n, neg: -(2 ** 40), u: undefined };
    const out = dumps(body, 'msgpack');
    expect(out.contentType).toBe('application/x-msgpack');
    expect(out.contentEncoding).toBe('binary');
    const back = loads(out.body, out.contentType, out.contentEncoding, { accept: ['msgpack'] });
    expect(back).toEqual({ ...body, u: null });
  });

  it('writes what Python msgpack writes for plain values', () => {
    expect(dumps({ a: 1 }, 'msgpack').body).toEqual(Buffer.from('81a16101', 'hex'));
    expect(dumps([2.5, 2 ** 40], 'msgpack').body.toString('hex')).toBe('92cb4004000000000000d30000010000000000');
  });
});

describe('kombu 5.2 fixtures', () => {
  const cases: Array<[string, unknown]> = [
    ['json-basic', BASIC],
    ['json-default', BASIC],
    ['json-nonfinite', { nan: Number.NaN, inf: Infinity, ninf: -Infinity }],
    ['msgpack-basic', { ...BASIC, bin: Buffer.from([0, 1, 254, 255]) }],
    ['raw-bytes', Buffer.from('\x00raw\xff', 'latin1')],
    ['raw-text', 'h\u00e9llo'],
    ['bytes-default', Buffer.from('\x00bytes\xff', 'latin1')],
    ['text-default', 'h\u00e9llo \u2603'],
  ];
  it.each(cases)('%s decodes to the value kombu encoded', (name, expected) => {
    const f = fixture(name);
    const accept = [f.contentType];
    expect(loads(f.body, f.contentType, f.contentEncoding, { accept })).toEqual(expected);
  });

  it.each(cases.filter(([name]) => name !== 'json-nonfinite'))('%s: our dumps gives kombu\'s content type and encoding', (name, value) => {
    const f = fixture(name);
    const out = dumps(value, f.serializer);
    expect([out.contentType, out.contentEncoding]).toEqual([f.contentType, f.contentEncoding]);
    // json: we write compact JSON, kombu Python's spaced, ASCII-escaped form (both read the other).
    // msgpack: positive integers beyond 32 bits are int64 (0xd3) here, uint64 (0xcf) in Python.
    if (f.contentType === 'application/x-msgpack') {
      expect(loads(out.body, f.contentType, 'binary', { accept: ['msgpack'] })).toEqual(loads(f.body, f.contentType, 'binary', { accept: ['msgpack'] }));
    } else if (f.contentType !== 'application/json') {
      expect(out.body).toEqual(f.body);
    }
  });
});

// Locally without Python kombu the block is skipped (its title says why); with CI set it runs
// and its first test fails on a missing kombu.
const pyStatus = pythonKombuStatus();
describe.skipIf(!pyStatus.available && !interopRequired)(`interop: Python kombu decodes what we serialize${pyStatus.available ? '' : ` (${pyStatus.reason})`}`, () => {
  const status = pyStatus;
  it('Python kombu is available', () => expect(status.available, status.reason).toBe(true));

  it('json, msgpack, raw, bytes and text round-trip through kombu.serialization.loads', () => {
    const bodies: Array<[unknown, string | undefined, unknown]> = [
      [BASIC, 'json', BASIC],
      [{ big: 2n ** 64n }, 'json', { big: 2n ** 64n }],
      [{ ...BASIC, bin: Buffer.from([0, 255]) }, 'msgpack', { ...BASIC, bin: Buffer.from([0, 255]) }],
      ['héllo', 'raw', 'héllo'],
      [Buffer.from([0, 1, 2]), undefined, Buffer.from([0, 1, 2])],
      ['snow ☃', undefined, 'snow ☃'],
    ];
    const requests: KombuRequest[] = bodies.map(([value, serializer]) => {
      const out = dumps(value, serializer);
      return { op: 'loads', body: out.body, contentType: out.contentType, contentEncoding: out.contentEncoding };
    });
    const answers = askKombu(requests);
    expect(answers).toEqual(bodies.map(([, , expected]) => ({ value: expected })));
  });
});
