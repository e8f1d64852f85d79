/**
 * `twoway`: the command line. Every command takes --config FILE (or
 * TWOWAY_CONFIG); every list command takes --json; every failure is one line
 * on stderr and a non-zero exit code (see output.ts for the codes).
 */
import { Command, CommanderError, Option } from 'commander';
import { registerAdminCommands } from './commands-admin.ts';
import { registerDataCommands } from './commands-data.ts';
import { registerDemoCommand } from './demo.ts';
import { registerQueueCommands } from './commands-queue.ts';
import { registerSentCommands } from './commands-sent.ts';
import { describeError, EXIT } from './output.ts';

export function buildProgram(): Command {
  const program = new Command('twoway')
    .description('Two-Way Mail server: email where strangers ask first')
    .version('0.1.0')
    .addOption(new Option('-c, --config <file>', 'configuration file').env('TWOWAY_CONFIG'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.configureOutput({
    // Commander's own messages are already one line; keep them on stderr.
    writeErr: (s) => process.stderr.write(s),
  });
  registerAdminCommands(program);
  registerDataCommands(program);
  registerQueueCommands(program);
  registerSentCommands(program);
  registerDemoCommand(program);
  for (const cmd of allCommands(program)) cmd.exitOverride();
  return program;
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successes
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    const { message, code } = describeError(err);
    process.stderr.write(`twoway: ${message}\n`);
    return code;
  }
}

const code = await main(process.argv);
if (code !== 0) process.exitCode = code;
