/**
 * amqplib errors -> kombu-ts errors, at the transport's edge.
 *
 * amqplib reports failures as plain `Error`s. Broker closes carry `code` (the AMQP reply
 * code) and, for channels, `classId`/`methodId`; socket failures carry Node's errno `code`.
 * Some handshake failures carry nothing structured at all, only text: a refused login is
 * "Handshake terminated by server: 403 (ACCESS-REFUSED) ...", and an unknown (or forbidden)
 * vhost is "Expected ConnectionOpenOk; got <ConnectionClose ...>" because amqplib does not
 * expect a close in reply to connection.open. Those texts are read here, and only here: what
 * leaves this module is a typed error with structured fields, so nothing upstream reads
 * messages.
 *
 * Recoverability follows py-amqp (what kombu itself runs on): an access refusal is never
 * retried; 404 NOT_FOUND, 406 PRECONDITION_FAILED and 403 on a channel are irrecoverable
 * channel errors (reopening the channel does not change the answer), 405 RESOURCE_LOCKED,
 * 311 CONTENT_TOO_LARGE and 313 NO_CONSUMERS are recoverable; every connection-level
 * failure other than an access refusal heals by reconnecting, except TLS failures that the
 * same handshake would meet again (an untrusted or misnamed certificate, a client certificate
 * the broker refuses, a port that does not speak TLS) and invalid options: those are
 * configuration problems, reported once with Node's code and never retried.
 *
 * No message built here contains a password: the broker is named by {@link BrokerInfo},
 * which has none.
 */
import { AccessRefused, ChannelError, ConnectionError, HeartbeatTimeout, KombuError, channelRefusalRecoverable } from '../errors.js';

/** How to name the broker in messages (never a password). */
export interface BrokerInfo {
  /** `amqp://user@host:port/vhost`, password-free. */
  url: string;
  userid: string;
  vhost: string;
  /** The SASL mechanism (PLAIN when undefined); EXTERNAL logs in as the client certificate's user. */
  loginMethod?: string;
}

/** AMQP 0-9-1 reply codes, by number. */
export const REPLY_CODES: Readonly<Record<number, string>> = {
  200: 'REPLY_SUCCESS',
  311: 'CONTENT_TOO_LARGE',
  312: 'NO_ROUTE',
  313: 'NO_CONSUMERS',
  320: 'CONNECTION_FORCED',
  402: 'INVALID_PATH',
  403: 'ACCESS_REFUSED',
  404: 'NOT_FOUND',
  405: 'RESOURCE_LOCKED',
  406: 'PRECONDITION_FAILED',
  501: 'FRAME_ERROR',
  502: 'SYNTAX_ERROR',
  503: 'COMMAND_INVALID',
  504: 'CHANNEL_ERROR',
  505: 'UNEXPECTED_FRAME',
  506: 'RESOURCE_ERROR',
  530: 'NOT_ALLOWED',
  540: 'NOT_IMPLEMENTED',
  541: 'INTERNAL_ERROR',
};

const CLASSES: Record<number, [string, Record<number, string>]> = {
  10: ['connection', { 10: 'start', 11: 'start-ok', 30: 'tune', 40: 'open', 50: 'close' }],
  20: ['channel', { 10: 'open', 20: 'flow', 40: 'close' }],
  40: ['exchange', { 10: 'declare', 20: 'delete', 30: 'bind', 40: 'unbind' }],
  50: ['queue', { 10: 'declare', 20: 'bind', 30: 'purge', 40: 'delete', 50: 'unbind' }],
  60: ['basic', { 10: 'qos', 20: 'consume', 30: 'cancel', 40: 'publish', 70: 'get', 80: 'ack', 90: 'reject', 110: 'recover', 120: 'nack' }],
  85: ['confirm', { 10: 'select' }],
  90: ['tx', { 10: 'select', 20: 'commit', 30: 'rollback' }],
};

/** `queue.declare` for (50, 10); undefined when unknown. */
export function methodName(classId: number | undefined, methodId: number | undefined): string | undefined {
  if (classId === undefined || methodId === undefined) return undefined;
  const entry = CLASSES[classId];
  const method = entry?.[1][methodId];
  return entry && method ? `${entry[0]}.${method}` : undefined;
}


