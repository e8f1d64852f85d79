/**
 * What the compose form starts with for a reply or a forward of a stored
 * message: recipients, subject and, for a reply, the original's text quoted
 * with "> ". Everything here is text from a stranger's message, so it only
 * ever reaches the page through the escaping `html` template, as input values
 * and text area content. The threading headers and the forwarded original
 * are not taken from the form at send time (services/compose.ts reads them
 * from the store), so nothing here can smuggle a header.
 */
import sanitizeHtml from 'sanitize-html';
import { parseStructure, type EnvelopeAddress } from '../core/mime-structure.ts';
import type { MessageSummary, User } from '../core/types.ts';
import { owns } from '../services/outbound.ts';
import { decodeEncodedWords, messageParts } from './message-parts.ts';

export interface Prefill {
  to: string;
  cc: string;
  subject: string;
  text: string;
}

/** The quoted original stops here (the rest is a "[…]" line): the form stays well under the text limit. */
const QUOTE_CHARS = 64 * 1024;

type Stored = Pick<MessageSummary, 'from' | 'sender' | 'subject' | 'receivedAt'> & { raw: Buffer };

/** A display name for a form field: quotes and backslashes dropped, quoted when it holds a separator. */
function mailboxText(name: string | null, address: string): string {
  const clean = (name ?? '').replace(/["\\\u0000-\u001f\u007f]/g, '').trim();
  if (!clean || clean.toLowerCase() === address.toLowerCase()) return address;
  return /[,;<>@()[\]:]/.test(clean) ? `"${clean}" <${address}>` : `${clean} <${address}>`;
}

function addressesOf(list: EnvelopeAddress[] | null): Array<{ name: string | null; address: string }> {
  const out: Array<{ name: string | null; address: string }> = [];
  for (const a of list ?? []) {
    // Group markers (host null) and half addresses are not someone to write to.
    if (!a.mailbox || !a.host || a.mailbox === 'MISSING_MAILBOX' || a.host === 'MISSING_DOMAIN') continue;
    out.push({ name: a.name === null ? null : decodeEncodedWords(a.name), address: decodeEncodedWords(`${a.mailbox}@${a.host}`) });
  }
  return out;
}

/** HTML read for a quote: far more than QUOTE_CHARS of text, and a bound on the parser's work per page. */
const QUOTE_HTML_CHARS = 1024 * 1024;

/** Text from an HTML part: no markup, line breaks at block ends, entities decoded by the parser. */
export function htmlToText(html: string): string {
  const marked = html.slice(0, QUOTE_HTML_CHARS).replace(/<(br|\/p|\/div|\/li|\/tr|\/h[1-6]|\/blockquote)\b[^>]*>/gi, '$&\n');
  const text = sanitizeHtml(marked, { allowedTags: [], allowedAttributes: {} });
  // sanitize-html escapes the text it keeps; undo exactly that.
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\n{3,}/g, '\n\n');
}

const prefixed = (subject: string | null, prefix: 'Re' | 'Fwd', already: RegExp) => {
  const s = (subject ?? '').trim();
  return already.test(s) ? s : `${prefix}: ${s}`;
};

function quote(text: string): string {
  const cut = text.length > QUOTE_CHARS;
  const lines = (cut ? text.slice(0, QUOTE_CHARS) : text).replace(/\r\n?/g, '\n').replace(/\n+$/, '').split('\n');
  return lines.map((l) => (l === '' ? '>' : `> ${l}`)).join('\n') + (cut ? '\n> […]' : '');
}

const when = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** A reply (to the author, or with `all` also to every other recipient), quoting the original's text. */
export function replyPrefill(user: User, msg: Stored, all: boolean): Prefill {
  const envelope = parseStructure(msg.raw).envelope;
  const from = addressesOf(envelope.from);
  const replyTo = addressesOf(envelope.replyTo);
  const others = [...addressesOf(envelope.to), ...addressesOf(envelope.cc)];
  // Replying to one's own sent message writes to its recipients again, as mail clients do.
  const mine = msg.from !== null && owns(user, msg.from);
  const author = from[0] ?? (msg.from ? { name: null, address: msg.from } : msg.sender ? { name: null, address: msg.sender } : null);
  const to = mine ? others : replyTo.length > 0 ? replyTo : author ? [author] : [];
  const seen = new Set(to.map((a) => a.address.toLowerCase()));
  const cc = all
    ? others.filter((a) => {
        const key = a.address.toLowerCase();
        if (seen.has(key) || owns(user, a.address)) return false;
        seen.add(key);
        return true;
      })
    : [];
  const parts = messageParts(msg.raw);
  const original = parts.text ?? (parts.html !== null ? htmlToText(parts.html) : '');
  const who = author ? mailboxText(author.name, author.address) : 'someone';
  return {
    to: to.map((a) => mailboxText(a.name, a.address)).join(', '),
    cc: cc.map((a) => mailboxText(a.name, a.address)).join(', '),
    subject: prefixed(msg.subject, 'Re', /^re\s*:/i),
    text: `\n\nOn ${when(msg.receivedAt)}, ${who} wrote:\n${quote(original)}\n`,
  };
}

/** A forward: the subject only; the original goes along whole as an attachment (services/compose.ts). */
export function forwardPrefill(msg: Stored): Prefill {
  return { to: '', cc: '', subject: prefixed(msg.subject, 'Fwd', /^(fwd?|fw)\s*:/i), text: '' };
}

/** Who wrote the original, for the page's "attached" line. */
export function authorText(msg: Stored): string {
  const from = addressesOf(parseStructure(msg.raw).envelope.from)[0];
  return from ? mailboxText(from.name, from.address) : (msg.from ?? msg.sender ?? 'unknown sender');
}
