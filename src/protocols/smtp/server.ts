/**
 * SMTP wire code (smtp-server): greeting, STARTTLS, limits, size, reply
 * mapping. It knows nothing of storage or policy; everything the server
 * decides comes through `SmtpHooks`, and every refusal a hook throws (a
 * ReplyError, or a DomainError translated by ./errors.ts) is rendered as
 * `code enhanced text`. Any other error becomes 451 4.3.0 and its cause
 * goes to the log, never to the client.
 */
import { SMTPServer, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { ReplyError } from '../../core/errors.ts';
import { smtpReplyOf } from './errors.ts';
import { installEnhancedCodeAdapter } from './enhanced-codes.ts';
import { installGreetingHold, trustClient } from './greeting-hold.ts';
import { installAuthAfterTls } from './auth-after-tls.ts';
import { installLenientSender } from './sender-syntax.ts';
import { installPooledSessionIds } from './session-id.ts';
import { installQuitClose } from './quit-close.ts';
import { installDataScan } from './data-scan.ts';
import { dataPacer } from './data-pacing.ts';
import { DEFAULT_HEADER_LIMITS, HeaderLimitChecker, type HeaderLimits } from '../../core/header-limits.ts';

export interface SmtpSessionInfo {
  id: string;
  remoteAddress: string;
  clientHostname: string;
  helo: string;
  secure: boolean;
  /** TLS protocol, e.g. "TLSv1.3", when secure. */
  tlsProtocol: string | null;
  /** The recipients accepted so far in this transaction. */
  recipients: string[];
  /** The authenticated user (submission), or null. */
  user: string | null;
}

/**
 * The endpoint's side of the wire. `R` is what the endpoint resolved a recipient to at RCPT TO
 * (a user); the wire keeps it with the accepted address, opaque, and hands it back at the end of
 * DATA, so the endpoint need not look the recipient up twice. It lives in smtp-server's envelope,
 * which RSET, a new MAIL FROM and the end of the connection discard.
 */
export interface SmtpHooks<R = unknown> {
  /** MAIL FROM; address is null for the null reverse-path `<>`. */
  onSender?(address: string | null, session: SmtpSessionInfo): Promise<void>;
  /**
   * RCPT TO. Throws a ReplyError to refuse. `exclusive` asks for a
   * transaction of its own: the end-of-DATA reply is shared by all
   * recipients, so a recipient whose verdict may differ is kept alone.
   */
  onRecipient(address: string, session: SmtpSessionInfo): Promise<{ exclusive: boolean; resolved?: R }>;
  /**
   * End of DATA. Resolves (with the 250 text) only once the message is durable. `resolved[i]` is
   * what onRecipient gave for `to[i]` (undefined when it gave nothing).
   */
  onMessage(envelope: { from: string | null; to: string[]; resolved: Array<R | undefined> }, raw: Buffer, session: SmtpSessionInfo): Promise<string>;
  onError?(err: unknown, session: SmtpSessionInfo | null): void;
}

export interface SmtpListenerOptions {
  hostname: string;
  host: string;
  port: number;
  tls: { key: string | Buffer; cert: string | Buffer };
  maxMessageSize: number;
  maxRecipients: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Checked while DATA streams in, before any hook sees the message (core/header-limits.ts). */
  headerLimits?: HeaderLimits;
  hooks: SmtpHooks;
  /**
   * Submission mode (RFC 6409): AUTH PLAIN/LOGIN is required, offered only
   * after STARTTLS. `authenticate` resolves to the user name the session is
   * then bound to, or throws a ReplyError (535 5.7.8, 454 4.7.0).
   */
  auth?: { authenticate(username: string, password: string, session: SmtpSessionInfo): Promise<string> };
}

export interface SmtpListener {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

interface TransactionState {
  exclusive: boolean;
}

export async function startSmtpListener(options: SmtpListenerOptions): Promise<SmtpListener> {
  await installEnhancedCodeAdapter();
  await installGreetingHold();
  await installAuthAfterTls();
  await installLenientSender();
  await installQuitClose();
  await installDataScan();
  installPooledSessionIds();
  const { hooks } = options;
  const wire: Wire = (err, session) => toWire(err, session, hooks.onError);

  const server = new SMTPServer({
    name: options.hostname,
    banner: 'twoway ESMTP',
    key: options.tls.key,
    cert: options.tls.cert,
    size: options.maxMessageSize,
    rejectOversized: true,
    maxRecipients: options.maxRecipients,
    maxClients: options.maxConnections,
    ...(options.auth
      ? { authMethods: ['PLAIN', 'LOGIN'], authOptional: false, allowInsecureAuth: false }
      : { disabledCommands: ['AUTH'], authOptional: true }),
    // RFC 3463 codes on every reply, including smtp-server's own (off by default there).
    hideENHANCEDSTATUSCODES: false,
    onAuth: authHandler(options, wire),
    // The client's rDNS name is only informational here (it goes into the
    // Received header); skipping the lookup saves a DNS round trip per
    // connection. SPF/DMARC do their own lookups.
    disableReverseLookup: true,
    logger: false,
    // Replies are small and each one is awaited by the client: no Nagle delay. Set by net.Server
    // as it accepts (smtp-server hands its options to net.createServer), not by a listener per connection.
    noDelay: true,
    ...perIpLimit(options.maxConnectionsPerIp),
    ...transactionHandlers(options, wire),
  });

  server.on('error', (err) => hooks.onError?.(err, null));

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;

  return {
    port,
    host: options.host,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An error for smtp-server's callbacks, with the reply this server gives for it. */
type Wire = (err: unknown, session: SMTPServerSession | null) => Error;

/** AUTH PLAIN and LOGIN (submission only), through options.auth. */
function authHandler(options: SmtpListenerOptions, wire: Wire): SMTPServerOptions['onAuth'] {
  return (auth, session, callback) => {
    const authenticate = options.auth?.authenticate;
    if (!authenticate || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN')) {
      return callback(wire(new ReplyError(504, '5.5.4', 'Unrecognized authentication type'), session));
    }
    authenticate(auth.username ?? '', auth.password ?? '', sessionInfo(session)).then(
      (user) => callback(null, { user }),
      (err: unknown) => callback(wire(err, session)),
    );
  };
}

/** At most `max` connections from one client address at a time (421 past it). */
function perIpLimit(max: number): Pick<SMTPServerOptions, 'onConnect' | 'onClose'> {
  const perIp = new Map<string, number>();
  return {
    onConnect(session, callback) {
      const n = (perIp.get(session.remoteAddress) ?? 0) + 1;
      if (n > max) {
        const e = new Error('4.7.0 Too many connections from your address, try again later') as Error & { responseCode: number };
        e.responseCode = 421;
        return callback(e);
      }
      perIp.set(session.remoteAddress, n);
      callback();
    },
    onClose(session) {
      const n = (perIp.get(session.remoteAddress) ?? 1) - 1;
      if (n <= 0) perIp.delete(session.remoteAddress);
      else perIp.set(session.remoteAddress, n);
    },
  };
}

/**
 * MAIL FROM, RCPT TO and DATA through the hooks; a recipient that needs a
 * transaction of its own (strict mode) is alone in it.
 */
function transactionHandlers(options: SmtpListenerOptions, wire: Wire): Pick<SMTPServerOptions, 'onMailFrom' | 'onRcptTo' | 'onData'> {
  const { hooks } = options;
  const transactions = new WeakMap<SMTPServerSession, TransactionState>();
  // What onRecipient resolved each accepted address to: smtp-server puts this very object in the envelope.
  const resolved = new WeakMap<object, unknown>();
  return {
    onMailFrom(address, session, callback) {
      transactions.delete(session);
      // It waited for the greeting (or it would have been cut off) and speaks SMTP.
      trustClient(session.remoteAddress);
      const from = address.address === '' ? null : address.address;
      (hooks.onSender ? hooks.onSender(from, sessionInfo(session)) : Promise.resolve()).then(
        () => callback(),
        (err: unknown) => callback(wire(err, session)),
      );
    },
    onRcptTo(address, session, callback) {
      const state = transactions.get(session);
      if (state?.exclusive) {
        return callback(wire(new ReplyError(452, '4.5.3', 'One recipient per transaction for this mailbox; send the others separately'), session));
      }
      hooks.onRecipient(address.address, sessionInfo(session)).then(
        (answer) => {
          if (answer.exclusive && session.envelope.rcptTo.length > 0) {
            return callback(wire(new ReplyError(452, '4.5.3', 'This recipient needs a transaction of its own; send it separately'), session));
          }
          if (answer.exclusive) transactions.set(session, { exclusive: true });
          if (answer.resolved !== undefined) resolved.set(address, answer.resolved);
          callback();
        },
        (err: unknown) => callback(wire(err, session)),
      );
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      // The transaction ends with DATA, whatever its outcome: a next MAIL FROM starts afresh.
      stream.on('end', () => transactions.delete(session));
      receiveData(stream, session, callback, options, wire, resolved);
    },
  };
}

function sessionInfo(s: SMTPServerSession): SmtpSessionInfo {
  return {
    id: s.id,
    remoteAddress: s.remoteAddress,
    clientHostname: s.clientHostname,
    helo: s.hostNameAppearsAs || '',
    secure: s.secure,
    tlsProtocol: s.tlsOptions && typeof s.tlsOptions === 'object' && 'version' in s.tlsOptions ? String(s.tlsOptions.version) : null,
    recipients: s.envelope.rcptTo.map((a) => a.address),
    user: typeof s.user === 'string' ? s.user : null,
  };
}

/** Any error as smtp-server's reply error (code and enhanced text); faults (not replies) are reported first. */
function toWire(err: unknown, session: SMTPServerSession | null, onError: SmtpHooks['onError']): Error {
  const { reply, fault } = smtpReplyOf(err);
  if (fault) onError?.(err, session ? sessionInfo(session) : null);
  const e = new Error(`${reply.enhanced} ${reply.text}`) as Error & { responseCode: number };
  e.responseCode = reply.code;
  return e;
}

/**
 * DATA: the header limits checked while the bytes stream in, the message
 * kept up to the size limit (past a limit the rest is drained, so the session
 * stays in step with the client), then handed to the onMessage hook.
 */
function receiveData(
  stream: SMTPServerDataStream,
  session: SMTPServerSession,
  callback: (err?: Error | null, message?: string) => void,
  options: SmtpListenerOptions,
  wire: (err: unknown, session: SMTPServerSession | null) => Error,
  resolved: WeakMap<object, unknown>,
): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const header = new HeaderLimitChecker(options.headerLimits ?? DEFAULT_HEADER_LIMITS);
  const pace = dataPacer(stream);
  stream.on('data', (chunk: Buffer) => {
    if (!header.done) {
      header.push(chunk);
      if (header.violation) chunks.length = 0;
    }
    // Past a limit the bytes are drained, not kept, so the session stays in step with the
    // client; smtp-server answers 552 5.3.4 for the size itself.
    if (header.violation === null && length + chunk.length <= options.maxMessageSize) chunks.push(chunk);
    length += chunk.length;
    pace(chunk.length);
  });
  stream.on('error', (err) => callback(wire(err, session)));
  stream.on('end', () => {
    if (stream.sizeExceeded) return callback();
    const refused = header.finish();
    if (refused) {
      chunks.length = 0;
      return callback(wire(refused, session));
    }
    const envelope = {
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address || null : null,
      to: session.envelope.rcptTo.map((a) => a.address),
      resolved: session.envelope.rcptTo.map((a) => resolved.get(a)),
    };
    options.hooks.onMessage(envelope, Buffer.concat(chunks, length), sessionInfo(session)).then(
      (text) => callback(null, `2.0.0 ${text}`),
      (err: unknown) => callback(wire(err, session)),
    );
  });
}
