/** Server administration: init, start, dns, user. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseConfig } from '../config/load.ts';
import { ensureMaterials } from '../config/materials.ts';
import { renderConfig } from '../config/template.ts';
import { APP_PASSWORD_SCOPES, type AppPasswordScope } from '../core/types.ts';
import { parseMode, publicUser } from '../services/accounts.ts';
import { configPath, readConfig, readPassword, withServices, type GlobalOptions } from './context.ts';
import { recordsToPublish, zoneLine } from '../config/published-records/dns-records.ts';
import { imapRecords } from '../config/published-records/imap-records.ts';
import { carddavRecords } from '../config/published-records/carddav-records.ts';
import { twmRecordsToPublish } from '../config/published-records/twm-records.ts';
import { CliError, EXIT, list, printJson, type CliIo } from './output.ts';

const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

function portOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`invalid port "${value}": expected 0-65535`, EXIT.usage);
  return n;
}

export function registerAdminCommands(program: Command, io: CliIo): void {
  registerInit(program, io);
  registerStart(program, io);
  registerDns(program, io);
  const user = registerUserCommands(program, io);
  registerAppPasswordCommands(user, io);
}

/** `init`: a configuration file and the keys, for a first start. */
function registerInit(program: Command, io: CliIo): void {
  program
    .command('init')
    .description('write DIR/twoway.toml and generate the TLS and DKIM keys')
    .requiredOption('--domain <domain>', 'the mail domain to serve')
    .requiredOption('--dir <dir>', 'directory for the configuration and data')
    .option('--hostname <name>', 'this server\'s host name (default: mail.<domain>)')
    .option('--smtp-port <n>', 'SMTP port', portOption, 25)
    .option('--http-port <n>', 'HTTP port', portOption, 8080)
    .option('--submission-port <n>', 'submission port (STARTTLS + AUTH)', portOption, 587)
    .option('--imap-port <n>', 'IMAP port (STARTTLS)', portOption, 143)
    .option('--imaps-port <n>', 'IMAP port (implicit TLS)', portOption, 993)
    .option('--dns <servers>', 'DNS servers, comma-separated HOST:PORT (default: the system\'s)')
    .action((opts: { domain: string; dir: string; hostname?: string; smtpPort: number; httpPort: number; submissionPort: number; imapPort: number; imapsPort: number; dns?: string }) => {
      const dir = resolve(opts.dir);
      const file = join(dir, 'twoway.toml');
      if (existsSync(file)) throw new CliError(`${file} exists already; remove it or choose another --dir`, EXIT.conflict);
      mkdirSync(dir, { recursive: true });
      const text = renderConfig({
        hostname: opts.hostname ?? `mail.${opts.domain.toLowerCase()}`,
        domains: [opts.domain.toLowerCase()],
        smtpPort: opts.smtpPort,
        httpPort: opts.httpPort,
        submissionPort: opts.submissionPort,
        imapPort: opts.imapPort,
        imapsPort: opts.imapsPort,
        dns: opts.dns ? opts.dns.split(',').map((s) => s.trim()).filter(Boolean) : [],
      });
      // Validated before it is written, so a bad --domain never leaves a broken file behind.
      const config = parseConfig(text, file);
      writeFileSync(file, text, { mode: 0o600 });
      ensureMaterials(config);
      io.stdout.write(`wrote ${file}\nnext: twoway user add you@${opts.domain} --config ${file}\n      twoway start --config ${file}\n`);
    });
}

/** `start`: the server, in this process or under a supervisor. */
function registerStart(program: Command, io: CliIo): void {
  program
    .command('start')
    .description('run the server until SIGINT or SIGTERM')
    .action(async (_opts, cmd: Command) => {
      const config = await readConfig(globals(cmd));
      // Loaded here: the server's modules (fastify, smtp-server, mailauth, pino) would slow every other command's start-up.
      const { startServer, isSupervisedWorker, runSupervisor, runWorker } = await import('../main.ts');
      // [server] processes > 1: this process supervises workers that each run everything below (src/supervisor.ts).
      if (isSupervisedWorker()) return void (await runWorker(config));
      if (config.server.processes > 1) {
        await runSupervisor(config, (ready, pids) => {
          const submission = ready.submissionPort !== null ? `, submission on ${config.submission.host}:${ready.submissionPort}` : '';
          io.stdout.write(`twoway: SMTP on ${config.smtp.host}:${ready.smtpPort}${submission}, API on ${ready.apiUrl}/api\n`);
          io.stdout.write(`twoway: ${pids.length} worker processes (pids ${pids.join(' ')}) under supervisor ${process.pid}\n`);
        });
        return;
      }
      const server = await startServer(config);
      const submission = server.submission ? `, submission on ${config.submission.host}:${server.submission.port}` : '';
      io.stdout.write(`twoway: SMTP on ${config.smtp.host}:${server.smtp.port}${submission}, API on ${server.http.url}/api\n`);
      await new Promise<void>((resolveStop) => {
        const stop = () => resolveStop();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
    });
}

function registerDns(program: Command, io: CliIo): void {
  program
    .command('dns')
    .description('print the DNS records to publish')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = await readConfig(globals(cmd));
      const materials = ensureMaterials(config);
      const records = [...recordsToPublish(config, materials.dkim), ...twmRecordsToPublish(config, materials.twm), ...carddavRecords(config), ...imapRecords(config)];
      if (opts.json) printJson(io.stdout, records);
      else io.stdout.write(records.map(zoneLine).join('\n') + '\n');
    });
}

