/**
 * One SMTP client session with one mail exchanger address, over nodemailer's
 * smtp-connection (connect, EHLO, opportunistic STARTTLS, transactions, RSET,
 * QUIT), turned into promises and per-recipient outcomes.
 *
 * Why the care around nodemailer's events: on a connection failure it emits
 * 'error', then 'end', and only then calls the pending callback, and a reply
 * callback queued before the socket closed is never called at all (close()
 * drops the queue). So every wait also listens for 'end', and on 'end'
 * settles one tick later, letting a late callback with the real error win.
 * A permanent 'error' listener is required anyway: an EventEmitter 'error'
 * without one would throw and take the process down.
 */
import { isAscii } from 'node:buffer';
import { isIP } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPConnectionEnvelope, SMTPConnectionSendInfo, SMTPEnvelope, SMTPError } from 'nodemailer/lib/smtp-connection';
import type { OutboundMessage } from './types.ts';
import { formatReply, replies, type Reply } from '../core/reply.ts';
import { describeFailure, outcomeOfReply, replyOf, type RcptOutcome } from './smtp-replies.ts';

export interface SessionOptions {
  /** The MX host name: presented as the TLS server name, used in texts. */
  host: string;
  address: string;
  port: number;
  heloName: string;
  /** Source address of outgoing connections (Postfix's smtp_bind_address); the system's choice if absent. */
  localAddress?: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

/**
 * `unusable`: the session failed before the server answered any recipient
 * (connection lost, 421), so nothing is known about this message here and
 * the caller may try another connection or host. `done`: an outcome for
 * every recipient (`delivered` counts those the server took).
 */
export type TransactionOutcome =
  | { kind: 'unusable'; reply: Reply }
  | { kind: 'done'; results: Map<string, RcptOutcome>; delivered: number };

/** Thrown by `openSession`; `reply` is ready for a recipient result. */
export class ConnectError extends Error {
  constructor(
    readonly reply: Reply,
    readonly tlsFailure: boolean,
  ) {
    super(formatReply(reply));
  }
}

/**
 * Opens a session: greeting, EHLO, STARTTLS when offered. The certificate is
 * not verified (Postfix's `smtp_tls_security_level = may`): MX records are
 * not authenticated, so verification would only turn some mail away without
 * stopping an active attacker, while encryption still defeats passive ones.
 * For the same reason a failed TLS handshake is retried once in plaintext.
 */
export async function openSession(options: SessionOptions): Promise<SmtpSession> {
  try {
    return await connect(options, true);
  } catch (err) {
    if (!(err instanceof ConnectError) || !err.tlsFailure) throw err;
    return connect(options, false);
  }
}

async function connect(o: SessionOptions, tls: boolean): Promise<SmtpSession> {
  const conn = new SMTPConnection({
    host: o.address,
    port: o.port,
    // Explicit, because nodemailer assumes implicit TLS on port 465.
    secure: false,
    name: o.heloName,
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    // SNI takes a DNS name only: none for an address literal destination (`[192.0.2.1]`).
    ...(isIP(o.host) === 0 && !o.host.startsWith('[') ? { servername: o.host } : {}),
    ignoreTLS: !tls,
    // A 4xx/5xx answer to STARTTLS: go on in plaintext rather than give up.
    opportunisticTLS: true,
    tls: { rejectUnauthorized: false },
    // nodemailer's connectionTimeout bounds the whole setup (TCP, greeting, TLS handshake).
    connectionTimeout: o.connectTimeoutMs,
    greetingTimeout: o.commandTimeoutMs,
    socketTimeout: o.commandTimeoutMs,
    logger: false,
  });
  const session = new SmtpSession(conn, `${o.host}[${o.address}]:${o.port}`);
  try {
    await session.wait<void>((done) => conn.connect((err) => done(err ?? null)));
    return session;
  } catch (err) {
    conn.close();
    // `upgrading` stays true when the connection died during the STARTTLS handshake.
    throw new ConnectError(describeFailure(err as SMTPError, session.peer), tls && conn.upgrading === true);
  }
}

export class SmtpSession {
  /** `host[address]:port`, for texts and logs. */
  readonly peer: string;
  /** A transaction ran on this session: RSET before the next one. */
  used = false;
  readonly #conn: SMTPConnection;
  #dead = false;
  #lastError: SMTPError | undefined;
  #onEnd: (() => void) | undefined;

  constructor(conn: SMTPConnection, peer: string) {
    this.#conn = conn;
    this.peer = peer;
    conn.on('error', (err: SMTPError) => {
      this.#dead = true;
      this.#lastError = err;
    });
    conn.once('end', () => {
      this.#dead = true;
      this.#onEnd?.();
    });
  }

