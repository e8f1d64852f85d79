/** Debian's swaks as an independent SMTP client for tests (skipped where it is not installed, required in CI). */
import { execFile, spawnSync } from 'node:child_process';

export const haveSwaks = spawnSync('swaks', ['--version']).status === 0;
if (!haveSwaks && process.env.CI) throw new Error('swaks is required in CI (apt-get install swaks)');

export interface SwaksResult {
  code: number;
  /** The server's reply lines. */
  replies: string[];
  out: string;
}

/** Runs swaks asynchronously: the server under test lives in this process's event loop. */
export async function swaks(port: number, args: string[]): Promise<SwaksResult> {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile('swaks', ['--server', '127.0.0.1', '--port', String(port), '--timeout', '20', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout, stderr });
    });
  });
  // Server replies are the lines swaks prefixes with "<-" (plain) or "<~" (inside TLS); "<**" marks an error reply.
  const replies = stdout.split('\n').filter((l) => /^<(-|~|\*\*|~\*)/.test(l)).map((l) => l.replace(/^<\S*\s*/, ''));
  return { code, replies, out: stdout + stderr };
}
