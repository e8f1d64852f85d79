/**
 * CLI output and failure conventions: tables for people, `--json` for
 * scripts, and every error as one line on stderr with an exit code that
 * says what kind of failure it was.
 */
import { ConfigError } from '../config/config-error.ts';
import { DomainError, type DomainErrorKind, ReplyError } from '../core/errors.ts';

/** A stream a command writes to: process.stdout/stderr when run as `twoway`, a buffer in tests. */
export interface OutStream {
  write(chunk: string | Uint8Array): unknown;
  isTTY?: boolean;
}

/** Where a command reads and writes: injected by buildProgram, so commands never touch process.* directly. */
export interface CliIo {
  stdout: OutStream;
  stderr: OutStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, notFound: 4, conflict: 5, auth: 6 } as const;

/** The one place a domain error becomes an exit code. */
const EXIT_OF_KIND: Readonly<Record<DomainErrorKind, number>> = {
  'not-found': EXIT.notFound,
  conflict: EXIT.conflict,
  invalid: EXIT.usage,
  forbidden: EXIT.auth,
  unauthorized: EXIT.auth,
  throttled: EXIT.auth,
};

/** A failure the CLI reports as it is. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.failure) {
    super(message);
    this.name = 'CliError';
  }
}

export function printTable(out: OutStream, rows: Array<Record<string, unknown>>, columns: string[]): void {
  if (rows.length === 0) {
    out.write('(none)\n');
    return;
  }
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : v instanceof Date ? v.toISOString() : Array.isArray(v) ? v.join(',') : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  out.write(line(columns.map((c) => c.toUpperCase())) + '\n');
  for (const r of rows) out.write(line(columns.map((c) => cell(r[c]))) + '\n');
}

export function printJson(out: OutStream, value: unknown): void {
  out.write(JSON.stringify(value, null, 2) + '\n');
}

export function list(out: OutStream, rows: Array<Record<string, unknown>>, columns: string[], json: boolean | undefined): void {
  if (json) printJson(out, rows);
  else printTable(out, rows, columns);
}

/** Maps any error to (one line, exit code). Internal errors keep their message but never a stack. */
export function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof CliError) return { message: err.message, code: err.exitCode };
  if (err instanceof ConfigError) return { message: err.message, code: EXIT.config };
  if (err instanceof DomainError) return { message: err.text, code: EXIT_OF_KIND[err.kind] };
  // A protocol refusal (bad address syntax, a message the mail system refuses as given) is the input's fault; a temporary one is not.
  if (err instanceof ReplyError) return { message: err.text, code: err.temporary ? EXIT.failure : EXIT.usage };
  const message = err instanceof Error ? err.message : String(err);
  return { message: message.split('\n')[0] ?? 'unknown error', code: EXIT.failure };
}