  get alive(): boolean {
    return !this.#dead && !this.#conn.destroyed;
  }

  /** True when STARTTLS succeeded. */
  get secure(): boolean {
    return this.#conn.secure;
  }

  /** Called once when the connection ends for any reason (the pool drops idle sessions the server closed). */
  onEnd(listener: () => void): void {
    this.#onEnd = listener;
  }

  /** RSET; rejects when the session is no longer usable (e.g. the server closed an idle connection). */
  reset(): Promise<void> {
    return this.wait<void>((done) => this.#conn.reset((err) => done(err)));
  }

  async transact(message: OutboundMessage, recipients: string[]): Promise<TransactionOutcome> {
    const envelope: SMTPEnvelope = {
      from: message.sender ?? false, // false is nodemailer's null reverse-path: MAIL FROM:<>
      to: recipients,
      size: message.raw.length, // SIZE= lets the server refuse an oversized message before DATA
      use8BitMime: !isAscii(message.raw), // BODY=8BITMIME when there are 8-bit bytes to declare
    };
    this.used = true;
    let response: string | undefined;
    let error: SMTPError | undefined;
    try {
      response = (await this.wait<SMTPConnectionSendInfo>((done) => this.#conn.send(envelope, message.raw, done))).response;
    } catch (err) {
      error = err as SMTPError;
    }
    // nodemailer keeps its RCPT bookkeeping on the envelope object it was given
    // (typed SMTPConnectionEnvelope); only there do we learn who was accepted
    // when DATA or the final dot is refused.
    const tracked = envelope as Partial<SMTPConnectionEnvelope>;
    return interpret(recipients, tracked.accepted ?? [], tracked.rejectedErrors ?? [], response, error, this.peer);
  }

  /** QUIT politely; closes hard after `graceMs` if the server does not answer. Never rejects. */
  quit(graceMs = 1000): Promise<void> {
    if (!this.alive) {
      this.#conn.close();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#conn.close();
        resolve();
      }, graceMs);
      this.#conn.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#conn.quit();
    });
  }

  /** Runs a callback-style nodemailer call, also settling if the connection ends without calling back. */
  wait<T>(start: (done: (err: SMTPError | null, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: SMTPError | null, value?: T): void => {
        if (settled) return;
        settled = true;
        this.#conn.off('end', onEnd);
        if (err) reject(err);
        else resolve(value as T);
      };
      const onEnd = (): void => {
        setImmediate(() => finish(this.#lastError ?? closedError()));
      };
      this.#conn.once('end', onEnd);
      start(finish);
    });
  }
}

/** Per-recipient outcomes of one transaction from what nodemailer reported. */
function interpret(
  recipients: string[],
  accepted: string[],
  rejected: SMTPError[],
  response: string | undefined,
  err: SMTPError | undefined,
  peer: string,
): TransactionOutcome {
  const results = new Map<string, RcptOutcome>();
  const all = (outcome: RcptOutcome): void => {
    for (const r of recipients) results.set(r, outcome);
  };
  if (err && err.command === 'MAIL FROM' && err.responseCode !== undefined && err.responseCode !== 421) {
    // The sender was refused: that answers every recipient (RCPT replies after it are only 503s).
    all(outcomeOfReply(err.response, err.responseCode));
    return { kind: 'done', results, delivered: 0 };
  }
  if (err && err.code === 'EMESSAGE' && err.responseCode === undefined) {
    // nodemailer refuses locally what exceeds the server's advertised SIZE.
    all({ status: 'failed', reply: replies.messageTooBigFor(peer, err.message) });
    return { kind: 'done', results, delivered: 0 };
  }
  for (const e of rejected) {
    if (e.recipient !== undefined) results.set(e.recipient, outcomeOfReply(e.response, e.responseCode));
  }
  if (!err) {
    for (const r of accepted) results.set(r, { status: 'delivered', reply: replyOf(response ?? '250') });
    return { kind: 'done', results, delivered: accepted.length };
  }
  const connectionLost = err.responseCode === undefined || err.responseCode === 421;
  if (connectionLost && accepted.length === 0 && results.size === 0) {
    return { kind: 'unusable', reply: describeFailure(err, peer) };
  }
  // A refused DATA or final dot answers every recipient the RCPT phase accepted.
  const fallback = connectionLost ? { status: 'deferred' as const, reply: describeFailure(err, peer) } : outcomeOfReply(err.response, err.responseCode);
  for (const r of recipients) {
    if (!results.has(r)) results.set(r, fallback);
  }
  return { kind: 'done', results, delivered: 0 };
}

function closedError(): SMTPError {
  const err: SMTPError = new Error('Connection closed unexpectedly');
  err.code = 'ECONNECTION';
  return err;
}