/**
 * TLS failures that retrying the same handshake cannot heal, by Node's `code`, with what to
 * check. First the broker's certificate failing our verification (OpenSSL's X509_V_ERR
 * names, and Node's host name check), then the broker's alerts refusing our client
 * certificate or our protocol, then a port that does not speak TLS at all.
 */
const UNTRUSTED = "pass the CA that signed the broker's certificate in ssl.ca (PEM) or ssl.ca_certs (a file path)";
const CLIENT_CERT = 'the broker refused our client certificate (ssl.cert, ssl.key)';
const TLS_FATAL: ReadonlyMap<string, string | undefined> = new Map([
  ['DEPTH_ZERO_SELF_SIGNED_CERT', UNTRUSTED], ['SELF_SIGNED_CERT_IN_CHAIN', UNTRUSTED],
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', UNTRUSTED], ['UNABLE_TO_GET_ISSUER_CERT', UNTRUSTED],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', UNTRUSTED], ['CERT_UNTRUSTED', UNTRUSTED],
  ['CERT_REJECTED', undefined], ['CERT_SIGNATURE_FAILURE', undefined], ['CERT_HAS_EXPIRED', undefined],
  ['CERT_NOT_YET_VALID', undefined], ['CERT_REVOKED', undefined], ['INVALID_CA', undefined], ['INVALID_PURPOSE', undefined],
  ['CERT_CHAIN_TOO_LONG', undefined], ['PATH_LENGTH_EXCEEDED', undefined],
  ['ERR_TLS_CERT_ALTNAME_INVALID', 'connect by a name the certificate lists, or set ssl.servername'],
  ['HOSTNAME_MISMATCH', 'connect by a name the certificate lists, or set ssl.servername'],
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', CLIENT_CERT], ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', CLIENT_CERT],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', CLIENT_CERT], ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', CLIENT_CERT],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', CLIENT_CERT], ['ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', CLIENT_CERT],
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', CLIENT_CERT], ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', CLIENT_CERT],
  ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'no TLS version in common (ssl.minVersion, ssl.maxVersion)'],
  ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'no TLS version in common (ssl.minVersion, ssl.maxVersion)'],
  ['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'no cipher or signature algorithm in common'],
  ['ERR_SSL_WRONG_VERSION_NUMBER', 'the port does not speak TLS: is it a plain AMQP port (5672)?'],
]);

interface DriverErrorFields {
  message: string;
  code: unknown;
  classId: unknown;
  methodId: unknown;
  /** OpenSSL's short reason ("wrong version number"), when Node gives one. */
  reason: string | undefined;
}

function fields(error: unknown): DriverErrorFields {
  const e = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  return {
    message: typeof e['message'] === 'string' ? e['message'] : String(error),
    code: e['code'],
    classId: e['classId'],
    methodId: e['methodId'],
    reason: typeof e['reason'] === 'string' ? e['reason'] : undefined,
  };
}

/** The broker's own words from an amqplib close message (`... with message "NOT_FOUND - ..."`). */
function brokerText(message: string): string {
  const match = /with message "([\s\S]*)"\s*$/.exec(message);
  return match?.[1] ?? message;
}

function replyLabel(code: number): string {
  return `${code} ${REPLY_CODES[code] ?? 'UNKNOWN'}`;
}

/** Who logs in: `user 'guest'`, or the client certificate's user for EXTERNAL. */
function loginName(broker: BrokerInfo): string {
  return broker.loginMethod?.toUpperCase() === 'EXTERNAL' ? "the client certificate's user (EXTERNAL)" : `user '${broker.userid}'`;
}

function vhostRefused(broker: BrokerInfo, cause: unknown, code: number | undefined, text: string): AccessRefused {
  return new AccessRefused(
    `RabbitMQ refused access to vhost '${broker.vhost}' for ${loginName(broker)} on ${broker.url}` +
      ` (the vhost does not exist or the user has no permission on it)${text ? `: ${text}` : ''}`,
    // The refusal answers connection.open (10, 40).
    { cause, ...(code === undefined ? {} : { code }), classId: 10, methodId: 40 },
  );
}

