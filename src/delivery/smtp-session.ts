/**
 * One SMTP client session with one mail exchanger address, over the
 * project's own client (smtp-client.ts): connect, greeting, EHLO (HELO when
 * EHLO is refused), opportunistic STARTTLS, then transactions
 * (smtp-transaction.ts, pipelined when the server offers PIPELINING) until
 * QUIT.
 */
import { isIP } from 'node:net';
import { formatReply, type Reply } from '../core/reply.ts';
import { SmtpClient, SmtpFailure, type TimeoutType } from './smtp-client.ts';
import type { SmtpReply } from './smtp-reply-reader.ts';
import { describeFailure } from './smtp-replies.ts';
import { runTransaction, type Extensions, type TransactionOutcome } from './smtp-transaction.ts';
import type { OutboundMessage } from './types.ts';

export type { TransactionOutcome } from './smtp-transaction.ts';

export interface SessionOptions {
  /** The MX host name: presented as the TLS server name, used in texts. */
  host: string;
  address: string;
  port: number;
  heloName: string;
  /** Source address of outgoing connections (Postfix's smtp_bind_address); the system's choice if absent. */
  localAddress?: string;
  /** Bounds the setup: TCP connect, greeting, STARTTLS handshake. */
  connectTimeoutMs: number;
  /** Inactivity limit while waiting for any reply. */
  commandTimeoutMs: number;
}

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
  const peer = `${o.host}[${o.address}]:${o.port}`;
  let client: SmtpClient;
  try {
    client = await SmtpClient.connect(o);
  } catch (err) {
    throw new ConnectError(describeFailure(err as SmtpFailure, peer), false);
  }
  let phase: TimeoutType = 'GREETING_TIMEOUT';
  // The connect timeout also bounds the whole setup (greeting, EHLO, TLS handshake): a server that
  // trickles replies cannot hold a connection slot for a reply timeout per command.
  const deadline = setTimeout(() => client.close(new SmtpFailure('session setup timed out', 'ETIMEDOUT', phase)), o.connectTimeoutMs);
  try {
    const greeting = await client.read('GREETING_TIMEOUT');
    phase = 'RESPONSE_TIMEOUT';
    if (greeting.code !== 220) throw SmtpFailure.ofReply(greeting);
    let ext = await hello(client, o.heloName);
    if (tls && ext.startTls) {
      const answer = await client.command('STARTTLS');
      // A 4xx/5xx answer to STARTTLS: go on in plaintext rather than give up.
      if (answer.code === 220) {
        phase = 'UPGRADE_TIMEOUT';
        // SNI takes a DNS name only: none for an address literal destination (`[192.0.2.1]`).
        await client.upgrade(isIP(o.host) === 0 && !o.host.startsWith('[') ? o.host : undefined, o.connectTimeoutMs);
        phase = 'RESPONSE_TIMEOUT';
        ext = await hello(client, o.heloName);
      }
    }
    return new SmtpSession(client, peer, ext);
  } catch (err) {
    client.close();
    if (!(err instanceof SmtpFailure)) throw err;
    throw new ConnectError(describeFailure(err, peer), tls && phase === 'UPGRADE_TIMEOUT');
  } finally {
    clearTimeout(deadline);
  }
}

/** EHLO, or HELO when the server does not know EHLO; the extensions the server offers. */
async function hello(client: SmtpClient, name: string): Promise<Extensions> {
  const ehlo = await client.command(`EHLO ${name}`);
  if (ehlo.code === 250) return extensionsOf(ehlo);
  // 421: the server is closing; anything else but a 5xx "unknown command" ends the session too.
  if (ehlo.code < 500) throw SmtpFailure.ofReply(ehlo);
  const helo = await client.command(`HELO ${name}`);
  if (helo.code !== 250) throw SmtpFailure.ofReply(helo);
  return { pipelining: false, startTls: false, eightBitMime: false, smtpUtf8: false, size: undefined };
}

export function extensionsOf(reply: SmtpReply): Extensions {
  const ext: Extensions = { pipelining: false, startTls: false, eightBitMime: false, smtpUtf8: false, size: undefined };
  for (const line of reply.lines.slice(1)) {
    const [keyword = '', arg] = line.slice(4).trim().toUpperCase().split(/\s+/);
    if (keyword === 'PIPELINING') ext.pipelining = true;
    else if (keyword === 'STARTTLS') ext.startTls = true;
    else if (keyword === '8BITMIME') ext.eightBitMime = true;
    else if (keyword === 'SMTPUTF8') ext.smtpUtf8 = true;
    else if (keyword === 'SIZE') ext.size = /^\d+$/.test(arg ?? '') ? Number(arg) : 0;
  }
  return ext;
}

export class SmtpSession {
  /** `host[address]:port`, for texts and logs. */
  readonly peer: string;
  readonly extensions: Extensions;
  readonly #client: SmtpClient;
  /** The last transaction was left open (refused after MAIL was accepted): RSET before the next. */
  #needsReset = false;

  constructor(client: SmtpClient, peer: string, extensions: Extensions) {
    this.#client = client;
    this.peer = peer;
    this.extensions = extensions;
  }

  get alive(): boolean {
    return this.#client.alive;
  }

  /** True when STARTTLS succeeded. */
  get secure(): boolean {
    return this.#client.secure;
  }

  /** Called once when the connection ends for any reason (the pool drops idle sessions the server closed). */
  onEnd(listener: () => void): void {
    this.#client.onClose(listener);
  }

  /** One transaction (RSET first when the last one was left open, in the same flight when pipelining). */
  async transact(message: OutboundMessage, recipients: string[]): Promise<TransactionOutcome> {
    const { outcome, needsReset } = await runTransaction({
      client: this.#client,
      extensions: this.extensions,
      peer: this.peer,
      message,
      recipients,
      reset: this.#needsReset,
    });
    this.#needsReset = needsReset;
    return outcome;
  }

  /** QUIT politely; closes hard after `graceMs` if the server does not close first. Never rejects. */
  quit(graceMs = 1000): Promise<void> {
    const client = this.#client;
    if (!client.alive) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => client.close(), graceMs);
      client.onClose(() => {
        clearTimeout(timer);
        resolve();
      });
      client.end('QUIT\r\n');
    });
  }
}
