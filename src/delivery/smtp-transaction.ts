/**
 * One SMTP mail transaction on an open session, with per-recipient outcomes.
 *
 * Design note
 * - With PIPELINING (RFC 2920) the envelope goes out in one write: RSET when
 *   the previous transaction was left open, MAIL FROM, every RCPT TO, and
 *   DATA; the replies are then matched to the commands in order. Without it,
 *   the same commands go one at a time and the dialogue stops at the first
 *   answer that ends it (no RCPT after a refused MAIL, no DATA without an
 *   accepted recipient).
 * - The body goes only after a 354, and only when some RCPT was accepted. A
 *   server that answers 354 to a pipelined DATA although every recipient
 *   was refused gets the end-of-data dot alone (RFC 2920 3.1): an empty
 *   message that goes nowhere, which leaves the session usable.
 * - RSET is sent only when needed: after a completed transaction (the reply
 *   to the final dot, or a refused MAIL) the server is ready for the next
 *   MAIL (RFC 5321 4.1.1.1/3.3). A transaction refused at RCPT or DATA is
 *   still open and is reset with the next one's MAIL, in the same flight.
 * - `unusable`: the session failed before the server answered any recipient
 *   (connection lost, timeout, malformed reply, 421, a refused RSET), so
 *   nothing is known about this message here and the caller may try another
 *   connection or host. `done`: an outcome for every recipient.
 * - A connection lost after some recipient was answered defers the
 *   recipients not yet answered (and those accepted, when the final reply
 *   never came: the message may or may not have been taken).
 */
import { isAscii } from 'node:buffer';
import { replies, type Reply } from '../core/reply.ts';
import { SmtpFailure, type SmtpClient } from './smtp-client.ts';
import { dataChunks } from './smtp-data.ts';
import type { SmtpReply } from './smtp-reply-reader.ts';
import { describeFailure, outcomeOfReply, replyOf, type RcptOutcome } from './smtp-replies.ts';
import type { OutboundMessage } from './types.ts';

/** What the server offered in its EHLO reply. */
export interface Extensions {
  pipelining: boolean;
  startTls: boolean;
  eightBitMime: boolean;
  smtpUtf8: boolean;
  /** SIZE's limit in octets (0: SIZE without a limit); undefined when SIZE is not offered. */
  size: number | undefined;
}

export type TransactionOutcome =
  | { kind: 'unusable'; reply: Reply }
  | { kind: 'done'; results: Map<string, RcptOutcome>; delivered: number };

export interface TransactionInput {
  client: SmtpClient;
  extensions: Extensions;
  peer: string;
  message: OutboundMessage;
  recipients: string[];
  /** Start with RSET: the previous transaction on this session was left open. */
  reset: boolean;
}

/** The outcome, and whether the transaction was left open (the next one must start with RSET). */
export interface TransactionResult {
  outcome: TransactionOutcome;
  needsReset: boolean;
}

const ok = (r: SmtpReply): boolean => r.code >= 200 && r.code < 300;
const text = (r: SmtpReply): string => r.lines.join('\r\n');

/**
 * The commands of one transaction, sent all at once or one by one, and their
 * replies read in order. `drain` reads what a pipelined flight still owes.
 */
class Exchange {
  #sent = 0;
  #answered = 0;

  constructor(
    readonly client: SmtpClient,
    readonly pipelining: boolean,
    readonly commands: string[],
  ) {
    if (pipelining) {
      client.write(commands.map((c) => `${c}\r\n`).join(''));
      this.#sent = commands.length;
    }
  }