/** Maps a failure while opening the connection (TCP, TLS, AMQP handshake). */
export function mapOpenError(error: unknown, broker: BrokerInfo): KombuError {
  if (error instanceof KombuError) return error;
  const { message, code, reason } = fields(error);
  const terminated = /^Handshake terminated by server: (\d+)/.exec(message);
  if (terminated) {
    const reply = Number(terminated[1]);
    const text = brokerText(message);
    if (reply === 403) {
      return new AccessRefused(
        `RabbitMQ refused the login of ${loginName(broker)} on ${broker.url} (${replyLabel(reply)}): ${text}`,
        { cause: error, code: reply, classId: 10, methodId: 11 },
      );
    }
    if (reply === 530 || reply === 402) return vhostRefused(broker, error, reply, text);
    return new ConnectionError(`RabbitMQ ended the handshake on ${broker.url} (${replyLabel(reply)}): ${text}`, { cause: error, code: reply });
  }
  if (message.startsWith('Expected ConnectionOpenOk; got <ConnectionClose')) return vhostRefused(broker, error, undefined, '');
  if (message.startsWith('SASL mechanism')) {
    return new AccessRefused(`${message} (${broker.url}); choose another loginMethod`, { cause: error });
  }
  if (typeof code === 'string' && TLS_FATAL.has(code)) {
    const hint = TLS_FATAL.get(code);
    // OpenSSL's own messages (ERR_SSL_*) are noise around a short reason; Node's are plain.
    const text = code.startsWith('ERR_SSL_') ? reason ?? message.trim() : message;
    return new ConnectionError(
      `TLS handshake with ${broker.url} failed (${code}): ${text}${hint ? `; ${hint}` : ''}`,
      { cause: error, code, recoverable: false },
    );
  }
  // Node rejects bad option values (ssl.ca: 123, a port out of range) with Type/RangeErrors,
  // and unreadable PEM (ssl.cert, ssl.key) with ERR_OSSL_*: none of them heal by retrying.
  if (error instanceof TypeError || error instanceof RangeError || (typeof code === 'string' && code.startsWith('ERR_OSSL_'))) {
    const detail = typeof code === 'string' && code.startsWith('ERR_OSSL_')
      ? `cannot read a key or certificate in ssl.ca, ssl.cert or ssl.key (${code}: ${reason ?? message})`
      : message;
    return new ConnectionError(`Invalid connection option for ${broker.url}: ${detail}`, {
      cause: error,
      recoverable: false,
      ...(typeof code === 'string' ? { code } : {}),
    });
  }
  if (typeof code === 'string') {
    return new ConnectionError(`Could not connect to ${broker.url}: ${message}`, { cause: error, code });
  }
  // "Socket closed abruptly during opening handshake" lands here: recoverable, because a
  // broker restarting (or a cut link) looks exactly the same. A wrong password does not:
  // amqplib asks for authentication_failure_close, so RabbitMQ says 403 before closing.
  return new ConnectionError(`Could not open the AMQP connection to ${broker.url}: ${message}`, { cause: error });
}

/** Maps the error of an open connection that was lost (amqplib's connection `close` event). */
export function mapConnectionError(error: unknown, broker: BrokerInfo): KombuError {
  if (error instanceof KombuError) return error;
  const { message, code } = fields(error);
  if (message === 'Heartbeat timeout') {
    return new HeartbeatTimeout(`No heartbeat from ${broker.url} for two heartbeat intervals (amqplib's check)`, { cause: error });
  }
  if (typeof code === 'number') {
    const text = brokerText(message);
    if (code === 403 || code === 402 || code === 530) {
      return new AccessRefused(`RabbitMQ closed the connection to ${broker.url} (${replyLabel(code)}): ${text}`, { cause: error, code });
    }
    return new ConnectionError(`RabbitMQ closed the connection to ${broker.url} (${replyLabel(code)}): ${text}`, { cause: error, code });
  }
  if (typeof code === 'string') {
    return new ConnectionError(`Connection to ${broker.url} lost: ${message}`, { cause: error, code });
  }
  if (message === 'Unexpected close') {
    return new ConnectionError(`Connection to ${broker.url} lost: the broker closed the socket`, { cause: error });
  }
  return new ConnectionError(`Connection to ${broker.url} lost: ${message}`, { cause: error });
}

