import { describe, expect, it } from 'vitest';
import { ConfigurationError, formatUrl, maskUrl, parseUrl } from '../../src/index.js';

describe('parseUrl (kombu semantics)', () => {
  it.each([
    ['amqp://guest:guest@localhost:5672//', { transport: 'amqp', hostname: 'localhost', port: 5672, userid: 'guest', password: 'guest', virtualHost: '/' }],
    ['amqp://guest:guest@localhost:5672/%2F', { virtualHost: '/' }],
    ['amqp://user:p%40ss%3Aw0rd@rabbit/vhost', { userid: 'user', password: 'p@ss:w0rd', hostname: 'rabbit', port: 5672, virtualHost: 'vhost' }],
    ['amqp://rabbit', { hostname: 'rabbit', port: 5672, virtualHost: undefined, userid: undefined, password: undefined }],
    ['amqps://rabbit', { transport: 'amqps', port: 5671 }],
    ['pyamqp://rabbit:5673/', { transport: 'pyamqp', port: 5673, virtualHost: undefined }],
    ['redis://:secret@cache:6380/2', { transport: 'redis', hostname: 'cache', port: 6380, userid: undefined, password: 'secret', virtualHost: '2' }],
    ['rediss://cache', { transport: 'rediss', port: 6379 }],
    ['memory://', { transport: 'memory', hostname: undefined, port: undefined }],
    ['memory://name', { transport: 'memory', hostname: 'name' }],
    ['amqp://[::1]:5672//', { hostname: '::1', port: 5672, virtualHost: '/' }],
  ])('%s', (url, expected) => {
    expect(parseUrl(url)).toMatchObject(expected);
  });

  it('turns query parameters into options', () => {
    const parts = parseUrl('amqp://h//?heartbeat=10&connect_timeout=2.5&failover_strategy=shuffle&login_method=AMQPLAIN&ssl=true&visibility_timeout=3600&queue_name_prefix=dev-');
    expect(parts).toMatchObject({
      heartbeat: 10,
      connectTimeout: 2.5,
      failoverStrategy: 'shuffle',
      loginMethod: 'AMQPLAIN',
      ssl: true,
      transportOptions: { visibilityTimeout: 3600, queueNamePrefix: 'dev-' },
    });
  });

  it("collects ssl_* parameters into TLS options, file paths under kombu's names (Node's ca/cert/key take contents)", () => {
    expect(parseUrl('amqps://h//?ssl_ca_certs=/ca.pem&ssl_cert_reqs=CERT_NONE').ssl).toEqual({ ca_certs: '/ca.pem', rejectUnauthorized: false });
    expect(parseUrl('amqps://h//?ssl_certfile=%2Fetc%2Fapp%2F123&ssl_keyfile=/etc/app/k.pem&ssl_server_hostname=rabbit.example&ssl_check_hostname=false').ssl)
      .toEqual({ certfile: '/etc/app/123', keyfile: '/etc/app/k.pem', servername: 'rabbit.example', check_hostname: false });
    for (const [value, reject] of [['CERT_REQUIRED', true], ['required', true], ['CERT_OPTIONAL', true], ['2', true], ['none', false], ['0', false]] as const) {
      expect(parseUrl(`amqps://h//?ssl_cert_reqs=${value}`).ssl, value).toEqual({ rejectUnauthorized: reject });
    }
    expect(parseUrl('amqp://h//?ssl=false&ssl_ca_certs=/ca.pem').ssl).toBe(false);
  });

  it("reads ssl=1 as TLS on (kombu passes '1' on: truthy), ssl=0 as off, and refuses other words", () => {
    for (const on of ['1', 'true', 'yes', 'on', 'TRUE', '']) {
      expect(parseUrl(`amqp://h//?ssl=${on}`), on).toMatchObject({ ssl: true, port: 5671 });
    }
    for (const off of ['0', 'false', 'no', 'off']) {
      expect(parseUrl(`amqp://h//?ssl=${off}`), off).toMatchObject({ ssl: false, port: 5672 });
    }
    expect(() => parseUrl('amqp://u:topsecret@h//?ssl=required')).toThrow(ConfigurationError);
    expect(() => parseUrl('amqp://u:topsecret@h//?ssl=required')).toThrow(/'ssl' must be true or false/);
  });

  it('never shows a hostile password in a malformed-URL error: raw @, space, /, ?, #, an e-mail user', () => {
    const cases: [string, string][] = [
      ['amqp://u:top@secret@h:99999//', 'secret'],
      ['amqp://me@corp.example:topsecret@h:99999//', 'topsecret'],
      ['amqp://u:top secret@h:99999//', 'secret'],
      ['amqp://u:topsecret/x@h//', 'topsecret'],
      ['amqp://u:topsecret?x@h//', 'topsecret'],
      ['amqp://u:topsecret#x@h//', 'topsecret'],
      ['amqp://u:top@secret@h//?heartbeat=soon', 'secret'],
    ];
    for (const [url, secret] of cases) {
      const error = (() => {
        try {
          parseUrl(url);
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      expect(error, url).toBeInstanceOf(ConfigurationError);
      expect(`${error?.message} ${error?.stack}`, url).not.toContain(secret);
    }
    expect(() => parseUrl('amqp://u:topsecret/x@h//')).toThrow(/must be percent-encoded/);
    expect(maskUrl('failed: amqp://u:top@secret@h:5672// (and amqp://me@corp.example:topsecret@h2//)'))
      .toBe('failed: amqp://u:**@h:5672// (and amqp://me@corp.example:**@h2//)');
  });

  it("keeps a '%' that starts no escape, as kombu does (a password like '50%off' works unencoded)", () => {
    expect(parseUrl('amqp://u:50%off@h/v%')).toMatchObject({ userid: 'u', password: '50%off', virtualHost: 'v%' });
    expect(parseUrl('amqp://u:100%@h//')).toMatchObject({ password: '100%', virtualHost: '/' });
    expect(parseUrl('amqp://u:a%2Fb%@h//').password).toBe('a/b%');
    expect(formatUrl({ transport: 'amqp', hostname: 'h', port: 5672, userid: 'u', password: '50%off', virtualHost: '/' }, { includePassword: true }))
      .toBe('amqp://u:50%25off@h:5672//');
  });

  it('names the default port of the transport, the TLS one when the query asks for TLS', () => {
    expect(parseUrl('amqp://h//').port).toBe(5672);
    expect(parseUrl('amqp://h//?ssl=true').port).toBe(5671);
    expect(parseUrl('amqp://h//?ssl_ca_certs=/ca.pem').port).toBe(5671);
    expect(parseUrl('amqp://h//?ssl=false').port).toBe(5672);
    expect(parseUrl('amqp://h:5999//?ssl=true').port).toBe(5999);
    expect(parseUrl('rediss://h').port).toBe(6379);
  });

  it("reads kombu's transport+url prefix and several brokers", () => {
    expect(parseUrl('amqp+amqp://h//')).toMatchObject({ transport: 'amqp', hostname: 'h' });
    expect(parseUrl('amqp://a//;amqp://b//')).toMatchObject({ hostname: 'a', alternates: ['amqp://b//'] });
  });

  it('refuses malformed URLs with a typed, precise error that never shows the password', () => {
    const cases: [string, RegExp][] = [
      ['', /non-empty/],
      ['localhost:5672', /expected 'transport:\/\/host'/],
      ['amqq://h', /Did you mean 'amqp'/],
      ['rediss2://h', /Did you mean 'rediss'/],
      ['zzzzzz://h', /Known transports/],
      ['amqp://u:topsecret@h:70000//', /port '70000'/],
      ['amqp://u:topsecret@h:abc//', /port 'abc'/],
      ['amqp://u:topsecret@h:5672:5673//', /invalid host name 'h:5672'.*one ':port' at most/],
      ['amqp://u:topsecret@::1:5672//', /an IPv6 address goes in brackets/],
      ['redis://u:topsecret@h/db', /database must be a number/],
      ['amqp://u:topsecret@h/%E0%A4%A', /bad percent-encoding/],
      ['amqp://u:topsecret@[::1//', /unclosed/],
      ['amqp://h//?heartbeat=soon', /heartbeat/],
      ['amqp://u:topsecret@h//?ssl_cert_reqs=CERT_REQUIRD', /'ssl_cert_reqs' must be CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE \(or 2, 1, 0\), got 'CERT_REQUIRD'/],
      ['amqp://u:topsecret@h//?ssl_check_hostname=maybe', /'ssl_check_hostname' must be true or false/],
      ['amqp://u:topsecret@h//?ssl_ca_certs=', /'ssl_ca_certs' is empty/],
    ];
    for (const [url, message] of cases) {
      let error: unknown;
      try {
        parseUrl(url);
      } catch (e) {
        error = e;
      }
      expect(error, url).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message, url).toMatch(message);
      expect((error as Error).message, url).not.toContain('topsecret');
    }
  });
});

describe('maskUrl / formatUrl', () => {
  it('masks every password in a text, including several brokers and odd characters', () => {
    expect(maskUrl('amqp://guest:secret@host//')).toBe('amqp://guest:**@host//');
    expect(maskUrl('redis://:secret@cache:6379/0')).toBe('redis://:**@cache:6379/0');
    expect(maskUrl('failed amqp://a:x@h1//;amqp://b:y@h2// now')).toBe('failed amqp://a:**@h1//;amqp://b:**@h2// now');
    expect(maskUrl('amqp://u:p@ss/w@host//')).not.toContain('p@ss');
    expect(maskUrl('amqp://host:5672//')).toBe('amqp://host:5672//');
  });

  it('formats URLs as kombu as_uri does', () => {
    const fields = { transport: 'amqp', hostname: 'h', port: 5672, userid: 'u', password: 'p w', virtualHost: '/' };
    expect(formatUrl(fields)).toBe('amqp://u:**@h:5672//');
    expect(formatUrl(fields, { includePassword: true })).toBe('amqp://u:p%20w@h:5672//');
    expect(formatUrl({ ...fields, virtualHost: 'a/b' })).toBe('amqp://u:**@h:5672/a%2Fb');
    expect(parseUrl(formatUrl({ ...fields, virtualHost: 'a/b' }, { includePassword: true }))).toMatchObject({ password: 'p w', virtualHost: 'a/b' });
  });
});
