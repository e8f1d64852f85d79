/**
 * Integration-test harness: a real twoway server on loopback (SMTP and HTTP
 * on port 0) with the embedded DNS server as its only resolver, a fresh
 * data directory on disk (SQLite, WAL, synchronous=FULL) and silent logs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import nodemailer from 'nodemailer';
import { dkimSign } from 'mailauth';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import { renderConfig } from '../../src/config/template.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../../src/dns/embedded-server.ts';
import type { DnsRecord } from '../../src/dns/types.ts';
import { startServer, type RunningServer } from '../../src/app.ts';
import type { Clock } from '../../src/core/clock.ts';

export interface TestServer {
  server: RunningServer;
  dns: EmbeddedDnsServer;
  dir: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  domain?: string;
  records?: DnsRecord[];
  /** Share a DNS server between several test servers (it is then not closed by close()). */
  dns?: EmbeddedDnsServer;
  /** The loopback address every listener binds to (default 127.0.0.1). */
  host?: string;
  smtpPort?: number;
  /** The port of remote MX hosts for outbound delivery. */
  deliveryPort?: number;
  /** `delivery.lab` (default: on when deliveryPort is given, since peers listen on loopback). */
  deliveryLab?: boolean;
  storage?: string;
  extraToml?: string;
  edit?: (toml: string) => string;
  /** The server's clock (createOffsetClock): tests move time instead of sleeping. */
  clock?: Clock;
  /** The server's logger (default: silent, or TWOWAY_TEST_LOG's level). */
  logger?: import('pino').Logger;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const domain = options.domain ?? 'example.test';
  const ownDns = !options.dns;
  const dns = options.dns ?? (await startDnsServer({ records: options.records ?? [] }));
  if (options.dns && options.records) dns.add(options.records);
  const dir = mkdtempSync(join(tmpdir(), 'twoway-test-'));
  let text = renderConfig({
    hostname: `mx.${domain}`,
    domains: [domain],
    smtpPort: options.smtpPort ?? 0,
    submissionPort: 0,
    httpPort: 0,
    imapPort: 0,
    imapsPort: 0,
    deliveryPort: options.deliveryPort,
    metricsPort: 0,
    deliveryLab: options.deliveryLab ?? options.deliveryPort !== undefined,
    dns: [dns.address],
    storage: options.storage,
  });
  // SMTP and submission bind to `host`; the HTTP API stays on 127.0.0.1.
  text = text.replaceAll('host = "0.0.0.0"', `host = "${options.host ?? '127.0.0.1'}"`);
  // Outgoing SMTP leaves from the same address, as a host's would (SPF names it).
  if (options.host) text = text.replace('[delivery]\n', `[delivery]\nbind_address = "${options.host}"\n`);
  text += options.extraToml ?? '';
  if (options.edit) text = options.edit(text);
  // On disk too, so tests can run the CLI against the same server (`--config`).
  writeFileSync(join(dir, 'twoway.toml'), text);
  const config = parseConfig(text, join(dir, 'twoway.toml'));
  const server = await startServer(config, { logger: options.logger ?? pino({ level: process.env.TWOWAY_TEST_LOG ?? 'silent' }), ...(options.clock ? { clock: options.clock } : {}) });
  return {
    server,
    dns,
    dir,
    async close() {
      await server.close();
      if (ownDns) await dns.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { commonFreePort } from '../../src/cli/demo-lab.ts';

/** A clock that runs with the system time plus an offset the test moves forward (sockets and timers stay real). */
export function createOffsetClock(): Clock & { advance(ms: number): void; offsetMs(): number } {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance(ms: number) {
      offset += ms;
    },
    offsetMs: () => offset,
  };
}

/** Sends over SMTP submission with AUTH (STARTTLS first; the certificate is self-signed). */
export async function submit(o: { port: number; host?: string; user: string; pass: string; from?: string; to: string | string[]; subject?: string; text?: string; raw?: Buffer; envelopeFrom?: string }): Promise<string> {
  const transport = nodemailer.createTransport({
    host: o.host ?? '127.0.0.1',
    port: o.port,
    auth: { user: o.user, pass: o.pass },
    requireTLS: true,
    tls: { rejectUnauthorized: false },
  });
  try {
    const envelope = { from: o.envelopeFrom ?? o.from ?? o.user, to: o.to };
    const info = o.raw
      ? await transport.sendMail({ envelope, raw: o.raw })
      : await transport.sendMail({ envelope, from: o.from ?? o.user, to: o.to, subject: o.subject ?? 'Hello', text: o.text ?? 'Hello there.\n' });
    return info.response;
  } finally {
    transport.close();
  }
}

/** Polls until `check` returns a value (not undefined/false) or the time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A sender domain that publishes SPF for 127.0.0.1 only, a DMARC policy and a DKIM key. */
export function senderDomain(domain: string, selector = 'sel') {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const records: DnsRecord[] = [
    { name: domain, type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: `_dmarc.${domain}`, type: 'TXT', data: 'v=DMARC1; p=reject' },
    { name: `${selector}._domainkey.${domain}`, type: 'TXT', data: `v=DKIM1; k=rsa; p=${publicKey.toString('base64')}` },
  ];
  return {
    records,
    async sign(raw: Buffer): Promise<Buffer> {
      // mailauth's typings describe a flat options object; its signer reads signatureData[].
      const options = { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: domain, selector, privateKey }] };
      const { signatures, errors } = await dkimSign(raw, options as unknown as Parameters<typeof dkimSign>[1]);
      if (errors?.length) throw new Error(`DKIM signing failed: ${String(errors[0])}`);
      return Buffer.concat([Buffer.from(signatures), raw]);
    },
  };
}

export interface SendOptions {
  port: number;
  from: string;
  to: string | string[];
  raw?: Buffer;
  subject?: string;
  text?: string;
  headers?: Record<string, string>;
  /** Source address on loopback: 127.0.0.1 passes the test domains' SPF, 127.0.0.2 fails it. */
  localAddress?: string;
  envelopeFrom?: string;
  /** The server's address (default 127.0.0.1). */
  host?: string;
}

/** Sends over real SMTP with nodemailer (STARTTLS, certificate not verified: it is self-signed). */
export async function send(o: SendOptions): Promise<string> {
  const transport = nodemailer.createTransport({
    host: o.host ?? '127.0.0.1',
    port: o.port,
    localAddress: o.localAddress ?? '127.0.0.1',
    name: o.from.split('@')[1],
    tls: { rejectUnauthorized: false },
  });
  try {
    const envelope = { from: o.envelopeFrom ?? o.from, to: o.to };
    const info = o.raw
      ? await transport.sendMail({ envelope, raw: o.raw })
      : await transport.sendMail({ envelope, from: o.from, to: o.to, subject: o.subject ?? 'Hello', text: o.text ?? 'Hello there.\n', headers: o.headers });
    return info.response;
  } finally {
    transport.close();
  }
}

/** Builds a minimal RFC 5322 message. */
export function rawMessage(from: string, to: string, subject: string, extra = ''): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@test>\r\n${extra}\r\nBody of ${subject}.\r\n`,
  );
}
