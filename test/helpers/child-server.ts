/**
 * A twoway server as a child process, run through the real CLI
 * (`node bin/twoway.js start --config FILE`), so that a test can kill it with
 * SIGKILL and start it again on the same configuration and data directory
 * (the same SQLite database): what a crash and a restart look like to the
 * store and the queue.
 *
 * Readiness is the CLI's own line on stdout, printed after every listener
 * is up: `twoway: SMTP on HOST:PORT, submission on HOST:PORT, API on URL/api`. The child's stderr (its
 * pino log) is kept as a bounded tail for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderConfig } from '../../src/config/template.ts';

/** The repository root (this file is test/helpers/child-server.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The CLI's sources through tsx, not bin/twoway.js: the bin runs dist/, which may be stale in a checkout.
const CLI = ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'index.ts')];

/** Children still running when the test process exits are killed, so none outlives a crashed test. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface ChildReady {
  smtpPort: number;
  apiUrl: string;
  pid: number;
  /** Milliseconds from spawn to the ready line. */
  startupMs: number;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const WORKERS = /^twoway: \d+ worker processes \(pids ([\d ]+)\) under supervisor \d+$/;
const READY = /^twoway: SMTP on (\S+):(\d+)(?:, submission on \S+:\d+)?, API on (\S+)\/api$/m;
const TAIL_LINES = 200;

export class ChildServer {
  readonly configFile: string;
  #child: ChildProcess | null = null;
  #exited: Promise<ChildExit> | null = null;
  #tail: string[] = [];
  #starts = 0;
  #listeners: Array<(line: string) => void> = [];
  /** With `[server] processes` > 1: the worker processes the supervisor reported at start. */
  #workerPids: number[] = [];

