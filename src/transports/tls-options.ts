/**
 * TLS options in kombu's spelling and in Node's, turned into what `tls.connect` takes.
 *
 * Why: kombu users name files. kombu's `ssl` dict (as py-amqp takes it: `ca_certs`,
 * `certfile`, `keyfile`, `cert_reqs`, `server_hostname`) and a URL's `ssl_ca_certs=/path`
 * hold paths, while Node's `ca`, `cert` and `key` hold the certificates themselves. A path
 * passed as `ca` is read as (invalid) PEM text and silently trusts nothing, which shows up
 * later as SELF_SIGNED_CERT_IN_CHAIN. So the kombu names are kept apart and translated here.
 *
 * When: the names are checked when a Connection is made (`checkTlsOptions`, a
 * ConfigurationError for a bad value), and the files are read when a connection opens
 * (`loadTlsOptions`), on every attempt, as py-amqp loads them into a fresh SSLContext on every
 * connect: a certificate rotated on disk is picked up by the next reconnect, and making a
 * Connection does no I/O. A file that cannot be read is a ConnectionError with
 * `recoverable: false` and the fs `code` (ENOENT, EACCES...), naming the option and the path:
 * it fails the first attempt instead of entering the retry loop, since retrying reads the
 * same missing file. File contents never appear in messages.
 */
import { readFile } from 'node:fs/promises';
import { ConfigurationError, ConnectionError } from '../errors.js';
import type { TlsOptions } from './transport.js';

/** kombu's name -> Node's name, for the options that mean the same thing. */
const SAME_OPTION = [
  ['ca_certs', 'ca'],
  ['certfile', 'cert'],
  ['keyfile', 'key'],
  ['cert_reqs', 'rejectUnauthorized'],
  ['server_hostname', 'servername'],
  ['check_hostname', 'checkServerIdentity'],
] as const;

type FileOption = 'ca_certs' | 'certfile' | 'keyfile';
const FILE_TARGET: Record<FileOption, 'ca' | 'cert' | 'key'> = { ca_certs: 'ca', certfile: 'cert', keyfile: 'key' };
const URL_NAME: Record<FileOption, string> = { ca_certs: 'ssl_ca_certs', certfile: 'ssl_certfile', keyfile: 'ssl_keyfile' };

const CERT_REQS: ReadonlyMap<string, boolean> = new Map([
  ['cert_required', true], ['required', true], ['2', true], ['true', true],
  ['cert_optional', true], ['optional', true], ['1', true],
  ['cert_none', false], ['none', false], ['0', false], ['false', false],
]);

/**
 * kombu's `cert_reqs` (Python's `ssl.CERT_*`, by name or number) as `rejectUnauthorized`.
 * CERT_OPTIONAL verifies too: on a client, Python treats it as CERT_REQUIRED.
 *
 * @example
 * ```ts
 * certReqsToRejectUnauthorized('CERT_NONE', 'ssl.cert_reqs'); // false
 * certReqsToRejectUnauthorized(2, 'ssl.cert_reqs'); // true
 * ```
 */
export function certReqsToRejectUnauthorized(value: unknown, option: string): boolean {
  const known = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? CERT_REQS.get(String(value).toLowerCase())
    : undefined;
  if (known === undefined) {
    throw new ConfigurationError(
      `${option} must be CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE (or 2, 1, 0), got ${typeof value === 'string' ? `'${value}'` : String(value)}.`,
    );
  }
  return known;
}

/** A file to read at connect time, and where its contents go. */
interface TlsFile {
  option: FileOption;
  path: string | URL;
}

/** Node's options with the kombu names translated, and the files still to read. */
interface TlsPlan {
  options: Record<string, unknown>;
  files: TlsFile[];
}

const skipHostnameCheck = (): undefined => undefined;

