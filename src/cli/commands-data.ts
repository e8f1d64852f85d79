/** A user's data: contacts, contact requests (the Screener) and mail. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseMailbox, messageView } from '../services/mail.ts';
import { requestView } from '../services/screener.ts';
import type { ContactRequestStatus } from '../core/types.ts';
import { parseDuration } from '../core/duration.ts';
import { spamOfMessage } from '../core/spam.ts';
import { withServices, type GlobalOptions } from './context.ts';
import { CliError, EXIT, list, printJson, type CliIo, type OutStream } from './output.ts';

const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();
type Row = Record<string, unknown>;

export function registerDataCommands(program: Command, io: CliIo): void {
  registerContactCommands(program, io);
  registerExpect(program, io);
  registerRequestCommands(program, io);
  registerMailCommands(program, io);
}

/** `contacts list|allow|block|remove|import`. */
function registerContactCommands(program: Command, io: CliIo): void {
  const contacts = program.command('contacts').description("a user's address book (the allowlist)");
  contacts
    .command('list <user>')
    .option('--json', 'machine-readable output')
    .action(async (userAddr: string, opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const cards = await s.contacts.list(user.id);
        if (opts.json) return printJson(io.stdout, cards);
        list(io.stdout, 
          cards.map((c) => ({
            uid: c.uid,
            name: c.name,
            allows: c.entries.filter((e) => e.action === 'allow' && e.kind !== 'expect').map((e) => (e.kind === 'domain' ? '@' + e.value : e.value)),
            blocks: c.entries.filter((e) => e.action === 'block').map((e) => (e.kind === 'domain' ? '@' + e.value : e.value)),
            expects: c.entries.filter((e) => e.kind === 'expect').map((e) => `${e.value} until ${e.expect?.until ?? '?'} (${e.expect?.uses ?? 'unlimited'} uses)`),
          })),
          ['uid', 'name', 'allows', 'blocks', 'expects'],
          false,
        );
      });
    });
  contacts
    .command('allow <user> <sender>')
    .description('allow an address or a whole @domain')
    .action(async (userAddr: string, sender: string, _o, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const r = await s.contacts.allow(user.id, sender);
        io.stdout.write(`${r.created ? 'allowed' : 'already allowed'}: ${sender}${r.unblocked ? ` (block lifted)` : ''}\n`);
      });
    });
  contacts
    .command('block <user> <sender>')
    .description('block an address or a whole @domain')
    .action(async (userAddr: string, sender: string, _o, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const r = await s.contacts.block(user.id, sender);
        io.stdout.write(`${r.created ? 'blocked' : 'already blocked'}: ${sender}\n`);
      });
    });
  contacts
    .command('remove <user> <sender>')
    .description('remove every card naming this address or @domain')
    .action(async (userAddr: string, sender: string, _o, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const removed = await s.contacts.remove(user.id, sender);
        if (removed.length === 0) throw new CliError(`no contact names ${sender}`, EXIT.notFound);
        io.stdout.write(`removed ${removed.length} card(s): ${removed.join(', ')}\n`);
      });
    });

  contacts
    .command('import <user> <file>')
    .description('import a .vcf file (any number of vCards); prints what was imported, merged and rejected')
    .option('--json', 'machine-readable summary')
    .action(async (userAddr: string, file: string, opts: { json?: boolean }, cmd: Command) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, EXIT.usage);
      }
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const bar = io.stderr.isTTY ? progressBar(io.stderr) : undefined;
        const summary = await s.contacts.importCards(user.id, text, bar);
        if (bar) io.stderr.write('\n');
        if (opts.json) return printJson(io.stdout, summary);
        io.stdout.write(`imported ${summary.imported}, merged ${summary.merged}, rejected ${summary.rejected.length}\n`);
        for (const r of summary.rejected) io.stdout.write(`  line ${r.line}: ${r.reason}\n`);
      });
    });
}

function registerExpect(program: Command, io: CliIo): void {
  program
    .command('expect <user> <domain>')
    .description('expect an ownership confirmation (sign-up, password reset) from a domain: its authenticated mail is admitted to INBOX in every mode while the entry lasts')
    .option('--for <duration>', 'how long the entry lives, e.g. 30m, 2h, 7d', '24h')
    .option('--uses <n>', 'how many messages it admits', '1')
    .option('--from <domain>', 'also admit mail from this sending domain (one the site declared, e.g. its mail provider)')
    .option('--require-marker', 'admit only messages marked TWM-Purpose: ownership-confirmation')
    .option('--json', 'machine-readable output')
    .action(async (userAddr: string, domain: string, opts: { for: string; uses: string; from?: string; requireMarker?: boolean; json?: boolean }, cmd: Command) => {
      const forMs = parseDuration(opts.for);
      if (forMs === null) throw new CliError(`invalid --for "${opts.for}": expected a duration such as 30m, 2h or 7d`, EXIT.usage);
      if (!/^\d{1,4}$/.test(opts.uses) || Number(opts.uses) < 1) {
        throw new CliError(`invalid --uses "${opts.uses}": expected a number from 1 to 9999`, EXIT.usage);
      }
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const card = await s.contacts.expect(user.id, domain, { forMs, uses: Number(opts.uses), from: opts.from, requireMarker: opts.requireMarker === true });
        if (opts.json) return printJson(io.stdout, { uid: card.uid, domain: card.domain, until: card.until, uses: card.uses, from: opts.from ?? null, requireMarker: opts.requireMarker === true });
        io.stdout.write(`expecting ${card.domain} until ${card.until} (${card.uses} use${card.uses === 1 ? '' : 's'}): card ${card.uid}\n`);
      });
    });
}

