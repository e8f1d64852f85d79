/**
 * The `twoway` command line as a value: buildProgram wires every command to
 * the given streams, and runCli parses one command line and returns its exit
 * code instead of exiting, so tests run commands in-process and the bin
 * (index.ts) is a thin wrapper. Every command takes --config FILE (or
 * TWOWAY_CONFIG); every list command takes --json; every failure is one line
 * on stderr and a non-zero exit code (see output.ts for the codes).
 *
 * Command modules import only what parsing needs; whatever is heavy (the
 * server, the demo, mailauth, pg) is imported inside the action that uses it,
 * so `twoway --version` and `twoway mail list` start fast.
 */
import { Command, CommanderError, Option } from 'commander';
import { registerAdminCommands } from './commands-admin.ts';
import { registerDataCommands } from './commands-data.ts';
import { registerDemoCommand } from './commands-demo.ts';
import { registerDoctorCommand } from './commands-doctor.ts';
import { registerImportCommand } from './commands-import.ts';
import { registerQueueCommands } from './commands-queue.ts';
import { registerSentCommands } from './commands-sent.ts';
import { describeError, EXIT, processIo, type CliIo } from './output.ts';
import { VERSION } from './version.ts';

export function buildProgram(io: CliIo = processIo()): Command {
  const program = new Command('twoway')
    .description('Two-Way Mail server: email where strangers ask first')
    .version(VERSION)
    .addOption(new Option('-c, --config <file>', 'configuration file').env('TWOWAY_CONFIG'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // Set before the commands are added, so every subcommand inherits it.
  program.configureOutput({
    writeOut: (s) => io.stdout.write(s),
    // Commander's own messages are already one line; keep them on stderr.
    writeErr: (s) => io.stderr.write(s),
  });
  registerAdminCommands(program, io);
  registerDataCommands(program, io);
  registerQueueCommands(program, io);
  registerSentCommands(program, io);
  registerImportCommand(program, io);
  registerDoctorCommand(program, io);
  registerDemoCommand(program, io);
  for (const cmd of allCommands(program)) cmd.exitOverride();
  return program;
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}

/** Runs one command line (the arguments after `twoway`) and returns the exit code; failures are one line on io.stderr. */
export async function runCli(args: string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successes
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    const { message, code } = describeError(err);
    io.stderr.write(`twoway: ${message}\n`);
    return code;
  }
}
