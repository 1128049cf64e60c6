/**
 * TLS on the local RabbitMQ at test time, without restarting it: everything is done on the
 * running node through `rabbitmqctl eval` and undone afterwards, and nothing is written to
 * its config files (a broker restart would forget it all anyway).
 *
 * - Listeners: `rabbit_networking:start_ssl_listener/3` on 127.0.0.1 and a free port, with
 *   the test certificates; `stop_tcp_listener/1` removes them (and their connections).
 *   Two are started: `port` verifies a client certificate when one is presented and does
 *   not require one; `mtlsPort` requires one (verify_peer + fail_if_no_peer_cert).
 * - EXTERNAL: the rabbitmq_auth_mechanism_ssl plugin's application is started on the node
 *   (`rabbit:start_apps/1`, what `rabbitmq-plugins enable --online` runs, minus the write to
 *   enabled_plugins and ~9 s of CLI round trips), `EXTERNAL` is added to `auth_mechanisms`,
 *   `ssl_cert_login_from` is set to `common_name`, and `ssl_options` gets verify_peer (the
 *   plugin refuses to name users from certificates otherwise). The previous values are read
 *   first and set back by `restore()`, which also stops the plugin if it was not running.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import { rabbitmqctl } from './rabbitmq.js';
import type { TestCertificates } from './tls-certs.js';

const run = promisify(execFile);

/** `rabbitmqctl eval`'s printed result, trimmed. */
export async function evalErlang(expression: string): Promise<string> {
  const { stdout } = await rabbitmqctl('eval', expression);
  return stdout.trim();
}

/** An Erlang string literal. */
function erlString(text: string): string {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error(`Not a printable ASCII path: ${JSON.stringify(text)}`);
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Whether the TLS tests can run here: `openssl` works, and the node can start TLS listeners
 * and has the EXTERNAL plugin. Throws in CI (a skip there would hide a broken setup); warns
 * and answers false locally.
 */
export async function probeRabbitmqTls(file: string): Promise<{ tls: boolean; external: boolean }> {
  const fail = (what: string, error?: unknown): { tls: boolean; external: boolean } => {
    const message = `[${file}] ${what}${error ? `: ${error instanceof Error ? error.message : String(error)}` : ''}`;
    if (process.env['CI']) throw new Error(`${message} (CI is set: failing, not skipping)`);
    console.warn(`${message}: skipping`);
    return { tls: false, external: false };
  };
  try {
    await run('openssl', ['version'], { timeout: 10_000 });
  } catch (error) {
    return fail('the openssl CLI is needed to make test certificates', error);
  }
  let answer: string;
  try {
    answer = await evalErlang(
      "{erlang:function_exported(rabbit_networking, start_ssl_listener, 3), code:which(rabbit_auth_mechanism_ssl) =/= non_existing}.",
    );
  } catch (error) {
    return fail('rabbitmqctl eval does not work', error);
  }
  if (!answer.startsWith('{true,')) return fail(`RabbitMQ cannot start a TLS listener at run time (${answer})`);
  if (answer !== '{true,true}') return { ...fail('the rabbitmq_auth_mechanism_ssl plugin is not installed'), tls: true };
  return { tls: true, external: true };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const stopListener = (port: number) => evalErlang(`rabbit_networking:stop_tcp_listener({"127.0.0.1", ${port}}).`);

async function startListener(certs: TestCertificates, requireClientCert: boolean): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const answer = await evalErlang(
      `rabbit_networking:start_ssl_listener({"127.0.0.1", ${port}}, rabbit_networking:fix_ssl_options([` +
        `{cacertfile, ${erlString(certs.caFile)}}, {certfile, ${erlString(certs.serverCertFile)}}, ` +
        `{keyfile, ${erlString(certs.serverKeyFile)}}, {verify, verify_peer}, {fail_if_no_peer_cert, ${requireClientCert}}]), 1).`,
    );
    if (answer === 'ok') return port;
    // Someone took the port between our probe and the broker's bind: try another.
    if (!answer.includes('eaddrinuse') || attempt >= 3) throw new Error(`RabbitMQ did not start a TLS listener on ${port}: ${answer}`);
  }
}

export interface TlsListeners {
  /** TLS; a client certificate is verified when presented, not required. */
  port: number;
  /** Mutual TLS: a client certificate signed by the test CA is required. */
  mtlsPort: number;
  /** Stops both listeners. */
  stop(): Promise<void>;
}

