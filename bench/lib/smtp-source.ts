/**
 * Runs Debian's `smtp-source` (package postfix) and times it. smtp-source
 * opens `sessions` connections in parallel and, without -d, one connection per
 * message (connect, greeting, HELO, MAIL, RCPT, DATA, QUIT), like independent
 * MTAs delivering to an MX. Any reply other than the expected 2xx/3xx makes it
 * exit non-zero (no -A), so exit code 0 means every message got its 250.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export const SMTP_SOURCE = '/usr/sbin/smtp-source';

export interface SmtpSourceRun {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  /** Payload bytes per message (-l), headers not included. */
  size: number;
  from: string;
  to: string;
  /** HELO name (-M). */
  helo: string;
  /** Keep connections open between messages (-d). */
  reuseConnections?: boolean;
  timeoutMs?: number;
  /** Aborting kills smtp-source (used on SIGINT/SIGTERM). */
  signal?: AbortSignal;
}

export interface SmtpSourceResult {
  seconds: number;
  exitCode: number | null;
  stderr: string;
  args: string[];
}

export function smtpSourceArgs(r: SmtpSourceRun): string[] {
  return [
    ...(r.reuseConnections ? ['-d'] : []),
    '-s', String(r.sessions),
    '-m', String(r.messages),
    '-l', String(r.size),
    '-M', r.helo,
    '-f', r.from,
    '-t', r.to,
    `${r.host}:${r.port}`,
  ];
}

export function runSmtpSource(r: SmtpSourceRun): Promise<SmtpSourceResult> {
  if (!existsSync(SMTP_SOURCE)) return Promise.reject(new Error(`${SMTP_SOURCE} not found (install the postfix package)`));
  const args = smtpSourceArgs(r);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(r.signal ? { signal: r.signal, killSignal: 'SIGKILL' as const } : {}) });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 10_000) stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), r.timeoutMs ?? 300_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      clearTimeout(timer);
      resolve({ seconds, exitCode: code, stderr: stderr.trim(), args });
    });
  });
}
