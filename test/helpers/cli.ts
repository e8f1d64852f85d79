/**
 * Two ways to run `twoway` in a test: in-process through the program builder
 * (fast: no child process, no TypeScript loader start-up), or as a child
 * process of the TypeScript sources (for what needs a real process: signals,
 * a terminal, the environment). The compiled bin is tested in test/build.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/program.ts';
import type { OutStream } from '../../src/cli/output.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** node arguments that run the CLI's TypeScript sources (tests must not run a stale dist/). */
// tsx by its resolved URL: a child may run in another directory (the demo test's temporary one).
export const CLI_ARGS = ['--import', import.meta.resolve('tsx'), join(REPO, 'src', 'cli', 'index.ts')];

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

class Capture implements OutStream {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string | Uint8Array): boolean {
    this.text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }
}

/** Runs one command line in this process; stdin is `input` (not a terminal). */
export async function cli(args: string[], input = ''): Promise<CliResult> {
  const stdout = new Capture();
  const stderr = new Capture();
  const stdin = input === '' ? Readable.from([]) : Readable.from([Buffer.from(input)]);
  const code = await runCli(args, { stdout, stderr, stdin: stdin as PassThrough });
  return { code, out: stdout.text, err: stderr.text };
}

/** Runs the CLI's sources in a child process. */
export function cliChild(args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string; timeout?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [...CLI_ARGS, ...args], {
    input: options.input ?? '',
    encoding: 'utf8',
    cwd: options.cwd,
    env: { ...process.env, TWOWAY_CONFIG: '', ...options.env },
    timeout: options.timeout ?? 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
