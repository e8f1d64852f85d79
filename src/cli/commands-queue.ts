/** The outbound queue and sending from scripts: `queue list|retry|flush|delete`, `send`. */
import type { Command } from 'commander';
import { queueEntryView } from '../services/queue.ts';
import type { QueueState } from '../core/types.ts';
import { withServices, type GlobalOptions } from './context.ts';
import { CliError, EXIT, list, printJson, type CliIo } from './output.ts';

const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();
const STATES = ['scheduled', 'deferred', 'delivered', 'failed'];

function entryId(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`invalid queue entry id "${value}": expected a positive number`, EXIT.usage);
  return n;
}

export function registerQueueCommands(program: Command, io: CliIo): void {
  const queue = program.command('queue').description('the outbound queue, one entry per recipient');
  queue
    .command('list')
    .option('--state <state>', STATES.join(' | '))
    .option('--json', 'machine-readable output')
    .action(async (opts: { state?: string; json?: boolean }, cmd: Command) => {
      if (opts.state && !STATES.includes(opts.state)) throw new CliError(`invalid --state "${opts.state}": expected ${STATES.join(', ')}`, EXIT.usage);
      await withServices(globals(cmd), async (s) => {
        const rows = (await s.queue.list(opts.state ? { state: opts.state as QueueState['state'] } : {})).map(queueEntryView);
        list(io.stdout, rows as unknown as Array<Record<string, unknown>>, ['id', 'state', 'sender', 'recipient', 'attempts', 'nextAttemptAt', 'detail'], opts.json);
      });
    });
  queue
    .command('retry <id>')
    .description('try a scheduled or deferred entry again now')
    .action(async (id: string, _o, cmd: Command) => {
      const n = entryId(id);
      await withServices(globals(cmd), async (s) => {
        const e = await s.queue.retry(n);
        io.stdout.write(`entry ${e.id} (${e.recipient}) scheduled for now\n`);
      });
    });
  queue
    .command('flush')
    .description('try every scheduled and deferred entry again now (like postqueue -f)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const entries = await s.queue.flush();
        if (opts.json) return printJson(io.stdout, entries.map(queueEntryView));
        // A running server's queue worker picks them up on its next poll.
        io.stdout.write(`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} scheduled for now\n`);
      });
    });
  queue
    .command('delete <id>')
    .description('remove an entry (its recipient will not get the message)')
    .action(async (id: string, _o, cmd: Command) => {
      const n = entryId(id);
      await withServices(globals(cmd), async (s) => {
        await s.queue.remove(n);
        io.stdout.write(`entry ${n} deleted\n`);
      });
    });

  program
    .command('send')
    .description('submit a message read from stdin as USER (like SMTP submission, for scripts)')
    .requiredOption('--from <user>', 'the sending user (the envelope sender)')
    .requiredOption('--to <addresses...>', 'recipients')
    .action(async (opts: { from: string; to: string[] }, cmd: Command) => {
      if (io.stdin.isTTY) throw new CliError('pipe the message on standard input, e.g. twoway send --from a@x --to b@y < message.eml', EXIT.usage);
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk));
      const raw = Buffer.concat(chunks);
      if (raw.length === 0) throw new CliError('empty message on standard input', EXIT.usage);
      await withServices(globals(cmd), async (s) => {
        if (!s.outbound) throw new CliError('sending is not configured', EXIT.failure);
        const user = await s.accounts.get(opts.from);
        const r = await s.outbound.submit({ user, envelopeFrom: user.address, recipients: opts.to, raw });
        io.stdout.write(`queued ${r.messageId} for ${r.recipients.join(', ')}\n`);
      });
    });
}
