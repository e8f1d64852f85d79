/**
 * What a CLI command needs: the validated config and, for commands that work
 * on data, the application built by the one composition root (src/app.ts)
 * without its workers and listeners: the same services on the same store as
 * the server's. The CLI needs no running server (SQLite WAL and PostgreSQL
 * both allow the server and the CLI at once); what it decides is stored
 * state that a running server's workers pick up (queued mail, Screener
 * decisions, address-book changes).
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/load.ts';
import type { Services } from '../services/index.ts';
import type { Store } from '../store/types.ts';
import { CliError, EXIT, type CliIo } from './output.ts';

export interface GlobalOptions {
  config?: string;
}

export function configPath(opts: GlobalOptions): string {
  const path = opts.config ?? process.env.TWOWAY_CONFIG ?? 'twoway.toml';
  if (!existsSync(path)) {
    throw new CliError(
      `no configuration file at ${path}: pass --config FILE or set TWOWAY_CONFIG (create one with "twoway init --domain D --dir DIR")`,
      EXIT.config,
    );
  }
  return path;
}

// The schema (zod), the store and the services load on first use, not at start-up, so that
// `twoway --version` and `--help` load none of them.
export async function readConfig(opts: GlobalOptions): Promise<Config> {
  const { loadConfig } = await import('../config/load.ts');
  return loadConfig(configPath(opts));
}

export async function withServices<T>(opts: GlobalOptions, run: (s: Services, store: Store, config: Config) => Promise<T>): Promise<T> {
  const config = await readConfig(opts);
  const { createApp } = await import('../app.ts');
  const app = await createApp(config);
  try {
    return await run(app.services, app.store, config);
  } finally {
    await app.close();
  }
}

/** Reads a password: the whole of stdin when piped, or a prompt without echo on a terminal. */
export async function readPassword(io: CliIo, prompt = 'Password: '): Promise<string> {
  if (!io.stdin.isTTY || !io.stdin.setRawMode) {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk));
    const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (text === '') throw new CliError('no password on standard input (pipe it in, e.g. echo "$PW" | twoway user add …)', EXIT.usage);
    return text;
  }
  io.stderr.write(prompt);
  const stdin = io.stdin;
  const setRawMode = io.stdin.setRawMode.bind(io.stdin);
  setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (fn: () => void) => {
      setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      io.stderr.write('\n');
      fn();
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(() => resolve(value));
        if (ch === '\u0003') return done(() => reject(new CliError('cancelled', EXIT.failure)));
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
