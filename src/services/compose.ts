/**
 * Writing mail in the web app: a draft (the compose form's fields) checked
 * field by field, made into a message (mail/compose-message.ts) and handed
 * to the outbound service's `submit`, the one path SMTP submission,
 * `twoway send` and `POST /api/send` take. So a message written in a
 * browser is checked, signed, queued, copied to Sent and delivered (by SMTP
 * or Two-Way Mail) exactly as one from a mail client.
 *
 * A reply or a forward names the original by its id; its headers are read
 * from the stored message here, at send time, never from the form:
 * In-Reply-To and References for a reply (RFC 5322 3.6.4), the whole
 * original as a message/rfc822 attachment for a forward.
 */
import { invalid, ReplyError } from '../core/errors.ts';
import { headerEnd, parseHeaderFields } from '../core/mime-structure.ts';
import type { User } from '../core/types.ts';
import { composeMessage, type ComposeMailbox } from '../mail/compose-message.ts';
import type { Contacts } from './contacts.ts';
import type { Mail } from './mail.ts';
import type { Outbound, SubmitResult } from './outbound.ts';

export const COMPOSE_LIMITS = {
  /** UTF-8 octets of the text the user writes (the form's text area). */
  textBytes: 512 * 1024,
  subjectChars: 500,
  /** docs/protocol.md 6.1: an introduction is at most 1000 characters. */
  introChars: 1000,
  /** One address field (To, Cc or Bcc). */
  fieldChars: 8000,
  recipients: 100,
  /** References kept from the original (RFC 5322 3.6.4 lets a writer trim the middle). */
  references: 20,
} as const;

export interface Draft {
  to: string;
  cc: string;
  bcc: string;
  subject: string;
  text: string;
  intro: string;
  /** The id of the message replied to, or forwarded (the user's own messages only). */
  replyTo: number | null;
  forward: number | null;
}

export type DraftField = 'to' | 'cc' | 'bcc' | 'subject' | 'text' | 'intro' | 'form';

export interface DraftProblem {
  field: DraftField;
  text: string;
}

/** What is wrong with a draft, per field; nothing was sent. `status` is the HTTP status to answer. */
export class DraftError extends Error {
  constructor(
    readonly problems: DraftProblem[],
    readonly status: number,
  ) {
    super(problems.map((p) => p.text).join('; '));
    this.name = 'DraftError';
  }
}

export interface ComposeDeps {
  outbound: Outbound | null;
  mail: Mail;
  contacts: Contacts;
}

/**
 * `a@x, "Name, Jr." <b@y>; c@z` into its items: commas and semicolons split
 * outside quotes and angle brackets. Linear in the field's length, which is
 * bounded before this runs.
 */
export function splitAddressField(field: string): ComposeMailbox[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  for (const c of field) {
    if (c === '"' && !angle) quoted = !quoted;
    else if (c === '<' && !quoted) angle = true;
    else if (c === '>' && !quoted) angle = false;
    if ((c === ',' || c === ';') && !quoted && !angle) {
      items.push(current);
      current = '';
    } else current += c;
  }
  items.push(current);
  const out: ComposeMailbox[] = [];
  for (const raw of items) {
    const item = raw.replace(/\s+/g, ' ').trim();
    if (item === '') continue;
    const m = /^(.*?)\s*<([^<>]*)>$/.exec(item);
    if (!m) {
      out.push({ name: null, address: item });
      continue;
    }
    const name = m[1]!.trim().replace(/^"(.*)"$/, '$1').replace(/\\(.)/g, '$1').trim();
    out.push({ name: name === '' ? null : name, address: m[2]!.trim() });
  }
  return out;
}

/** The Message-IDs of a header value (`<a@b> <c@d>`), printable ASCII only. */
function messageIds(value: string | undefined): string[] {
  return (value ?? '').match(/<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>/g) ?? [];
}

/** In-Reply-To and References for a reply to `raw` (RFC 5322 3.6.4), or nothing when it has no Message-ID. */
export function threadHeaders(raw: Buffer): { inReplyTo: string; references: string[] } | null {
  const { headerEnd: end } = headerEnd(raw, 0, raw.length);
  const fields = parseHeaderFields(raw.toString('latin1', 0, end));
  const first = (name: string) => fields.find((f) => f.name.toLowerCase() === name)?.value;
  const [id] = messageIds(first('message-id'));
  if (!id) return null;
  const earlier = messageIds(first('references'));
  const parents = earlier.length > 0 ? earlier : messageIds(first('in-reply-to')).slice(0, 1);
  const chain = [...parents.filter((r) => r !== id), id];
  // Keep the first (the thread's root) and the most recent ones.
  const references = chain.length > COMPOSE_LIMITS.references ? [chain[0]!, ...chain.slice(-(COMPOSE_LIMITS.references - 1))] : chain;
  return { inReplyTo: id, references };
}

/** A header value typed by a person: one line, no control characters. */
const oneLine = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();

