/**
 * Broker URLs, with kombu's semantics.
 *
 * `transport://userid:password@hostname:port/virtual_host?query`, percent-decoded. AMQP's
 * vhost is the path without its first slash (`//` and `/%2F` both mean `/`); Redis's is the
 * database number. Query parameters become options (`heartbeat=10`, `ssl=true`,
 * `connect_timeout=3`, `failover_strategy=shuffle`; kombu's `ssl_*` parameters become `ssl`
 * options; anything else lands in `transportOptions`, camelCased). `h1;h2` lists several
 * brokers, and kombu's `x+url` prefix names the transport in front of a URL.
 *
 * Passwords leave this module only inside `parseUrl()`'s result; every string meant for
 * people goes through `maskUrl()`.
 */
import { ConfigurationError } from './errors.js';
import { checkScheme, defaultPortFor } from './transports/registry.js';
import { certReqsToRejectUnauthorized } from './transports/tls-options.js';
import type { TlsOptions } from './transports/transport.js';

/** What `parseUrl()` returns: kombu's keys, camelCased. */
export interface UrlParts {
  transport: string;
  hostname: string | undefined;
  port: number | undefined;
  userid: string | undefined;
  password: string | undefined;
  virtualHost: string | undefined;
  /** Options from the query string (kombu passes them on to Connection). */
  heartbeat?: number;
  connectTimeout?: number;
  /**
   * `ssl=true`, or the `ssl_*` parameters as TLS options: `ssl_ca_certs`, `ssl_certfile` and
   * `ssl_keyfile` (file paths) as `ca_certs`, `certfile` and `keyfile` (read when connecting),
   * `ssl_cert_reqs` as `rejectUnauthorized`, `ssl_server_hostname` as `servername`,
   * `ssl_check_hostname` as `check_hostname`.
   */
  ssl?: boolean | TlsOptions;
  loginMethod?: string;
  failoverStrategy?: string;
  transportOptions?: Record<string, unknown>;
  /** The other brokers of a `h1;h2` URL, in order. */
  alternates?: string[];
}

/**
 * kombu's `ssl_*` query parameters -> TLS options. The files keep kombu's names (they hold
 * paths, which the transport reads; Node's `ca`/`cert`/`key` would take a path for PEM text).
 */
const SSL_KEYS: Record<string, string> = {
  ssl_ca_certs: 'ca_certs',
  ssl_certfile: 'certfile',
  ssl_keyfile: 'keyfile',
  ssl_check_hostname: 'check_hostname',
  ssl_server_hostname: 'servername',
  ssl_cert_reqs: 'rejectUnauthorized',
};

function sslValue(key: string, raw: string, url: string): unknown {
  const where = `Broker URL ${maskOne(url)}: '${key}'`;
  if (key === 'ssl_cert_reqs') return certReqsToRejectUnauthorized(raw, where);
  if (key === 'ssl_check_hostname') {
    const flag = raw === '' ? true : coerce(raw);
    if (typeof flag !== 'boolean' && flag !== 0 && flag !== 1) throw new ConfigurationError(`${where} must be true or false, got '${raw}'.`);
    return Boolean(flag);
  }
  // Paths and host names stay strings ('123' is a file name, not a number).
  if (raw === '') throw new ConfigurationError(`${where} is empty.`);
  return raw;
}

const camel = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function decode(text: string, what: string, url: string): string {
  try {
    // A '%' that starts no escape is itself, as in kombu (Python's unquote): a password such
    // as '50%off' works unencoded. Escapes that decode to no UTF-8 text are still refused.
    return decodeURIComponent(text.replace(/%(?![0-9a-f]{2})/gi, '%25'));
  } catch (cause) {
    throw new ConfigurationError(`Malformed ${what} in broker URL ${maskOne(url)}: bad percent-encoding.`, { cause });
  }
}

function coerce(value: string): string | number | boolean {
  if (/^(true|yes|on)$/i.test(value)) return true;
  if (/^(false|no|off)$/i.test(value)) return false;
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  return value;
}

function parseQuery(query: string, url: string, parts: UrlParts): void {
  const ssl: Record<string, unknown> = {};
  for (const pair of query.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), 'query key', url);
    const raw = decode(eq < 0 ? '' : pair.slice(eq + 1).replace(/\+/g, ' '), 'query value', url);
    const sslKey = SSL_KEYS[key];
    if (sslKey !== undefined) {
      ssl[sslKey] = sslValue(key, raw, url);
      continue;
    }
    switch (key) {
      case 'heartbeat':
      case 'connect_timeout': {
        // kombu drops a blank value (parse_qsl): the option, or the default, applies.
        if (raw.trim() === '') break;
        const n = Number(raw);
        if (!Number.isFinite(n) || n < 0) {
          throw new ConfigurationError(`Broker URL ${maskOne(url)}: '${key}' must be a number of seconds, got '${raw}'.`);
        }
        parts[key === 'heartbeat' ? 'heartbeat' : 'connectTimeout'] = n;
        break;
      }
      case 'ssl': {
        // kombu passes the text on, so any value but an empty one turns TLS on there: `1`
        // must not turn it off here. Words that clearly say "off" do; others are refused.
        const flag = raw === '' ? true : coerce(raw);
        if (flag !== true && flag !== false && flag !== 1 && flag !== 0) {
          throw new ConfigurationError(`Broker URL ${maskOne(url)}: 'ssl' must be true or false (or 1, 0), got '${raw}'.`);
        }
        parts.ssl = Boolean(flag);
        break;
      }
      case 'login_method':
        parts.loginMethod = raw;
        break;
      case 'failover_strategy':
        parts.failoverStrategy = raw;
        break;
      default:
        (parts.transportOptions ??= {})[camel(key)] = coerce(raw);
    }
  }
  if (Object.keys(ssl).length > 0) parts.ssl = parts.ssl === false ? false : ssl;
}