/** Starts the two TLS listeners (see the header); stops whatever started if one fails. */
export async function startTlsListeners(certs: TestCertificates): Promise<TlsListeners> {
  const port = await startListener(certs, false);
  let mtlsPort: number;
  try {
    mtlsPort = await startListener(certs, true);
  } catch (error) {
    await stopListener(port);
    throw error;
  }
  return {
    port,
    mtlsPort,
    async stop() {
      const results = await Promise.allSettled([stopListener(port), stopListener(mtlsPort)]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}

const PLUGIN = 'rabbitmq_auth_mechanism_ssl';
const ENV_KEYS = '[auth_mechanisms, ssl_cert_login_from, ssl_options]';

/**
 * Lets `user` log in with EXTERNAL (a client certificate whose CN is `user`): see the header.
 * The user is created with no password (it can log in only by certificate) and full rights
 * on `/`. `restore()` deletes it and puts the node's state back; call it even when this throws
 * halfway (this undoes its own partial work before throwing).
 */
export async function enableExternalAuth(user: string): Promise<{ restore(): Promise<void> }> {
  // Read-only first: the state to come back to, as an Erlang term.
  const saved = await evalErlang(
    `{[{K, application:get_env(rabbit, K)} || K <- ${ENV_KEYS}], lists:member(${PLUGIN}, rabbit_plugins:active())}.`,
  );
  if (!/^\{\[/.test(saved) || /#[A-Z]|<\d+\.\d+\.\d+>/.test(saved)) throw new Error(`Cannot save the broker's TLS settings: ${saved}`);
  let userAdded = false;
  const restore = async (): Promise<void> => {
    const errors: unknown[] = [];
    const answer = await evalErlang(
      `{Saved, WasActive} = ${saved},` +
        ` lists:foreach(fun({K, {ok, V}}) -> application:set_env(rabbit, K, V); ({K, undefined}) -> application:unset_env(rabbit, K) end, Saved),` +
        ` case WasActive orelse not lists:member(${PLUGIN}, rabbit_plugins:active()) of true -> ok; false -> rabbit:stop_apps([${PLUGIN}]) end.`,
    ).catch((error: unknown) => (errors.push(error), ''));
    if (answer !== 'ok' && errors.length === 0) errors.push(new Error(`Restoring the broker's TLS settings answered ${answer}`));
    if (userAdded) await rabbitmqctl('delete_user', user).catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw new AggregateError(errors, 'Could not restore the broker after the EXTERNAL tests');
  };
  try {
    const answer = await evalErlang(
      `case lists:member(${PLUGIN}, rabbit_plugins:active()) of true -> ok; false -> ok = rabbit:start_apps([${PLUGIN}]) end,` +
        ` {ok, Mechanisms} = application:get_env(rabbit, auth_mechanisms),` +
        ` application:set_env(rabbit, auth_mechanisms, Mechanisms ++ (['EXTERNAL'] -- Mechanisms)),` +
        ` application:set_env(rabbit, ssl_cert_login_from, common_name),` +
        ` {ok, SslOptions} = application:get_env(rabbit, ssl_options),` +
        ` application:set_env(rabbit, ssl_options, lists:keystore(verify, 1, SslOptions, {verify, verify_peer})).`,
    );
    if (answer !== 'ok') throw new Error(`Enabling EXTERNAL answered ${answer}`);
    // A password never starting with '-', which rabbitmqctl would read as an option; cleared next.
    await rabbitmqctl('add_user', user, `p${randomBytes(18).toString('base64url')}`);
    userAdded = true;
    await rabbitmqctl('clear_password', user);
    await rabbitmqctl('set_permissions', '-p', '/', user, '.*', '.*', '.*');
  } catch (error) {
    await restore().catch(() => {});
    throw error;
  }
  return { restore };
}

/** What RabbitMQ says about one client connection. */
export interface BrokerSideConnection {
  user: string;
  auth_mechanism: string;
  ssl: boolean;
  ssl_protocol: string;
  peer_cert_subject: string;
}

/** The broker's view of the connection whose client named itself `connectionName`. */
export async function brokerSideConnection(connectionName: string): Promise<BrokerSideConnection | undefined> {
  const { stdout } = await rabbitmqctl(
    'list_connections', '--formatter', 'json', 'user', 'auth_mechanism', 'ssl', 'ssl_protocol', 'peer_cert_subject', 'client_properties',
  );
  const rows = JSON.parse(stdout) as (BrokerSideConnection & { client_properties: [string, string, unknown][] })[];
  const row = rows.find((r) => r.client_properties.some(([key, , value]) => key === 'connection_name' && value === connectionName));
  if (!row) return undefined;
  const { client_properties: _, ...rest } = row;
  return rest;
}
