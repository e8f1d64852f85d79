/** `twoway`: the entry point the bin runs. The commands are in program.ts. */
import { VERSION } from './version.ts';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // Answered before the commands load: a version check must not cost a server's start-up.
  process.stdout.write(`${VERSION}\n`);
} else {
  const { runCli } = await import('./program.ts');
  const code = await runCli(args);
  if (code !== 0) process.exitCode = code;
}