  /** The reply to the next command (sending it first when not pipelining). */
  next(): Promise<SmtpReply> {
    if (this.#sent === this.#answered) this.client.write(`${this.commands[this.#sent++]}\r\n`);
    this.#answered++;
    return this.client.read();
  }

  /** Reads the replies still owed; a 354 to DATA gets the lone dot. Ends the connection on any trouble. */
  async drain(): Promise<void> {
    try {
      while (this.#answered < this.#sent) {
        const command = this.commands[this.#answered++];
        const reply = await this.client.read();
        if (command === 'DATA' && reply.code === 354) {
          this.client.write('.\r\n');
          await this.client.read();
        }
      }
    } catch {
      this.client.close();
    }
  }
}

export async function runTransaction(t: TransactionInput): Promise<TransactionResult> {
  const { extensions: ext, message, recipients, peer } = t;
  if (ext.size !== undefined && ext.size > 0 && message.raw.length > ext.size) {
    // Refused here rather than by the server after the whole body went over the wire.
    const reply = replies.messageTooBigFor(peer, `message of ${message.raw.length} octets exceeds the server's SIZE limit of ${ext.size}`);
    return { outcome: done(allOf(recipients, { status: 'failed', reply }), 0), needsReset: t.reset };
  }
  const commands = [...(t.reset ? ['RSET'] : []), mailCommand(message, recipients, ext), ...recipients.map((r) => `RCPT TO:<${r}>`), 'DATA'];
  const io = new Exchange(t.client, ext.pipelining, commands);
  const state: Progress = { results: new Map(), accepted: [] };
  try {
    return await dialogue(t, io, state);
  } catch (err) {
    if (!(err instanceof SmtpFailure)) throw err;
    t.client.close();
    const reply = describeFailure(err, peer);
    if (state.results.size === 0 && state.accepted.length === 0) return { outcome: { kind: 'unusable', reply }, needsReset: false };
    for (const r of recipients) if (!state.results.has(r)) state.results.set(r, { status: 'deferred', reply });
    return { outcome: done(state.results, 0), needsReset: false };
  }
}

interface Progress {
  results: Map<string, RcptOutcome>;
  accepted: string[];
}

/** The replies in order; throws SmtpFailure when the connection fails. */
async function dialogue(t: TransactionInput, io: Exchange, state: Progress): Promise<TransactionResult> {
  const { client, recipients } = t;
  const { results, accepted } = state;
  if (t.reset) {
    const rset = await io.next();
    if (!ok(rset)) return unusable(client, rset);
  }
  const mail = await io.next();
  if (mail.code === 421) return unusable(client, mail);
  if (!ok(mail)) {
    // The sender was refused: that answers every recipient (RCPT replies after it are only 503s).
    await io.drain();
    return { outcome: done(allOf(recipients, outcomeOfReply(text(mail), mail.code)), 0), needsReset: false };
  }
  for (const [i, r] of recipients.entries()) {
    const rcpt = await io.next();
    if (ok(rcpt)) {
      accepted.push(r);
      continue;
    }
    if (rcpt.code === 421) {
      // The server is going away: nothing known yet means another host may do better.
      if (results.size === 0 && accepted.length === 0) return unusable(client, rcpt);
      // It answers the recipients not yet answered, and those accepted: their message was never sent.
      const outcome = outcomeOfReply(text(rcpt), rcpt.code);
      for (const rest of [...recipients.slice(i), ...accepted]) results.set(rest, outcome);
      client.close();
      return { outcome: done(results, 0), needsReset: false };
    }
    results.set(r, outcomeOfReply(text(rcpt), rcpt.code));
  }
  if (accepted.length === 0) {
    await io.drain();
    return { outcome: done(results, 0), needsReset: true };
  }
  const data = await io.next();
  if (data.code !== 354) {
    for (const r of accepted) results.set(r, outcomeOfReply(text(data), data.code));
    if (data.code === 421) client.close();
    return { outcome: done(results, 0), needsReset: true };
  }
  client.write(dataChunks(t.message.raw));
  const final = await client.read();
  const outcome: RcptOutcome = ok(final) ? { status: 'delivered', reply: replyOf(text(final)) } : outcomeOfReply(text(final), final.code);
  for (const r of accepted) results.set(r, outcome);
  if (final.code === 421) client.close();
  return { outcome: done(results, ok(final) ? accepted.length : 0), needsReset: false };
}

function mailCommand(message: OutboundMessage, recipients: string[], ext: Extensions): string {
  let line = `MAIL FROM:<${message.sender ?? ''}>`;
  // SIZE= lets the server refuse an oversized message before DATA.
  if (ext.size !== undefined) line += ` SIZE=${message.raw.length}`;
  // BODY=8BITMIME when there are 8-bit octets to declare.
  if (ext.eightBitMime && !isAscii(message.raw)) line += ' BODY=8BITMIME';
  // SMTPUTF8 (RFC 6531) when an address is not ASCII.
  if (ext.smtpUtf8 && [message.sender ?? '', ...recipients].some((a) => !isAscii(Buffer.from(a)))) line += ' SMTPUTF8';
  return line;
}

/** A reply that ends the session before any recipient was answered: the caller tries elsewhere. */
function unusable(client: SmtpClient, reply: SmtpReply): TransactionResult {
  client.close();
  return { outcome: { kind: 'unusable', reply: replyOf(text(reply)) }, needsReset: false };
}

function done(results: Map<string, RcptOutcome>, delivered: number): TransactionOutcome {
  return { kind: 'done', results, delivered };
}

function allOf(recipients: string[], outcome: RcptOutcome): Map<string, RcptOutcome> {
  return new Map(recipients.map((r) => [r, outcome]));
}
