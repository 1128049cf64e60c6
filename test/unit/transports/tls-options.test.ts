import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError, ConnectionError } from '../../../src/errors.js';
import { certReqsToRejectUnauthorized, checkTlsOptions, loadTlsOptions } from '../../../src/transports/tls-options.js';

// Not real PEM: only what is read, and where it lands, matters here.
const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n';
const where = 'amqps://guest@rabbit:5671/';

let dir: string;
const file = (name: string) => path.join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kombu-ts-tls-options-'));
  await Promise.all([
    writeFile(file('ca.pem'), CA), writeFile(file('client.pem'), CERT), writeFile(file('client.key'), KEY),
    writeFile(file('combined.pem'), CERT + KEY),
  ]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(() => new Error('resolved'), (e: unknown) => e as Error);
}

describe('loadTlsOptions', () => {
  it("reads kombu's file options into Node's ca, cert and key (contents, not paths)", async () => {
    const options = await loadTlsOptions({ ca_certs: file('ca.pem'), certfile: file('client.pem'), keyfile: pathToFileURL(file('client.key')) }, { where });
    expect(Object.keys(options).sort()).toEqual(['ca', 'cert', 'key']);
    expect(String(options['ca'])).toBe(CA);
    expect(String(options['cert'])).toBe(CERT);
    expect(String(options['key'])).toBe(KEY);
  });

  it("translates kombu's other names and passes Node's through untouched", async () => {
    const ca = Buffer.from(CA);
    const options = await loadTlsOptions({ ca: [ca], cert_reqs: 'CERT_NONE', server_hostname: 'rabbit.internal', minVersion: 'TLSv1.3' }, { where });
    expect(options).toEqual({ ca: [ca], rejectUnauthorized: false, servername: 'rabbit.internal', minVersion: 'TLSv1.3' });
    expect(await loadTlsOptions({ cert_reqs: 2, server_hostname: null }, { where })).toEqual({ rejectUnauthorized: true });
    const noHostnameCheck = await loadTlsOptions({ check_hostname: false }, { where });
    expect(noHostnameCheck['checkServerIdentity']).toBeTypeOf('function');
    expect((noHostnameCheck['checkServerIdentity'] as () => unknown)()).toBeUndefined();
    expect(await loadTlsOptions({ check_hostname: true }, { where })).toEqual({});
  });

  it('a certfile holding the key too serves as the key (py-amqp), one without a key fails', async () => {
    const options = await loadTlsOptions({ certfile: file('combined.pem') }, { where });
    expect(String(options['cert'])).toBe(CERT + KEY);
    expect(String(options['key'])).toBe(CERT + KEY);
    const error = await rejection(loadTlsOptions({ certfile: file('client.pem') }, { where }));
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ recoverable: false });
    expect(error.message).toContain(`ssl.certfile for ${where} holds no private key`);
    expect(error.message).toContain(file('client.pem'));
  });

  it('reads the files again on every call: a rotated certificate is picked up', async () => {
    await writeFile(file('rotating.pem'), 'first');
    expect(String((await loadTlsOptions({ ca_certs: file('rotating.pem') }, { where }))['ca'])).toBe('first');
    await writeFile(file('rotating.pem'), 'second');
    expect(String((await loadTlsOptions({ ca_certs: file('rotating.pem') }, { where }))['ca'])).toBe('second');
  });

  it('a file that cannot be read is an irrecoverable ConnectionError naming the option, the path and the broker', async () => {
    for (const [ssl, option, code, reason] of [
      [{ ca_certs: file('missing-ca.pem') }, 'ssl.ca_certs (ssl_ca_certs in a URL)', 'ENOENT', 'no such file'],
      [{ certfile: dir }, 'ssl.certfile (ssl_certfile in a URL)', 'EISDIR', 'it is a directory'],
      [{ certfile: file('client.pem'), keyfile: file('missing.key') }, 'ssl.keyfile (ssl_keyfile in a URL)', 'ENOENT', 'no such file'],
    ] as const) {
      const error = await rejection(loadTlsOptions(ssl, { where }));
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error).toMatchObject({ code, recoverable: false });
      const target = Object.values(ssl).at(-1)!;
      expect(error.message).toBe(`Cannot read the file given as ${option} for ${where}: '${target}': ${reason} (${code})`);
    }
  });

  it('an abort while reading rejects with the abort, not as an unreadable file', async () => {
    const error = await rejection(loadTlsOptions({ ca_certs: file('ca.pem') }, { where, signal: AbortSignal.abort() }));
    expect(error).not.toBeInstanceOf(ConnectionError);
    expect(error.name).toBe('AbortError');
  });
});

describe('checkTlsOptions (at construction)', () => {
  it('refuses one option in both spellings, bad values, and a key file without a certificate', () => {
    for (const [ssl, message] of [
      [{ ca_certs: '/ca.pem', ca: 'pem' }, 'ssl.ca_certs and ssl.ca are the same option'],
      [{ cert_reqs: 'CERT_NONE', rejectUnauthorized: true }, 'ssl.cert_reqs and ssl.rejectUnauthorized'],
      [{ server_hostname: 'a', servername: 'b' }, 'ssl.server_hostname and ssl.servername'],
      [{ cert_reqs: 'sometimes' }, "ssl.cert_reqs must be CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE (or 2, 1, 0), got 'sometimes'"],
      [{ ca_certs: 42 }, 'ssl.ca_certs (ssl_ca_certs in a URL) must be a file path, got number'],
      [{ certfile: '' }, "must be a file path, got ''"],
      [{ keyfile: '/k.pem' }, 'ssl.keyfile needs the client certificate too'],
      [{ check_hostname: 'no' }, 'ssl.check_hostname must be true or false'],
    ] as const) {
      expect(() => checkTlsOptions(ssl as never), message).toThrow(ConfigurationError);
      expect(() => checkTlsOptions(ssl as never), message).toThrow(message);
    }
    expect(() => checkTlsOptions(true)).not.toThrow();
    expect(() => checkTlsOptions({ ca_certs: '/does/not/matter/yet.pem', keyfile: '/k.pem', cert: 'pem' })).not.toThrow();
  });

  it("maps cert_reqs as Python's ssl module names and numbers it", () => {
    expect(['CERT_REQUIRED', 'cert_optional', 'required', 2, 1].map((v) => certReqsToRejectUnauthorized(v, 'x'))).toEqual([true, true, true, true, true]);
    expect(['CERT_NONE', 'none', 0, '0'].map((v) => certReqsToRejectUnauthorized(v, 'x'))).toEqual([false, false, false, false]);
    expect(() => certReqsToRejectUnauthorized(3, 'x')).toThrow('x must be');
  });
});