/** `user add|list|mode|reveal-declined|passwd`; returns the `user` command for its subcommands. */
function registerUserCommands(program: Command, io: CliIo): Command {
  const user = program.command('user').description('manage accounts');
  user
    .command('add <address>')
    .description('create an account; the password is read from standard input')
    .option('--mode <mode>', 'open | screen | strict', 'open')
    .action(async (address: string, opts: { mode: string }, cmd: Command) => {
      const mode = parseMode(opts.mode);
      configPath(globals(cmd)); // fail on a missing config before asking for a password
      const password = await readPassword(io, );
      await withServices(globals(cmd), async (s) => {
        const u = await s.accounts.add(address, password, mode);
        io.stdout.write(`added ${u.address} (mode ${u.mode})\n`);
      });
    });
  user
    .command('list')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => list(io.stdout, (await s.accounts.list()).map(publicUser) as unknown as Array<Record<string, unknown>>, ['address', 'mode', 'createdAt'], opts.json));
    });
  user
    .command('mode <address> <mode>')
    .description('set the screening mode: open | screen | strict')
    .action(async (address: string, mode: string, _o, cmd: Command) => {
      const m = parseMode(mode);
      await withServices(globals(cmd), async (s) => {
        const u = await s.accounts.setMode(address, m);
        io.stdout.write(`${u.address}: mode ${u.mode}\n`);
      });
    });
  user
    .command('reveal-declined <address> <on|off>')
    .description('whether denying a Two-Way Mail sender tells their server (a "declined" receipt); off by default')
    .action(async (address: string, value: string, _o, cmd: Command) => {
      if (value !== 'on' && value !== 'off') throw new CliError(`invalid value "${value}": expected on or off`, EXIT.usage);
      await withServices(globals(cmd), async (s) => {
        const u = await s.accounts.setRevealDeclined(address, value === 'on');
        io.stdout.write(`${u.address}: reveal declined ${u.revealDeclined ? 'on' : 'off'}\n`);
      });
    });
  user
    .command('passwd <address>')
    .description('set the password, read from standard input; revokes every app password and API session unless told to keep them')
    .option('--keep-app-passwords', 'keep the app passwords valid')
    .option('--keep-sessions', 'keep the API sessions (bearer tokens) valid')
    .action(async (address: string, opts: { keepAppPasswords?: boolean; keepSessions?: boolean }, cmd: Command) => {
      configPath(globals(cmd));
      const password = await readPassword(io, 'New password: ');
      await withServices(globals(cmd), async (s) => {
        const r = await s.accounts.setPassword(address, password, { appPasswords: opts.keepAppPasswords, sessions: opts.keepSessions });
        io.stdout.write(`password changed for ${address}; revoked ${r.revokedAppPasswords} app password(s) and ${r.revokedSessions} session(s)\n`);
      });
    });
  return user;
}

/** `user app-passwords list|create|revoke`. */
function registerAppPasswordCommands(user: Command, io: CliIo): void {
  const apps = user.command('app-passwords').description('app passwords of an account: list, create, revoke');
  apps
    .command('list <address>')
    .option('--json', 'machine-readable output')
    .action(async (address: string, opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        const rows = (await s.accounts.listAppPasswords(await s.accounts.get(address))).map((a) => ({
          id: a.id,
          publicId: a.publicId,
          name: a.name,
          scope: a.scope,
          createdAt: a.createdAt.toISOString(),
          lastUsedAt: a.lastUsedAt?.toISOString() ?? null,
        }));
        list(io.stdout, rows, ['id', 'name', 'scope', 'createdAt', 'lastUsedAt'], opts.json);
      });
    });
  apps
    .command('create <address> <name>')
    .description('create an app password and print it (shown once)')
    .option('--scope <scope>', 'all (every mail protocol) | contacts (CardDAV only)', 'all')
    .option('--json', 'machine-readable output')
    .action(async (address: string, name: string, opts: { scope: string; json?: boolean }, cmd: Command) => {
      if (!(APP_PASSWORD_SCOPES as readonly string[]).includes(opts.scope)) throw new CliError(`invalid scope "${opts.scope}": expected ${APP_PASSWORD_SCOPES.join(' or ')}`, EXIT.usage);
      await withServices(globals(cmd), async (s) => {
        const a = await s.accounts.addAppPassword(await s.accounts.get(address), name, opts.scope as AppPasswordScope);
        if (opts.json) printJson(io.stdout, { id: a.id, publicId: a.publicId, name: a.name, scope: a.scope, createdAt: a.createdAt.toISOString(), password: a.password });
        else io.stdout.write(`app password ${a.id} "${a.name}" (scope ${a.scope}) for ${address}:\n${a.password}\n`);
      });
    });
  apps
    .command('revoke <address> <id>')
    .description('revoke an app password (its number or public id) and the sessions opened with it')
    .action(async (address: string, id: string, _o, cmd: Command) => {
      await withServices(globals(cmd), async (s) => {
        await s.accounts.revokeAppPassword(await s.accounts.get(address), id);
        io.stdout.write(`revoked app password ${id} of ${address}\n`);
      });
    });
}