/**
 * Maps a broker's channel close (amqplib errors with a numeric `code`) to a ChannelError;
 * undefined when `error` carries no reply code (it is then about the channel's end, not its
 * cause, and the caller reports the channel's close reason instead).
 */
export function mapChannelError(error: unknown, channelId: number): ChannelError | undefined {
  if (error instanceof ChannelError) return error;
  const { message, code, classId, methodId } = fields(error);
  if (typeof code !== 'number') return undefined;
  const cls = typeof classId === 'number' && classId !== 0 ? classId : undefined;
  const method = typeof methodId === 'number' && cls !== undefined ? methodId : undefined;
  const name = methodName(cls, method);
  return new ChannelError(
    `Channel ${channelId} closed by the broker (${replyLabel(code)}${name ? `, on ${name}` : ''}): ${brokerText(message)}`,
    {
      cause: error,
      code,
      ...(cls === undefined ? {} : { classId: cls }),
      ...(method === undefined ? {} : { methodId: method }),
      recoverable: channelRefusalRecoverable(code),
    },
  );
}

/**
 * The exchange a broker's refusal of a `basic.publish` names ("NOT_FOUND - no exchange 'x' in
 * vhost '/'", "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused ..."), `''` for the
 * default exchange; undefined for other errors. The refusal closes the channel and so fails
 * every publish not yet confirmed on it: this tells the one refused from the others.
 */
export function refusedPublishExchange(error: ChannelError): string | undefined {
  if (error.classId !== 60 || error.methodId !== 40) return undefined;
  const name = / exchange '(.*)' in vhost '/.exec(brokerText(error.message))?.[1];
  return name === 'amq.default' ? '' : name;
}

/**
 * The AMQP method (class << 16 | method) each RPC sends: a broker error naming another method
 * closed the channel over some other call, not over this one.
 */
const RPC_METHODS: Readonly<Record<string, number>> = {
  'declare exchange': 0x28000a,
  'delete exchange': 0x280014,
  'declare queue': 0x32000a,
  'bind queue': 0x320014,
  'purge queue': 0x32001e,
  'delete queue': 0x320028,
  'unbind queue': 0x320032,
  qos: 0x3c000a,
  consume: 0x3c0014,
  cancel: 0x3c001e,
  get: 0x3c0046,
  recover: 0x3c006e,
};

/**
 * The error of an RPC the broker did not refuse: it closed the channel over another call (a
 * publish to a missing exchange, another declare) while this one was in flight. Recoverable,
 * unlike that refusal: the call itself may well succeed on the reopened channel. Undefined when
 * `reason` is this call's own refusal, or names no method.
 *
 * Which call was refused: the broker answers a channel's calls in order, so the refused one is
 * the oldest unanswered call, the one amqplib hands the broker's close to. A call that got the
 * close may have been refused (`ownClose`, the default: it was, if the close names its method);
 * the calls behind it get amqplib's "channel ended" instead and never were, even when the
 * close names their method (two declares sent together, the first refused).
 *
 * @example
 * ```ts
 * // declareQueue in flight when a publish to a missing exchange (404 on basic.publish) closed the channel:
 * overtaken(refusal, 'declare queue', 1)?.recoverable; // true
 * ```
 */
export function overtaken(reason: ChannelError, operation: string, channelId: number, ownClose = true): ChannelError | undefined {
  const own = RPC_METHODS[operation];
  if (own === undefined || reason.classId === undefined || reason.methodId === undefined) return undefined;
  if (ownClose && ((reason.classId << 16) | reason.methodId) === own) return undefined;
  return new ChannelError(`Cannot ${operation} on channel ${channelId}: the broker closed it over another call (${reason.message})`, {
    cause: reason,
    recoverable: true,
  });
}

/**
 * Surfaces an exception thrown by a user callback (consumer, event listener) without letting
 * it unwind through amqplib's frame parser, which would corrupt the connection's state: it
 * is rethrown on its own turn of the event loop, as an uncaught exception.
 */
export function rethrowLater(error: unknown): void {
  setImmediate(() => {
    throw error;
  });
}