/** The checks of a draft that need no store: every problem at once, so the form can show them all. */
export function checkDraft(outbound: Pick<Outbound, 'checkRecipient'>, draft: Draft) {
  const problems: DraftProblem[] = [];
  let tooBig = false;
  const fields = { to: [] as ComposeMailbox[], cc: [] as ComposeMailbox[], bcc: [] as ComposeMailbox[] };
  for (const field of ['to', 'cc', 'bcc'] as const) {
    const label = field === 'to' ? 'To' : field === 'cc' ? 'Cc' : 'Bcc';
    if (draft[field].length > COMPOSE_LIMITS.fieldChars) {
      problems.push({ field, text: `${label} is longer than ${COMPOSE_LIMITS.fieldChars} characters.` });
      continue;
    }
    for (const m of splitAddressField(draft[field])) {
      try {
        fields[field].push({ name: m.name ? oneLine(m.name) : null, address: outbound.checkRecipient(m.address) });
      } catch (err) {
        if (!(err instanceof ReplyError)) throw err;
        problems.push({ field, text: `${label}: "${m.address}" is not an address this server can send to (${err.text}).` });
      }
    }
  }
  const all = [...new Set([...fields.to, ...fields.cc, ...fields.bcc].map((m) => m.address))];
  if (all.length === 0 && problems.length === 0) problems.push({ field: 'to', text: 'Write at least one recipient.' });
  if (all.length > COMPOSE_LIMITS.recipients) problems.push({ field: 'to', text: `At most ${COMPOSE_LIMITS.recipients} recipients per message.` });
  const subject = oneLine(draft.subject);
  if ([...subject].length > COMPOSE_LIMITS.subjectChars) problems.push({ field: 'subject', text: `The subject is longer than ${COMPOSE_LIMITS.subjectChars} characters.` });
  const textBytes = Buffer.byteLength(draft.text, 'utf8');
  if (textBytes > COMPOSE_LIMITS.textBytes) {
    tooBig = true;
    problems.push({ field: 'text', text: `The message is ${Math.ceil(textBytes / 1024)} KB; the limit is ${COMPOSE_LIMITS.textBytes / 1024} KB.` });
  }
  const intro = oneLine(draft.intro);
  if ([...intro].length > COMPOSE_LIMITS.introChars) problems.push({ field: 'intro', text: `The introduction is longer than ${COMPOSE_LIMITS.introChars} characters.` });
  return { problems, status: tooBig ? 413 : 400, ...fields, recipients: all, subject, intro };
}

/** Recipients no card of the user names yet: those a Two-Way Mail introduction is for. */
export async function newRecipients(contacts: Contacts, user: User, addresses: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of addresses) {
    try {
      if (!(await contacts.isContact(user.id, a))) out.push(a);
    } catch {
      // Not an address the address book can hold: it is not a contact either.
      out.push(a);
    }
  }
  return out;
}

/**
 * Checks, builds and submits a draft. Throws DraftError (nothing sent) for
 * bad fields or a message the outbound service refuses; a reply or forward
 * of a message that is not the user's is a not-found like any other id.
 */
export async function sendDraft(deps: ComposeDeps, user: User, draft: Draft): Promise<SubmitResult> {
  const { outbound } = deps;
  if (!outbound) throw new DraftError([{ field: 'form', text: 'Sending is not configured on this server.' }], 503);
  const checked = checkDraft(outbound, draft);
  if (checked.problems.length > 0) throw new DraftError(checked.problems, checked.status);
  if (draft.replyTo !== null && draft.forward !== null) throw invalid('A message is a reply or a forward, not both');
  const replied = draft.replyTo !== null ? await deps.mail.get(user.id, draft.replyTo) : null;
  const forwarded = draft.forward !== null ? await deps.mail.get(user.id, draft.forward) : null;
  const thread = replied ? threadHeaders(replied.raw) : null;
  // The introduction only matters to someone who does not know the sender; contacts never see it.
  const intro = checked.intro && (await newRecipients(deps.contacts, user, checked.recipients)).length > 0 ? checked.intro : '';
  const raw = await composeMessage({
    from: user.address,
    to: checked.to,
    cc: checked.cc,
    subject: checked.subject,
    text: draft.text.replace(/\r\n?/g, '\n'),
    ...(thread ? { inReplyTo: thread.inReplyTo, references: thread.references } : {}),
    ...(intro ? { intro } : {}),
    ...(forwarded ? { attachMessage: { raw: forwarded.raw, filename: 'forwarded-message.eml' } } : {}),
  });
  try {
    return await outbound.submit({ user, envelopeFrom: user.address, recipients: checked.recipients, raw });
  } catch (err) {
    // The outbound service's refusals (size, header limits, too many recipients) are the form's problem too.
    if (err instanceof ReplyError) throw new DraftError([{ field: 'form', text: err.text }], err.status ?? (err.temporary ? 503 : 400));
    throw err;
  }
}
