/** What became of sent mail, per recipient: `twoway sent list|status`. */
import type { Command } from 'commander';
import type { SentMessageView } from '../services/sent.ts';
import { withServices, type GlobalOptions } from './context.ts';
import { printJson, printTable, type CliIo } from './output.ts';

const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

function rows(messages: SentMessageView[]): Array<Record<string, unknown>> {
  return messages.flatMap((m) =>
    m.recipients.map((r) => ({ messageId: m.messageId, subject: m.subject, recipient: r.recipient, via: r.via, status: r.status, detail: r.detail })),
  );
}

export function registerSentCommands(program: Command, io: CliIo): void {
  const sent = program.command('sent').description("a user's sent mail and what became of it, per recipient (SMTP and Two-Way Mail)");
  sent
    .command('list <user>')
    .option('--limit <n>', 'messages to show', '50')
    .option('--json', 'machine-readable output')
    .action(async (address: string, opts: { limit: string; json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(address);
        const limit = Math.max(1, Math.min(1000, Number.parseInt(opts.limit, 10) || 50));
        const messages = await s.sent.list(user, { limit });
        if (opts.json) printJson(io.stdout, messages);
        else printTable(io.stdout, rows(messages), ['messageId', 'recipient', 'via', 'status', 'detail']);
      });
    });
  sent
    .command('status <user> <message-id>')
    .description('every recipient of one sent message')
    .option('--json', 'machine-readable output')
    .action(async (address: string, messageId: string, opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const user = await s.accounts.get(address);
        const message = await s.sent.status(user, messageId);
        if (opts.json) printJson(io.stdout, message);
        else {
          io.stdout.write(`${message.messageId}  ${message.subject ?? '(no subject)'}  ${message.createdAt}\n`);
          printTable(io.stdout, rows([message]), ['recipient', 'via', 'status', 'detail']);
        }
      });
    });
}
