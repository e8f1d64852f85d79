/**
 * The sources `twoway import` reads, each an async stream of messages for
 * services/mail-import.ts: an IMAP account (imapflow, every selectable
 * folder), an mbox file (read in chunks, one message in memory at a time) or
 * a Maildir (Maildir++ sub-folders `.Name`, `.a.b` → `a/b`).
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { maildirFlags, MboxError, MboxSplitter } from '../core/mailbox-files.ts';
import type { ImportItem } from '../services/mail-import.ts';
import { CliError, EXIT } from './output.ts';

export type ImportSource = { kind: 'imap'; url: URL } | { kind: 'mbox'; path: string } | { kind: 'maildir'; path: string };

/** What SOURCE names: an `imaps://`/`imap://` URL, a Maildir (has cur/ or new/), or a file (mbox). */
export function detectSource(source: string): ImportSource {
  if (/^imaps?:\/\//i.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      throw new CliError(`not a valid URL: ${source}`, EXIT.usage);
    }
    if (!url.username) throw new CliError(`the URL names no user: write imaps://user@${url.host}`, EXIT.usage);
    return { kind: 'imap', url };
  }
  if (!existsSync(source)) throw new CliError(`${source}: no such file or directory (SOURCE is imaps://user@host, an mbox file or a Maildir)`, EXIT.usage);
  if (statSync(source).isDirectory()) {
    if (!existsSync(join(source, 'cur')) && !existsSync(join(source, 'new'))) throw new CliError(`${source} is a directory but not a Maildir (it has no cur/ or new/)`, EXIT.usage);
    return { kind: 'maildir', path: source };
  }
  return { kind: 'mbox', path: source };
}

export async function* mboxItems(path: string, folder: string): AsyncGenerator<ImportItem> {
  const splitter = new MboxSplitter();
  const name = basename(path);
  try {
    for await (const chunk of createReadStream(path)) {
      for (const m of splitter.push(chunk as Buffer)) yield { folder, raw: m.raw, flags: m.flags, date: m.date, where: `${name} line ${m.line}` };
    }
    for (const m of splitter.end()) yield { folder, raw: m.raw, flags: m.flags, date: m.date, where: `${name} line ${m.line}` };
  } catch (err) {
    if (err instanceof MboxError) throw new CliError(`${path}: ${err.message}`, EXIT.usage);
    throw err;
  }
}

function* maildirFolder(dir: string, folder: string): Generator<ImportItem> {
  for (const sub of ['new', 'cur']) {
    const d = join(dir, sub);
    if (!existsSync(d)) continue;
    // Names start with the delivery time: sorted, the messages keep their order.
    for (const file of readdirSync(d).sort()) {
      if (file.startsWith('.')) continue;
      const p = join(d, file);
      yield { folder, raw: readFileSync(p), flags: maildirFlags(file), date: statSync(p).mtime, where: `${folder}/${sub}/${file}` };
    }
  }
}

export async function* maildirItems(root: string): AsyncGenerator<ImportItem> {
  yield* maildirFolder(root, 'INBOX');
  const subs = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name.startsWith('.') && e.name !== '.' && e.name !== '..');
  for (const e of subs.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!existsSync(join(root, e.name, 'cur')) && !existsSync(join(root, e.name, 'new'))) continue;
    yield* maildirFolder(join(root, e.name), e.name.slice(1).replaceAll('.', '/'));
  }
}

/** Every message of every selectable folder of an IMAP account (TLS verified; imap:// uses STARTTLS when offered). */
export async function* imapItems(url: URL, password: string, o: { ca?: string; onFolder?: (folder: string, total: number) => void } = {}): AsyncGenerator<ImportItem> {
  const secure = url.protocol.toLowerCase() === 'imaps:';
  const client = new ImapFlow({
    host: url.hostname,
    port: Number(url.port) || (secure ? 993 : 143),
    secure,
    auth: { user: decodeURIComponent(url.username), pass: password },
    logger: false,
    // A private server's CA (`--ca`); otherwise Node's list of public CAs.
    ...(o.ca ? { tls: { ca: [o.ca] } } : {}),
  });
  try {
    await client.connect();
  } catch (err) {
    const e = err as { authenticationFailed?: boolean; message?: string; code?: string };
    if (e.authenticationFailed) throw new CliError(`${url.host}: login failed for ${decodeURIComponent(url.username)}`, EXIT.auth);
    throw new CliError(`cannot connect to ${url.host}: ${e.code ?? e.message ?? String(err)}`, EXIT.failure);
  }
  try {
    for (const box of await client.list()) {
      if (box.flags.has('\\Noselect') || box.flags.has('\\NonExistent')) continue;
      const lock = await client.getMailboxLock(box.path, { readOnly: true });
      try {
        const total = client.mailbox ? client.mailbox.exists : 0;
        o.onFolder?.(box.path, total);
        if (total === 0) continue;
        for await (const m of client.fetch('1:*', { uid: true, flags: true, internalDate: true, source: true })) {
          if (!m.source) continue;
          const date = m.internalDate instanceof Date ? m.internalDate : m.internalDate ? new Date(m.internalDate) : null;
          yield { folder: box.path, specialUse: box.specialUse ?? null, raw: m.source, flags: [...(m.flags ?? [])].filter((f) => f !== '\\Recent'), date, where: `${box.path} UID ${m.uid}` };
        }
      } finally {
        lock.release();
      }
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
}
