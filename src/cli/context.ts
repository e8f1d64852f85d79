/**
 * What a CLI command needs: the validated config and, for commands that work
 * on data, an open store and the services. The CLI works on the store
 * directly, so it needs no running server (SQLite WAL and PostgreSQL both
 * allow the server and the CLI at once).
 */
import { existsSync } from 'node:fs';
import { loadConfig, type Config } from '../config/load.ts';
import { ensureMaterials } from '../config/materials.ts';
import { createDkimSigner } from '../mail/dkim-sign.ts';
import { createServices, type Services } from '../services/index.ts';
import { openStore } from '../store/open.ts';
import type { Store } from '../store/types.ts';
import { CliError, EXIT } from './output.ts';

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

export function readConfig(opts: GlobalOptions): Config {
  return loadConfig(configPath(opts));
}

export async function withServices<T>(opts: GlobalOptions, run: (s: Services, store: Store, config: Config) => Promise<T>): Promise<T> {
  const config = readConfig(opts);
  const store = await openStore(config.storage);
  try {
    // Sending from the CLI queues into the store; a running server's queue worker picks it up on its next poll.
    const services = createServices(store, config.domains, {
      sign: createDkimSigner(ensureMaterials(config).dkim),
      hostname: config.hostname,
      maxRecipients: config.limits.recipients,
      maxMessageSize: config.limits.messageSize,
      maxReceivedHeaders: config.limits.receivedHeaders,
    }, undefined, { learn: config.spam?.learn === true });
    return await run(services, store, config);
  } finally {
    await store.close();
  }
}

/** Reads a password: the whole of stdin when piped, or a prompt without echo on a terminal. */
export async function readPassword(prompt = 'Password: '): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (text === '') throw new CliError('no password on standard input (pipe it in, e.g. echo "$PW" | twoway user add …)', EXIT.usage);
    return text;
  }
  process.stderr.write(prompt);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (fn: () => void) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
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