/**
 * Parses a broker URL into kombu's parts (camelCased). Throws `ConfigurationError` for a
 * malformed URL, an unknown transport (with a "did you mean" for a near one) or a bad option
 * value. Without a port in the URL, `port` is the transport's default: 5671 for AMQP when the
 * query asks for TLS (`ssl=true`, `ssl_*`).
 *
 * @example
 * ```ts
 * parseUrl('amqp://guest:guest@localhost:5672//');
 * // { transport: 'amqp', hostname: 'localhost', port: 5672, userid: 'guest',
 * //   password: 'guest', virtualHost: '/' }
 * parseUrl('redis://:secret@cache:6380/2?visibility_timeout=3600');
 * // { transport: 'redis', ..., virtualHost: '2', transportOptions: { visibilityTimeout: 3600 } }
 * parseUrl('amqp://rabbit//?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=CERT_REQUIRED');
 * // { transport: 'amqp', hostname: 'rabbit', port: 5671, ...,
 * //   ssl: { ca_certs: '/etc/ssl/ca.pem', rejectUnauthorized: true } }
 * ```
 */
export function parseUrl(url: string): UrlParts {
  const parts = parseBrokerUrl(url);
  // The transport's default; with TLS asked for (`ssl=true`, `ssl_*`), its TLS port (amqp: 5671).
  parts.port ??= defaultPortFor(parts.transport, parts.ssl !== undefined && parts.ssl !== false);
  return parts;
}

/**
 * `parseUrl()` without the default port: `port` is undefined when the URL names none, so
 * that an explicit `port` option (or the TLS port) can fill it, as in kombu.
 *
 * @example
 * ```ts
 * parseBrokerUrl('amqp://rabbit//').port; // undefined
 * parseUrl('amqp://rabbit//').port; // 5672
 * ```
 */
export function parseBrokerUrl(url: string): UrlParts {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new ConfigurationError('Broker URL must be a non-empty string.');
  }
  const [first = '', ...rest] = splitHosts(url);
  const parts = parseOne(first);
  if (rest.length > 0) parts.alternates = rest;
  return parts;
}

/** Splits kombu's `url1;url2` multi-broker form. */
export function splitHosts(url: string): string[] {
  return url.split(';').map((s) => s.trim()).filter((s) => s !== '');
}