  constructor(configFile: string) {
    this.configFile = configFile;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The supervised worker processes of the current run (none with `[server] processes = 1`). */
  get workerPids(): readonly number[] {
    return this.#workerPids;
  }

  /** How many times the process was started. */
  get starts(): number {
    return this.#starts;
  }

  /** Calls `fn` with every later line the child writes (stderr and stdout), e.g. to collect log fields. */
  onLine(fn: (line: string) => void): void {
    this.#listeners.push(fn);
  }

  /** The last lines the child wrote (stderr and stdout), for failure messages. */
  logTail(lines = 40): string {
    return this.#tail.slice(-lines).join('\n');
  }

  /** Spawns the server and resolves once it printed its ready line; rejects (and kills it) on an early exit or after `timeoutMs`. */
  async start(timeoutMs = 60_000): Promise<ChildReady> {
    if (this.#child) throw new Error('the child server is already running');
    const started = Date.now();
    this.#starts++;
    this.#workerPids = [];
    const child = spawn(process.execPath, [...CLI, 'start', '--config', this.configFile], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    live.add(child);
    this.#exited = new Promise<ChildExit>((resolveExit) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        if (this.#child === child) this.#child = null;
        resolveExit({ code, signal });
      });
    });
    const record = (prefix: string) => {
      let partial = '';
      return (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const workers = WORKERS.exec(line);
          if (workers) this.#workerPids = workers[1]!.split(' ').map(Number);
          this.#tail.push(`[${this.#starts}${prefix}] ${line}`);
          for (const fn of this.#listeners) fn(line);
        }
        if (this.#tail.length > TAIL_LINES) this.#tail.splice(0, this.#tail.length - TAIL_LINES);
      };
    };
    child.stderr!.on('data', record(' err'));
    let stdout = '';
    const onStdout = record(' out');
    const exited = this.#exited;
    return new Promise<ChildReady>((resolveReady, rejectReady) => {
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        rejectReady(new Error(`${why}\n--- child log ---\n${this.logTail()}`));
      };
      const timer = setTimeout(() => fail(`the child server did not get ready within ${timeoutMs} ms`), timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        onStdout(chunk);
        stdout += chunk.toString('utf8');
        const m = settled ? null : READY.exec(stdout);
        if (m) {
          settled = true;
          clearTimeout(timer);
          stdout = '';
          resolveReady({ smtpPort: Number(m[2]), apiUrl: m[3]!, pid: child.pid!, startupMs: Date.now() - started });
        }
      });
      void exited.then((e) => fail(`the child server exited before it was ready (code ${e.code}, signal ${e.signal})`));
    });
  }

  /** Sends `signal` (SIGKILL by default) and resolves when the process is gone. A no-op when it is not running. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildExit | null> {
    const child = this.#child;
    if (!child || !this.#exited) return null;
    child.kill(signal);
    return this.#exited;
  }

  /**
   * The whole node dies at once, as when its machine fails: SIGKILL to the
   * supervisor and to every worker it reported. Resolves when all are gone.
   */
  async killNode(): Promise<ChildExit | null> {
    const workers = this.#workerPids;
    const exit = this.kill('SIGKILL');
    for (const pid of workers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const result = await exit;
    const deadline = Date.now() + 10_000;
    for (const pid of workers) {
      while (isAlive(pid)) {
        if (Date.now() > deadline) throw new Error(`worker ${pid} still running 10 s after SIGKILL`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    return result;
  }

  /** Asks for a clean shutdown (SIGTERM), then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<ChildExit | null> {
    const child = this.#child;
    if (!child || !this.#exited) return null;
    const exited = this.#exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** kill -9, then start again on the same configuration and data. */
  async restart(timeoutMs?: number): Promise<ChildReady> {
    await this.kill('SIGKILL');
    return this.start(timeoutMs);
  }
}

/** Runs the CLI to completion (e.g. `user add ADDRESS --config FILE` with the password on stdin). */
export function runCli(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn(process.execPath, [...CLI, ...args], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', rejectRun);
    child.once('close', (code) => {
      live.delete(child);
      resolveRun({ code, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

export interface ChildConfigOptions {
  domain: string;
  /** The loopback address the SMTP and submission listeners bind to, and outgoing SMTP leaves from. */
  host: string;
  smtpPort: number;
  /** Fixed, so that clients find the server again after a restart. */
  submissionPort: number;
  deliveryPort: number;
  dns: string[];
  /** Extra edits of the rendered TOML text. */
  edit?: (toml: string) => string;
}

export interface ChildConfig {
  dir: string;
  file: string;
  text: string;
  cleanup(): void;
}

/**
 * Writes a configuration rendered by `renderConfig` into a fresh temporary
 * directory (`data_dir` is `data` next to it, so restarts reuse the store).
 * The HTTP API stays on 127.0.0.1, port 0.
 */
export function writeChildConfig(o: ChildConfigOptions): ChildConfig {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-child-'));
  let text = renderConfig({
    hostname: `mx.${o.domain}`,
    domains: [o.domain],
    smtpPort: o.smtpPort,
    submissionPort: o.submissionPort,
    httpPort: 0,
    imapPort: 0,
    imapsPort: 0,
    deliveryPort: o.deliveryPort,
    metricsPort: 0,
    deliveryLab: true,
    dns: o.dns,
  });
  text = text.replaceAll('host = "0.0.0.0"', `host = "${o.host}"`);
  text = text.replace('[delivery]\n', `[delivery]\nbind_address = "${o.host}"\n`);
  if (o.edit) text = o.edit(text);
  const file = join(dir, 'twoway.toml');
  writeFileSync(file, text, { mode: 0o600 });
  return { dir, file, text, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Sets keys in the `[delivery]` section of a rendered configuration (e.g. `{ min_backoff: '"1s"' }`, values as TOML). */
export function withDelivery(toml: string, keys: Record<string, string>): string {
  const lines = Object.entries(keys).map(([k, v]) => `${k} = ${v}\n`).join('');
  if (!toml.includes('[delivery]\n')) throw new Error('no [delivery] section in the configuration');
  return toml.replace('[delivery]\n', `[delivery]\n${lines}`);
}

/** Running, not a zombie (a killed worker's parent is gone; whoever adopts it may be slow to reap it). */
function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
