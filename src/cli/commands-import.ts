/** `twoway import USER SOURCE`: moving in from another mail server, an mbox file or a Maildir. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ImportItem, ImportSummary } from '../services/mail-import.ts';
import { readPassword, withServices, type GlobalOptions } from './context.ts';
import { CliError, EXIT, printJson, type CliIo } from './output.ts';

const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

interface ImportOptions {
  contacts: boolean;
  folder: string;
  json?: boolean;
  ca?: string;
}

function printSummary(io: CliIo, user: string, s: ImportSummary): void {
  io.stdout.write(`imported ${s.imported} message(s) for ${user}; ${s.skipped} already there; ${s.rejected.length} rejected\n`);
  for (const [folder, n] of Object.entries(s.folders)) io.stdout.write(`  ${folder}: ${n}\n`);
  io.stdout.write(`contacts added from Sent: ${s.contactsAdded}\n`);
  for (const r of s.rejected) io.stdout.write(`rejected ${r.where}: ${r.reason}\n`);
}

export function registerImportCommand(program: Command, io: CliIo): void {
  program
    .command('import <user> <source>')
    .description('copy a mailbox into twoway: imaps://user@host (password on stdin), an mbox file or a Maildir; a second run adds nothing')
    .option('--no-contacts', 'do not allow the people the user wrote to (found in the imported Sent folder)')
    .option('--folder <name>', 'the folder an mbox file goes to', 'INBOX')
    .option('--ca <file>', "trust this CA certificate (PEM) for the source IMAP server's TLS, for a private server")
    .option('--json', 'machine-readable summary')
    .action(async (address: string, sourceArg: string, opts: ImportOptions, cmd: Command) => {
      // Loaded here, as the program's other heavy parts: imapflow is only for this command.
      const { detectSource, imapItems, maildirItems, mboxItems } = await import('./import-sources.ts');
      const { importMail } = await import('../services/mail-import.ts');
      const source = detectSource(sourceArg);
      // Asked before the store opens: reading stdin must not hold a database connection.
      const password = source.kind === 'imap' ? await readPassword(io, `Password for ${decodeURIComponent(source.url.username)}@${source.url.host}: `) : '';
      let ca: string | undefined;
      try {
        ca = opts.ca === undefined ? undefined : readFileSync(opts.ca, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${opts.ca} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, EXIT.usage);
      }
      const progress = io.stderr.isTTY ? io.stderr : null;
      let folderTotal = 0;
      const items: AsyncIterable<ImportItem> =
        source.kind === 'imap'
          ? imapItems(source.url, password, { ...(ca ? { ca } : {}), onFolder: (_folder, total) => (folderTotal = total) })
          : source.kind === 'maildir'
            ? maildirItems(source.path)
            : mboxItems(source.path, opts.folder);
      const summary = await withServices(globals(cmd), async (s, store, config) => {
        // A bulk load, like a server's: its rounds commit in the writer's thread (store/message-writer.ts).
        store.messages.warm();
        const user = await s.accounts.get(address);
        return importMail({ store, contacts: s.contacts, maxMessageSize: config.limits.messageSize }, { id: user.id, addresses: [user.address] }, items, {
          contacts: opts.contacts,
          onProgress: (p) => progress?.write(`\r\x1b[Kimporting ${p.folder} … ${p.done} message(s)${folderTotal ? ` (folder has ${folderTotal})` : ''}`),
        });
      });
      if (progress) progress.write('\r\x1b[K');
      if (opts.json) printJson(io.stdout, summary);
      else printSummary(io, address, summary);
      // Something could not be imported: the caller (a script) must notice; the rest is stored.
      if (summary.rejected.length > 0) throw new CliError(`${summary.rejected.length} message(s) rejected (listed above); the others are imported`, EXIT.failure);
    });
}