function parseOne(original: string): UrlParts {
  let url = original.trim();
  const sep = url.indexOf('://');
  if (sep <= 0) {
    throw new ConfigurationError(`Malformed broker URL ${maskOne(url)}: expected 'transport://host', e.g. 'amqp://guest:guest@localhost:5672//'.`);
  }
  let scheme = url.slice(0, sep).toLowerCase();
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) {
    throw new ConfigurationError(`Malformed broker URL ${maskOne(url)}: '${scheme}' is not a valid scheme.`);
  }
  let transport = scheme;
  const plus = scheme.indexOf('+');
  if (plus > 0) {
    // kombu's `transport+url`: the prefix names the transport, the rest is the URL.
    transport = scheme.slice(0, plus);
    scheme = scheme.slice(plus + 1);
    url = url.slice(plus + 1);
  }
  checkScheme(transport);
  const afterScheme = url.slice(url.indexOf('://') + 3);
  const hash = afterScheme.indexOf('#');
  const body = hash >= 0 ? afterScheme.slice(0, hash) : afterScheme;
  const q = body.indexOf('?');
  const beforeQuery = q >= 0 ? body.slice(0, q) : body;
  const query = q >= 0 ? body.slice(q + 1) : '';
  const slash = beforeQuery.indexOf('/');
  const authority = slash >= 0 ? beforeQuery.slice(0, slash) : beforeQuery;
  const path = slash >= 0 ? beforeQuery.slice(slash) : '';

  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : undefined;
  const hostport = at >= 0 ? authority.slice(at + 1) : authority;

  let userid: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    userid = user === '' ? undefined : decode(user, 'user name', original);
    password = colon >= 0 ? decode(userinfo.slice(colon + 1), 'password', original) : undefined;
    if (password === '') password = undefined;
  }

  let hostname: string;
  let portText: string | undefined;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0) throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: unclosed '[' in IPv6 host.`);
    hostname = hostport.slice(1, close);
    const tail = hostport.slice(close + 1);
    if (tail !== '' && !tail.startsWith(':')) throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: unexpected '${tail}' after IPv6 host.`);
    portText = tail ? tail.slice(1) : undefined;
  } else {
    const colon = hostport.lastIndexOf(':');
    hostname = colon >= 0 ? hostport.slice(0, colon) : hostport;
    portText = colon >= 0 ? hostport.slice(colon + 1) : undefined;
  }
  const bracketed = hostport.startsWith('[');
  hostname = decode(hostname, 'host name', original);
  if (!bracketed && hostname.includes(':')) {
    throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: invalid host name '${hostname}' (one ':port' at most; an IPv6 address goes in brackets, '[::1]:5672').`);
  }
  if (/[\s/\\@]/.test(hostname)) {
    throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: invalid host name '${hostname}'.`);
  }
  let port: number | undefined;
  if (portText !== undefined && portText !== '') {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      // No '@' in the authority but one further on: a '/', '?' or '#' in the password cut the
      // URL short, and what looks like a port is the password's start. Never echo it.
      if (at < 0 && afterScheme.indexOf('@', authority.length) >= 0) {
        throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: a '/', '?' or '#' in the user name or password must be percent-encoded (%2F, %3F, %23).`);
      }
      throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: port '${portText}' is not a number from 1 to 65535.`);
    }
  }

  let virtualHost: string | undefined;
  if (path.length > 1) {
    // kombu: strip the first slash; what is left is the vhost ('//' -> '/').
    virtualHost = decode(path.slice(1), 'virtual host', original);
  }
  if (transport === 'redis' || transport === 'rediss') {
    if (virtualHost !== undefined) {
      virtualHost = virtualHost.replace(/\/$/, '');
      if (!/^\d+$/.test(virtualHost)) {
        throw new ConfigurationError(`Malformed broker URL ${maskOne(original)}: the Redis database must be a number, got '${virtualHost}'.`);
      }
    }
  }

  const parts: UrlParts = {
    transport,
    hostname: hostname === '' ? undefined : hostname,
    port,
    userid,
    password,
    virtualHost,
  };
  if (query) parseQuery(query, original, parts);
  return parts;
}

/**
 * Replaces the password of every broker in `url` with `**` (kombu's mask). Safe on any
 * string: text that is not a URL comes back unchanged.
 *
 * @example
 * ```ts
 * maskUrl('amqp://guest:secret@host//'); // 'amqp://guest:**@host//'
 * ```
 */
export function maskUrl(url: string): string {
  // The user may hold an '@' (an e-mail address) and the password any character: what runs up
  // to the last '@' of the URL is masked, as kombu's parser (the last '@' ends the user info).
  return url.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/;\s]*):([^;\s]*)@/gi, (_, head: string) => `${head}:**@`);
}

/**
 * `maskUrl()` for the one broker URL being parsed, which may be broken anywhere: everything
 * from the first ':' after the user to the last '@' is masked, spaces included.
 */
function maskOne(url: string): string {
  return url.replace(/^(\s*[a-z][a-z0-9+.-]*:\/\/[^:/;]*):[\s\S]*@/i, (_, head: string) => `${head}:**@`);
}

/** The pieces `formatUrl()` needs. */
export interface UrlFields {
  transport: string;
  hostname: string;
  port: number | undefined;
  userid: string | undefined;
  password: string | undefined;
  virtualHost: string | undefined;
}

const encode = (s: string): string => encodeURIComponent(s);

/**
 * Builds a URL from its parts, as kombu's `as_uri`: the password is `**` unless
 * `includePassword` is true.
 *
 * @example
 * ```ts
 * formatUrl({ transport: 'amqp', hostname: 'h', port: 5672, userid: 'u', password: 'p', virtualHost: '/' });
 * // 'amqp://u:**@h:5672//'
 * ```
 */
export function formatUrl(fields: UrlFields, options: { includePassword?: boolean } = {}): string {
  // Joined, not concatenated: `+=` makes a tree of cons strings (a dozen heap objects, kept
  // as long as the URL is), `join` one flat string.
  const parts = [fields.transport, '://'];
  if (fields.userid !== undefined || fields.password !== undefined) {
    parts.push(encode(fields.userid ?? ''));
    if (fields.password !== undefined) parts.push(':', options.includePassword ? encode(fields.password) : '**');
    parts.push('@');
  }
  parts.push(fields.hostname.includes(':') ? `[${fields.hostname}]` : encode(fields.hostname));
  if (fields.port !== undefined) parts.push(':', String(fields.port));
  parts.push('/');
  if (fields.virtualHost !== undefined) parts.push(fields.virtualHost === '/' ? '/' : encode(fields.virtualHost));
  return parts.join('');
}
