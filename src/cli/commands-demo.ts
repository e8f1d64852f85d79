/** `twoway demo`: registered here, run from demo.ts, which is loaded only when the demo runs (it pulls in the whole server). */
import type { Command } from 'commander';
import type { CliIo } from './output.ts';

export function registerDemoCommand(program: Command, io: CliIo): void {
  program
    .command('demo')
    .description('run three mail domains on loopback and show Two-Way Mail next to SMTP')
    .option('--dir <dir>', 'where the demo keeps its configuration and data', 'twoway-demo')
    .option('--keep-running', 'keep the servers running after the demo (Ctrl-C stops them)')
    .action(async (opts: { dir: string; keepRunning?: boolean }) => {
      const { runDemo } = await import('./demo.ts');
      await runDemo(opts, io.stdout);
    });
}