function planTlsOptions(ssl: TlsOptions): TlsPlan {
  for (const [kombu, node] of SAME_OPTION) {
    if (ssl[kombu] !== undefined && ssl[node] !== undefined) {
      throw new ConfigurationError(`ssl.${kombu} and ssl.${node} are the same option in kombu's and Node's spelling: give one of them.`);
    }
  }
  const options: Record<string, unknown> = { ...ssl };
  const files: TlsFile[] = [];
  for (const option of ['ca_certs', 'certfile', 'keyfile'] as const) {
    const path = ssl[option];
    delete options[option];
    if (path === undefined) continue;
    if (!((typeof path === 'string' && path !== '') || path instanceof URL)) {
      throw new ConfigurationError(`ssl.${option} (${URL_NAME[option]} in a URL) must be a file path, got ${typeof path === 'string' ? "''" : typeof path}.`);
    }
    files.push({ option, path });
  }
  if (ssl.keyfile !== undefined && ssl.certfile === undefined && ssl.cert === undefined) {
    throw new ConfigurationError('ssl.keyfile needs the client certificate too: give ssl.certfile (or ssl.cert).');
  }
  if (ssl.cert_reqs !== undefined) {
    delete options['cert_reqs'];
    options['rejectUnauthorized'] = certReqsToRejectUnauthorized(ssl.cert_reqs, 'ssl.cert_reqs');
  }
  if ('server_hostname' in ssl) {
    delete options['server_hostname'];
    const name = ssl.server_hostname;
    if (name !== undefined && name !== null && (typeof name !== 'string' || name === '')) {
      throw new ConfigurationError(`ssl.server_hostname must be a host name, got ${typeof name === 'string' ? "''" : typeof name}.`);
    }
    // null (kombu: "use the URL's host name") is what Node and amqplib do anyway.
    if (typeof name === 'string') options['servername'] = name;
  }
  if (ssl.check_hostname !== undefined) {
    delete options['check_hostname'];
    if (typeof ssl.check_hostname !== 'boolean') {
      throw new ConfigurationError(`ssl.check_hostname must be true or false, got ${typeof ssl.check_hostname}.`);
    }
    if (!ssl.check_hostname) options['checkServerIdentity'] = skipHostnameCheck;
  }
  return { options, files };
}

/**
 * Checks TLS options without reading any file: throws ConfigurationError for an option given
 * in both spellings, an unknown `cert_reqs`, a path that is not a string, a key file with no
 * certificate. `new Connection()` calls it, so such mistakes fail before any connect.
 *
 * @example
 * ```ts
 * checkTlsOptions({ ca_certs: '/etc/ssl/ca.pem', cert_reqs: 'CERT_REQUIRED' }); // fine
 * checkTlsOptions({ ca_certs: '/etc/ssl/ca.pem', ca: pem }); // ConfigurationError
 * ```
 */
export function checkTlsOptions(ssl: boolean | TlsOptions): void {
  if (typeof ssl === 'object' && ssl !== null) planTlsOptions(ssl);
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

function unreadable(file: TlsFile, error: unknown, where: string): ConnectionError {
  const code = (error as { code?: unknown } | null)?.code;
  const reason = typeof code === 'string' ? `${FS_REASONS[code] ?? (error as Error).message} (${code})` : String(error);
  const path = file.path instanceof URL ? file.path.href : file.path;
  return new ConnectionError(
    `Cannot read the file given as ssl.${file.option} (${URL_NAME[file.option]} in a URL) for ${where}: '${path}': ${reason}`,
    { cause: error, recoverable: false, ...(typeof code === 'string' ? { code } : {}) },
  );
}

/** What `loadTlsOptions` needs besides the options. */
export interface LoadTlsOptions {
  /** Names the broker in error messages (password-free). */
  where: string;
  /** Aborts the reads; the read then rejects with the fs AbortError. */
  signal?: AbortSignal;
}

/**
 * The options for Node's `tls.connect`: kombu's names translated, `ca_certs`, `certfile` and
 * `keyfile` read from disk now (see the header for why at connect time). A `certfile` that
 * holds the private key too (PEM) serves as the key when no `keyfile`/`key` is given, as in
 * py-amqp. Throws ConfigurationError for a bad option, and a ConnectionError with
 * `recoverable: false` naming the option and the path for a file that cannot be read.
 *
 * @example
 * ```ts
 * const tlsOptions = await loadTlsOptions({ ca_certs: '/etc/ssl/rabbit-ca.pem' }, { where: 'amqps://rabbit:5671/' });
 * // { ca: <Buffer 2d 2d 2d ...> }
 * ```
 */
export async function loadTlsOptions(ssl: TlsOptions, { where, signal }: LoadTlsOptions): Promise<Record<string, unknown>> {
  const { options, files } = planTlsOptions(ssl);
  const contents = await Promise.all(files.map(async (file) => {
    try {
      return await readFile(file.path, signal ? { signal } : {});
    } catch (error) {
      if (signal?.aborted) throw error;
      throw unreadable(file, error, where);
    }
  }));
  files.forEach((file, i) => {
    options[FILE_TARGET[file.option]] = contents[i];
  });
  const certfile = files.findIndex((file) => file.option === 'certfile');
  if (certfile >= 0 && options['key'] === undefined) {
    const pem = contents[certfile]!;
    if (!pem.includes('PRIVATE KEY-----')) {
      const file = files[certfile]!;
      throw new ConnectionError(
        `The file given as ssl.certfile for ${where} holds no private key and no ssl.keyfile (or ssl.key) is given: '${file.path instanceof URL ? file.path.href : file.path}'`,
        { recoverable: false },
      );
    }
    options['key'] = pem;
  }
  return options;
}
