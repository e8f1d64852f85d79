/**
 * The Screener as an IMAP folder: generated stand-ins for pending Two-Way
 * Mail requests (`syncScreener`), and moves out of it that decide a sender
 * (`decideByMove`: to Junk or Trash denies, anywhere else approves).
 */
import { DomainError } from '../../core/errors.ts';
import type { User } from '../../core/types.ts';
import type { MailboxState, MessageMeta } from '../../protocols/imap/hooks.ts';
import type { Screener } from '../../services/screener.ts';
import type { ImapMailbox, ImapMessage, Store } from '../../store/types.ts';

const DENYING = new Set(['Junk', 'Trash']);
const GENERATED = 'screener ';


/** The sender whose decision a Screener message stands for: held mail's request, or a generated request message's notice. */
function senderOf(m: ImapMessage): string | null {
  if (m.heldFor) return m.heldFor;
  if (m.twmKey?.startsWith(GENERATED)) return m.twmKey.split(' ')[3] ?? null;
  return null;
}

function encodeWord(s: string): string {
  const clean = s.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(clean) ? clean : `=?UTF-8?B?${Buffer.from(clean, 'utf8').toString('base64')}?=`;
}

/** The stand-in for a Two-Way Mail contact request: every client can show it; the body stays with the sender until approval. */
export function requestMessage(o: { from: string; to: string; intro: string | null; size: number; createdAt: Date; expiresAt: Date; id: string; hostname: string }): Buffer {
  const topic = (o.intro ?? '').split(/\r?\n/)[0]!.trim().slice(0, 120) || '(no introduction)';
  const text = [
    `${o.from} wants to write to you with Two-Way Mail.`,
    '',
    'Introduction:',
    o.intro?.trim() || '(none)',
    '',
    `Size of the message: ${o.size} bytes`,
    `The request expires: ${o.expiresAt.toUTCString()}`,
    '',
    'Move this message to INBOX (or any folder but Junk and Trash) to accept the sender;',
    'the message is then fetched and replaces this one. Move it to Junk or Trash to decline.',
    '',
  ].join('\r\n');
  return Buffer.from(
    [
      `From: <${o.from}>`,
      `To: <${o.to}>`,
      `Subject: ${encodeWord(`Contact request: ${topic}`)}`,
      `Date: ${o.createdAt.toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <request.${o.id.replace(/[^\w.-]/g, '')}@${o.hostname}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      text,
    ].join('\r\n'),
    'utf8',
  );
}

/** Makes the Screener show every pending TWM notice once, and drops stand-ins whose notice was decided or expired. */
export async function syncScreener(store: Pick<Store, 'requests' | 'twmIn' | 'imap' | 'messages'>, hostname: string, user: User, screenerId: number): Promise<void> {
  const pending = await store.requests.list(user.id, { status: 'pending' });
  const rows = pending.length > 0 ? await store.twmIn.forUser(user.id, { senders: pending.map((r) => r.sender) }, ['pending'], new Date()) : [];
  const want = new Map(rows.map((r) => [`${GENERATED}${r.notice.senderDomain} ${r.notice.id} ${r.notice.from.toLowerCase()}`, r.notice]));
  const present = (await store.imap.messages(screenerId)).filter((m) => m.twmKey?.startsWith(GENERATED));
  const stale = present.filter((m) => !want.has(m.twmKey!));
  if (stale.length > 0) await store.imap.expunge(user.id, screenerId, stale.map((m) => m.id));
  const have = new Set(present.map((m) => m.twmKey));
  for (const [key, n] of want) {
    if (have.has(key)) continue;
    const raw = requestMessage({ from: n.from, to: user.address, intro: n.intro, size: n.size, createdAt: n.createdAt, expiresAt: n.expiresAt, id: n.id, hostname });
    await store.messages.deliver([
      {
        userId: user.id,
        mailbox: 'Screener',
        raw,
        flags: [],
        sender: n.from,
        from: n.from,
        subject: `Contact request: ${(n.intro ?? '').slice(0, 120)}`,
        receivedAt: n.receivedAt,
        firstContact: true,
        twmKey: key,
      },
    ]);
  }
}


/** Screener messages that stand for a decision, by sender; the rest move like any message. */
export async function decideByMove(
  store: Pick<Store, 'imap'>,
  screener: Pick<Screener, 'approve' | 'deny'>,
  user: User,
  from: MailboxState,
  msgs: MessageMeta[],
  to: ImapMailbox,
  /** `auto`: held mail put in Junk teaches the spam filter spam (ImapHooksInput.learn). */
  teach?: 'auto',
): Promise<MessageMeta[]> {
  if (from.name !== 'Screener' || to.name === 'Screener') return msgs;
  const rows = new Map((await store.imap.messages(from.id)).map((m) => [m.id, m]));
  const bySender = new Map<string, ImapMessage[]>();
  const ordinary: MessageMeta[] = [];
  for (const m of msgs) {
    const row = rows.get(m.id);
    const sender = row ? senderOf(row) : null;
    if (!row) continue; // already gone (another client's decision)
    if (!sender) {
      ordinary.push(m);
      continue;
    }
    bySender.set(sender, [...(bySender.get(sender) ?? []), row]);
  }
  if (bySender.size === 0) return ordinary;
  const senders = [...bySender.keys()];
  const chosen = [...bySender.values()].flat();
  const held = chosen.filter((m) => !m.twmKey?.startsWith(GENERATED));
  const generated = chosen.filter((m) => m.twmKey?.startsWith(GENERATED));
  if (DENYING.has(to.name)) {
    // The chosen messages go where they were put; the sender is blocked and the rest of its held mail dropped.
    // Held mail put in Junk teaches spam; our own stand-ins are no sample of anything.
    await store.imap.move(user.id, held.map((m) => m.id), to.id, from.id, teach);
    await store.imap.move(user.id, generated.map((m) => m.id), to.id, from.id);
    await screener.deny(user.id, senders).catch(ignoreDecided);
  } else {
    await screener.approve(user.id, senders).catch(ignoreDecided);
    // Approval released held mail to INBOX; what the client moved goes on to its folder.
    if (to.name !== 'INBOX') {
      const inbox = await store.imap.mailbox(user.id, 'INBOX');
      if (inbox) await store.imap.move(user.id, held.map((m) => m.id), to.id, inbox.id);
    }
    // The fetched Two-Way Mail message replaces its stand-in.
    if (generated.length > 0) await store.imap.expunge(user.id, from.id, generated.map((m) => m.id));
  }
  return ordinary;
}

/** A decision another client made first is not an error (two clients moving at once). */
function ignoreDecided(err: unknown): void {
  if (err instanceof DomainError && (err.kind === 'not-found' || err.kind === 'invalid')) return;
  throw err;
}
