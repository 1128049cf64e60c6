/**
 * Throwaway certificates for TLS tests, made with the `openssl` CLI into a fresh temp dir:
 * a CA, a server certificate for 127.0.0.1/localhost signed by it, client certificates
 * (one per common name asked for) signed by it, and a second, unrelated CA that signed
 * nothing here (the "wrong CA").
 *
 * Keys are P-256 (fast to make). The dir and the server's files are world-readable because
 * the broker, running as another user, reads them; the other keys are private to us.
 * Nothing here is committed: `remove()` deletes the dir.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// Only what is written here counts: no system openssl.cnf.
const CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

export interface ClientCertificate {
  commonName: string;
  /** PEM, for `ssl.cert`. */
  cert: Buffer;
  /** PEM, for `ssl.key`. */
  key: Buffer;
  /** The same two as files, for kombu's `certfile`/`keyfile` (`ssl_certfile`/`ssl_keyfile`). */
  certFile: string;
  keyFile: string;
}

export interface TestCertificates {
  readonly dir: string;
  /** The test CA (PEM), for `ssl.ca`. */
  readonly caPem: Buffer;
  /** Files the broker reads (and kombu-style clients: `ssl_ca_certs`). */
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** Client certificates signed by the test CA, by common name. */
  readonly clients: ReadonlyMap<string, ClientCertificate>;
  /** A self-signed CA unrelated to the server's certificate (PEM). */
  readonly otherCaPem: Buffer;
  /** Deletes the temp dir. */
  remove(): Promise<void>;
}

const openssl = (dir: string, ...args: string[]) => run('openssl', args, { cwd: dir, timeout: 20_000 });
const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const serial = () => `0x${randomBytes(8).toString('hex')}`;

/** A key and a certificate `<name>.key`/`<name>.pem` signed by the test CA. */
async function issue(dir: string, name: string, commonName: string, extensions: string): Promise<void> {
  await openssl(dir, 'req', '-new', ...ecKey, '-config', 'openssl.cnf', '-subj', `/CN=${commonName}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
  await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial(),
    '-days', '2', '-extfile', 'openssl.cnf', '-extensions', extensions, '-out', `${name}.pem`);
}

/** A self-signed CA `<name>.key`/`<name>.pem`. */
async function selfSignedCa(dir: string, name: string, commonName: string): Promise<void> {
  await openssl(dir, 'req', '-x509', ...ecKey, '-config', 'openssl.cnf', '-extensions', 'ca_ext', '-subj', `/CN=${commonName}`,
    '-set_serial', serial(), '-days', '2', '-keyout', `${name}.key`, '-out', `${name}.pem`);
}

/**
 * Makes the certificates in a new temp dir. Throws (after removing the dir) when `openssl`
 * fails or is missing.
 *
 * @example
 * ```ts
 * const certs = await createTestCertificates({ clients: ['kombu-ts-tls-user'] });
 * const conn = new Connection(`amqps://127.0.0.1:${port}//`, { ssl: { ca: [certs.caPem] } });
 * await certs.remove();
 * ```
 */
export async function createTestCertificates(options: { clients?: string[] } = {}): Promise<TestCertificates> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kombu-ts-tls-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await writeFile(path.join(dir, 'openssl.cnf'), CONFIG);
    const id = randomBytes(4).toString('hex');
    await Promise.all([selfSignedCa(dir, 'ca', `kombu-ts test CA ${id}`), selfSignedCa(dir, 'other-ca', `kombu-ts other CA ${id}`)]);
    const names = options.clients ?? [];
    await Promise.all([
      issue(dir, 'server', 'localhost', 'server_ext'),
      ...names.map((cn, i) => issue(dir, `client-${i}`, cn, 'client_ext')),
    ]);
    // The broker (user rabbitmq) reads the CA and the server's pair; nothing else.
    await chmod(dir, 0o755);
    for (const file of ['ca.pem', 'server.pem', 'server.key']) await chmod(path.join(dir, file), 0o644);
    for (const file of ['ca.key', 'other-ca.key', ...names.map((_, i) => `client-${i}.key`)]) await chmod(path.join(dir, file), 0o600);
    const read = (file: string) => readFile(path.join(dir, file));
    const clients = new Map<string, ClientCertificate>();
    for (const [i, commonName] of names.entries()) {
      clients.set(commonName, {
        commonName, cert: await read(`client-${i}.pem`), key: await read(`client-${i}.key`),
        certFile: path.join(dir, `client-${i}.pem`), keyFile: path.join(dir, `client-${i}.key`),
      });
    }
    return {
      dir,
      caPem: await read('ca.pem'),
      caFile: path.join(dir, 'ca.pem'),
      serverCertFile: path.join(dir, 'server.pem'),
      serverKeyFile: path.join(dir, 'server.key'),
      clients,
      otherCaPem: await read('other-ca.pem'),
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}
