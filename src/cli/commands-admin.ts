/** Server administration: init, start, dns, user. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseConfig } from '../config/load.ts';
import { ensureMaterials } from '../config/materials.ts';
import { renderConfig } from '../config/template.ts';
import { startServer } from '../main.ts';
import { parseMode, publicUser } from '../services/accounts.ts';
import { configPath, readConfig, readPassword, withServices, type GlobalOptions } from './context.ts';
import { recordsToPublish, zoneLine } from './dns-records.ts';
import { imapRecords } from './imap-records.ts';
import { carddavRecords } from './carddav-records.ts';
import { twmRecordsToPublish } from './twm-records.ts';
import { CliError, EXIT, list, printJson } from './output.ts';

const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

function portOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`invalid port "${value}": expected 0-65535`, EXIT.usage);
  return n;
}

export function registerAdminCommands(program: Command): void {
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
      process.stdout.write(`wrote ${file}\nnext: twoway user add you@${opts.domain} --config ${file}\n      twoway start --config ${file}\n`);
    });

  program
    .command('start')
    .description('run the server until SIGINT or SIGTERM')
    .action(async (_opts, cmd: Command) => {
      const config = readConfig(globals(cmd));
      const server = await startServer(config);
      const submission = server.submission ? `, submission on ${config.submission.host}:${server.submission.port}` : '';
      process.stdout.write(`twoway: SMTP on ${config.smtp.host}:${server.smtp.port}${submission}, API on ${server.http.url}/api\n`);
      await new Promise<void>((resolveStop) => {
        const stop = () => resolveStop();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
    });

  program
    .command('dns')
    .description('print the DNS records to publish')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const config = readConfig(globals(cmd));
      const materials = ensureMaterials(config);
      const records = [...recordsToPublish(config, materials.dkim), ...twmRecordsToPublish(config, materials.twm), ...carddavRecords(config), ...imapRecords(config)];
      if (opts.json) printJson(records);
      else process.stdout.write(records.map(zoneLine).join('\n') + '\n');
    });

  const user = program.command('user').description('manage accounts');
  user
    .command('add <address>')
    .description('create an account; the password is read from standard input')
    .option('--mode <mode>', 'open | screen | strict', 'open')
    .action(async (address: string, opts: { mode: string }, cmd: Command) => {
      const mode = parseMode(opts.mode);
      configPath(globals(cmd)); // fail on a missing config before asking for a password
      const password = await readPassword();
      await withServices(globals(cmd), async (s) => {
        const u = await s.accounts.add(address, password, mode);
        process.stdout.write(`added ${u.address} (mode ${u.mode})\n`);
      });
    });
  user
    .command('list')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withServices(globals(cmd), async (s) => list((await s.accounts.list()).map(publicUser) as unknown as Array<Record<string, unknown>>, ['address', 'mode', 'createdAt'], opts.json));
    });
  user
    .command('mode <address> <mode>')
    .description('set the screening mode: open | screen | strict')
    .action(async (address: string, mode: string, _o, cmd: Command) => {
      const m = parseMode(mode);
      await withServices(globals(cmd), async (s) => {
        const u = await s.accounts.setMode(address, m);
        process.stdout.write(`${u.address}: mode ${u.mode}\n`);
      });
    });
  user
    .command('reveal-declined <address> <on|off>')
    .description('whether denying a Two-Way Mail sender tells their server (a "declined" receipt); off by default')
    .action(async (address: string, value: string, _o, cmd: Command) => {
      if (value !== 'on' && value !== 'off') throw new CliError(`invalid value "${value}": expected on or off`, EXIT.usage);
      await withServices(globals(cmd), async (s) => {
        const u = await s.accounts.setRevealDeclined(address, value === 'on');
        process.stdout.write(`${u.address}: reveal declined ${u.revealDeclined ? 'on' : 'off'}\n`);
      });
    });
  user
    .command('passwd <address>')
    .description('set the password, read from standard input')
    .action(async (address: string, _o, cmd: Command) => {
      configPath(globals(cmd));
      const password = await readPassword('New password: ');
      await withServices(globals(cmd), async (s) => {
        await s.accounts.setPassword(address, password);
        process.stdout.write(`password changed for ${address}\n`);
      });
    });
}
