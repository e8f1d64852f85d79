/**
 * `twoway demo`: a complete server for a demo domain on loopback, with no
 * setup. The embedded DNS server publishes the sender domains' SPF and
 * DMARC records; real SMTP clients send three messages (an allowed sender, a
 * stranger, and a forgery of the allowed sender from another address); the
 * demo prints where each landed and the commands to look further.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import nodemailer from 'nodemailer';
import { parseConfig } from '../config/load.ts';
import { renderConfig } from '../config/template.ts';
import { startDnsServer } from '../dns/embedded-server.ts';
import { createResolver } from '../dns/resolver.ts';
import { startServer } from '../main.ts';
import { createLogger } from '../main.ts';
import { CliError, EXIT } from './output.ts';

const DOMAIN = 'demo.test';
const MARKER = '.twoway-demo';

interface DemoMessage {
  label: string;
  from: string;
  localAddress: string;
  subject: string;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a demo server on loopback and show where allowed and unknown senders land')
    .option('--dir <dir>', 'where the demo keeps its configuration and data', 'twoway-demo')
    .option('--keep-running', 'keep the server running after the demo (Ctrl-C stops it)')
    .action(async (opts: { dir: string; keepRunning?: boolean }) => runDemo(opts));
}

export async function runDemo(opts: { dir: string; keepRunning?: boolean }): Promise<void> {
  const dir = resolve(opts.dir);
  if (existsSync(dir)) {
    if (!existsSync(join(dir, MARKER))) throw new CliError(`${dir} exists and is not a demo directory; choose another --dir`, EXIT.conflict);
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, MARKER), 'created by twoway demo; removed by the next run\n');

  const dns = await startDnsServer({
    records: [
      { name: DOMAIN, type: 'MX', data: { preference: 10, exchange: `mx.${DOMAIN}` } },
      { name: `mx.${DOMAIN}`, type: 'A', data: '127.0.0.1' },
      // friends.test sends only from 127.0.0.1, and says so with SPF and DMARC.
      { name: 'friends.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { name: '_dmarc.friends.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
      { name: 'elsewhere.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    ],
  });
  const configFile = join(dir, 'twoway.toml');
  const text = renderConfig({ hostname: `mx.${DOMAIN}`, domains: [DOMAIN], smtpPort: 0, submissionPort: 0, httpPort: 0, dns: [dns.address] }).replaceAll(
    'host = "0.0.0.0"',
    'host = "127.0.0.1"',
  );
  writeFileSync(configFile, text, { mode: 0o600 });
  const config = parseConfig(text, configFile);
  const out = (s = '') => process.stdout.write(s + '\n');

  out(`Two-Way Mail demo: domain ${DOMAIN}, data in ${dir}`);
  out(`  embedded DNS on ${dns.address}; starting the server (SQLite, self-signed TLS)…`);
  const server = await startServer(config, { logger: createLogger('warn') });
  try {
    const { accounts, contacts, mail } = server.services;
    const alice = await accounts.add(`alice@${DOMAIN}`, 'demo-password', 'screen');
    await contacts.allow(alice.id, 'bob@friends.test');
    out(`  SMTP on 127.0.0.1:${server.smtp.port}, HTTP API on ${server.http.url}/api`);
    out(`  user alice@${DOMAIN} (password "demo-password", mode screen); her address book allows bob@friends.test`);
    out();

    const mx = (await createResolver({ servers: [dns.address] }).resolve(DOMAIN, 'MX'))[0]!;
    const messages: DemoMessage[] = [
      { label: 'allowed sender', from: 'bob@friends.test', localAddress: '127.0.0.1', subject: 'Lunch on Friday?' },
      { label: 'stranger', from: 'carol@elsewhere.test', localAddress: '127.0.0.1', subject: 'Quick question about your talk' },
      { label: 'forged allowed sender', from: 'bob@friends.test', localAddress: '127.0.0.2', subject: 'Urgent: wire transfer' },
    ];
    for (const m of messages) {
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: server.smtp.port,
        name: m.from.split('@')[1],
        localAddress: m.localAddress,
        // The demo server's certificate is self-signed; STARTTLS is still used.
        tls: { rejectUnauthorized: false, servername: mx.exchange },
      });
      const info = await transport.sendMail({
        from: m.from,
        to: `alice@${DOMAIN}`,
        subject: m.subject,
        text: `Hello Alice,\n\nthis is the ${m.label} of the demo.\n`,
      });
      transport.close();
      out(`sent  ${m.label.padEnd(22)} From: ${m.from} via ${m.localAddress} (MX ${mx.exchange})  -> ${info.response}`);
    }
    out();

    const landed = await mail.list(alice.id);
    for (const msg of landed.sort((a, b) => a.id - b.id)) {
      out(`alice's ${msg.mailbox.padEnd(8)}  #${msg.id}  ${msg.from}  "${msg.subject}"${msg.firstContact ? '  (first contact)' : ''}`);
    }
    out();
    const rel = relative(process.cwd(), configFile) || configFile;
    out('How to look:');
    out(`  npx twoway mail list alice@${DOMAIN} --config ${rel}`);
    out(`  npx twoway mail show alice@${DOMAIN} <id> --config ${rel}      (see Authentication-Results)`);
    out(`  npx twoway requests list alice@${DOMAIN} --config ${rel}`);
    out(`  npx twoway requests approve alice@${DOMAIN} carol@elsewhere.test --config ${rel}`);
    if (opts.keepRunning) {
      out(`  curl -s --cacert ${relative(process.cwd(), config.tls.cert)} -u alice@${DOMAIN}:demo-password ${server.http.url}/api/messages`);
      out();
      out('The server keeps running; Ctrl-C stops it.');
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
    }
  } finally {
    await server.close();
    await dns.close();
  }
}
