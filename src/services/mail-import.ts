/**
 * `twoway import`: copies an existing mailbox (IMAP account, mbox, Maildir;
 * the CLI reads the source) into a user's folders through the store's one
 * delivery path (durable before it counts, ENVELOPE and BODYSTRUCTURE
 * computed at store time like every message).
 *
 * A second run adds nothing: each message is stored under the key
 * `import <sha256 of the octets> <target folder>`, and keys the user already
 * has are skipped (also after the user moved the message elsewhere). Everyone
 * the user wrote to, found in the imported Sent folder, becomes an allowed
 * contact, so correspondents are not screened (unless `contacts: false`).
 */
import { createHash } from 'node:crypto';
import { notAMessage } from '../core/mailbox-files.ts';
import { parseStructure, type EnvelopeAddress } from '../core/mime-structure.ts';
import type { Store } from '../store/types.ts';

export interface ImportItem {
  /** The folder in the source (`INBOX`, `Sent Items`, `Archive/2024`). */
  folder: string;
  /** `\Sent`, `\Junk`, … when the source says so (IMAP SPECIAL-USE). */
  specialUse?: string | null;
  raw: Buffer;
  flags: string[];
  date: Date | null;
  /** Where it came from, for a rejection (`file.mbox line 120`, `INBOX UID 7`). */
  where: string;
}

export interface ImportSummary {
  imported: number;
  /** Already there from an earlier run. */
  skipped: number;
  rejected: Array<{ where: string; reason: string }>;
  /** Messages stored (or already there) per target folder. */
  folders: Record<string, number>;
  contactsAdded: number;
}

export interface ImportProgress {
  folder: string;
  done: number;
}

const SPECIAL_TARGET: Record<string, string> = { '\\Sent': 'Sent', '\\Drafts': 'Drafts', '\\Junk': 'Junk', '\\Trash': 'Trash' };
const NAMED_TARGET: Record<string, string> = {
  inbox: 'INBOX',
  sent: 'Sent',
  'sent items': 'Sent',
  'sent messages': 'Sent',
  'sent mail': 'Sent',
  '[gmail]/sent mail': 'Sent',
  drafts: 'Drafts',
  '[gmail]/drafts': 'Drafts',
  junk: 'Junk',
  spam: 'Junk',
  'junk e-mail': 'Junk',
  '[gmail]/spam': 'Junk',
  trash: 'Trash',
  'deleted items': 'Trash',
  'deleted messages': 'Trash',
  '[gmail]/trash': 'Trash',
};

/** The twoway folder for a source folder: the special folders by use or usual name, others as they are. */
export function targetFolder(folder: string, specialUse?: string | null): string {
  const special = specialUse ? SPECIAL_TARGET[specialUse] : undefined;
  if (special) return special;
  const named = NAMED_TARGET[folder.toLowerCase()];
  if (named) return named;
  // Only mail from strangers goes to the Screener (APPEND there is refused too).
  if (folder === 'Screener') return 'Imported Screener';
  return folder;
}

const address = (a: EnvelopeAddress): string | null => (a.mailbox && a.host ? `${a.mailbox}@${a.host}`.toLowerCase() : null);

export interface MailImportDeps {
  store: Pick<Store, 'messages' | 'imap'>;
  contacts: { allow(userId: number, sender: string): Promise<{ created: boolean }> };
  maxMessageSize: number;
}

const BATCH = 100;

/** Imports `items` for one user; see the module comment. */
export async function importMail(
  deps: MailImportDeps,
  user: { id: number; addresses: readonly string[] },
  items: AsyncIterable<ImportItem>,
  options: { contacts: boolean; onProgress?: (p: ImportProgress) => void },
): Promise<ImportSummary> {
  const summary: ImportSummary = { imported: 0, skipped: 0, rejected: [], folders: {}, contactsAdded: 0 };
  const own = new Set(user.addresses.map((a) => a.toLowerCase()));
  const correspondents = new Set<string>();
  const known = new Set<string>();
  let batch: Array<{ item: ImportItem; folder: string; key: string }> = [];
  let done = 0;

  const ensureFolder = async (name: string) => {
    if (known.has(name)) return;
    if (!(await deps.store.imap.mailbox(user.id, name))) await deps.store.imap.create(user.id, name).catch(async (err) => {
      // Made meanwhile by another session: fine; anything else is a real failure.
      if (!(await deps.store.imap.mailbox(user.id, name))) throw err;
    });
    known.add(name);
  };

  const flush = async () => {
    if (batch.length === 0) return;
    const present = await deps.store.messages.twmKeysOf(user.id, batch.map((b) => b.key));
    const fresh = batch.filter((b, i) => !present.has(b.key) && batch.findIndex((o) => o.key === b.key) === i);
    summary.skipped += batch.length - fresh.length;
    for (const b of fresh) await ensureFolder(b.folder);
    await deps.store.messages.deliver(
      fresh.map(({ item, folder, key }) => {
        const env = parseStructure(item.raw).envelope;
        const from = env.from?.map(address).find((a) => a !== null) ?? null;
        return {
          userId: user.id,
          // Any folder name: the store reserves UIDs by name (as IMAP APPEND does).
          mailbox: folder as 'INBOX',
          raw: item.raw,
          flags: item.flags,
          sender: from,
          from,
          subject: env.subject,
          receivedAt: item.date ?? dateHeader(env.date) ?? new Date(),
          firstContact: false,
          twmKey: key,
        };
      }),
    );
    summary.imported += fresh.length;
    for (const b of batch) summary.folders[b.folder] = (summary.folders[b.folder] ?? 0) + 1;
    done += batch.length;
    options.onProgress?.({ folder: batch[batch.length - 1]!.item.folder, done });
    batch = [];
  };

  for await (const item of items) {
    const why = item.raw.length > deps.maxMessageSize ? `larger than limits.message_size (${item.raw.length} > ${deps.maxMessageSize} bytes)` : notAMessage(item.raw);
    if (why) {
      summary.rejected.push({ where: item.where, reason: why });
      continue;
    }
    const folder = targetFolder(item.folder, item.specialUse);
    if (folder === 'Sent' && options.contacts) {
      const env = parseStructure(item.raw).envelope;
      for (const a of [...(env.to ?? []), ...(env.cc ?? []), ...(env.bcc ?? [])]) {
        const addr = address(a);
        if (addr && !own.has(addr)) correspondents.add(addr);
      }
    }
    const key = `import ${createHash('sha256').update(item.raw).digest('hex')} ${folder}`;
    batch.push({ item, folder, key });
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  for (const addr of correspondents) if ((await deps.contacts.allow(user.id, addr)).created) summary.contactsAdded++;
  return summary;
}

function dateHeader(value: string | null): Date | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}