/** `requests list|approve|deny|clear|spam|approve-domain`: the Screener. */
function registerRequestCommands(program: Command, io: CliIo): void {
  const requests = program.command('requests').description('the Screener: contact requests from strangers');
  requests
    .command('list <user>')
    .option('--status <status>', 'pending | approved | denied')
    .option('--likely-spam', 'also list the requests judged likely spam (hidden by default)')
    .option('--json', 'machine-readable output')
    .action(async (userAddr: string, opts: { json?: boolean; status?: string; likelySpam?: boolean }, cmd: Command) => {
      if (opts.status && !['pending', 'approved', 'denied'].includes(opts.status)) {
        throw new CliError(`invalid --status "${opts.status}": expected pending, approved or denied`, EXIT.usage);
      }
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const ranked = await s.screener.list(user.id, opts.status as ContactRequestStatus | undefined, { likelySpam: opts.likelySpam === true });
        const views = ranked.map(requestView);
        // Best reputation first; the table shows the score and why.
        const rows = opts.json
          ? views
          : views.map((v) => ({ ...v, score: v.reputation.score, why: v.reputation.reasons.join(', '), dmarc: v.dmarc ? `${v.dmarc.result}${v.dmarc.policy ? ` p=${v.dmarc.policy}` : ''}` : null }));
        list(io.stdout, rows as unknown as Row[], ['sender', 'score', 'why', 'authDomain', 'dmarc', 'status', 'count', 'held', 'likelySpam', 'lastSeen', 'sampleSubject', 'intro'], opts.json);
      });
    });
  const action = (name: 'approve' | 'deny' | 'clear' | 'spam', description: string) =>
    requests
      .command(`${name} <user> <senders...>`)
      .description(description)
      .option('--json', 'machine-readable output')
      .action(async (userAddr: string, senders: string[], opts: { json?: boolean }, cmd: Command) => {
        await withServices(globals(cmd), async (s) => {
          const user = await s.accounts.get(userAddr);
          const results = await s.screener[name](user.id, senders);
          list(io.stdout, results as unknown as Row[], ['sender', 'released', 'dropped', 'junked'], opts.json);
        });
      });
  action('approve', 'allow the senders and release their held mail to INBOX');
  action('deny', 'block the senders and drop their held mail');
  action('clear', 'forget the requests and drop held mail, deciding nothing');
  action('spam', 'mark as spam: held mail goes to Junk (teaching the spam filter), the requests are denied');
  requests
    .command('approve-domain <user> <domain>')
    .description('allow a whole domain and release every held sender of it')
    .option('--json', 'machine-readable output')
    .action(async (userAddr: string, domain: string, opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        list(io.stdout, (await s.screener.approveDomain(user.id, domain)) as unknown as Row[], ['sender', 'released'], opts.json);
      });
    });
}

/** `mail list|show`. */
function registerMailCommands(program: Command, io: CliIo): void {
  const mail = program.command('mail').description("read a user's mail");
  registerMove(mail, io);
  mail
    .command('list <user>')
    .option('--mailbox <name>', 'INBOX | Screener | Junk | Sent | Trash (default: all)')
    .option('--json', 'machine-readable output')
    .action(async (userAddr: string, opts: { json?: boolean; mailbox?: string }, cmd: Command) => {
      const mailbox = opts.mailbox ? parseMailbox(opts.mailbox) : undefined;
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const rows = (await s.mail.list(user.id, mailbox)).map(messageView);
        list(io.stdout, rows as unknown as Row[], ['id', 'mailbox', 'uid', 'from', 'subject', 'receivedAt', 'firstContact'], opts.json);
      });
    });
  mail
    .command('show <user> <id>')
    .description('print a message as stored (headers and body)')
    .option('--json', 'metadata as JSON instead of the raw message')
    .action(async (userAddr: string, id: string, opts: { json?: boolean }, cmd: Command) => {
      const n = Number(id);
      if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`invalid message id "${id}": expected a positive number`, EXIT.usage);
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const msg = await s.mail.get(user.id, n);
        if (opts.json) return printJson(io.stdout, { ...messageView(msg), spam: spamOfMessage(msg.raw) });
        // The raw message starts with this server's trace headers, X-Spam and X-Spam-Symbols among them.
        io.stdout.write(msg.raw);
        if (!msg.raw.subarray(-1).equals(Buffer.from('\n'))) io.stdout.write('\n');
      });
    });
}

/** Moves messages; into Junk teaches the spam filter spam, out of Junk ham (with [spam] learning). */
function registerMove(mail: Command, io: CliIo): void {
  mail
    .command('move <user> <mailbox> <ids...>')
    .description('move messages to a mailbox (Junk: mark as spam; out of Junk: not spam)')
    .option('--json', 'machine-readable output')
    .action(async (userAddr: string, mailboxName: string, ids: string[], opts: { json?: boolean }, cmd: Command) => {
      const mailbox = parseMailbox(mailboxName);
      const nums = ids.map((id) => {
        const n = Number(id);
        if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`invalid message id "${id}": expected a positive number`, EXIT.usage);
        return n;
      });
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(userAddr);
        const moved = await s.mail.move(user.id, nums, mailbox);
        if (opts.json) printJson(io.stdout, { moved, mailbox });
        else io.stdout.write(`moved ${moved} message${moved === 1 ? '' : 's'} to ${mailbox}\n`);
      });
    });
}

/** A one-line progress bar on a terminal's stderr, redrawn at most every 1%. */
function progressBar(stderr: OutStream, width = 30): (done: number, total: number) => void {
  let shown = -1;
  return (done, total) => {
    const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
    if (pct === shown) return;
    shown = pct;
    const full = Math.round((pct / 100) * width);
    stderr.write(`\r[${'#'.repeat(full)}${' '.repeat(width - full)}] ${String(pct).padStart(3)}% ${done}/${total} cards`);
  };
}
