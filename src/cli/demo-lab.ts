/**
 * The demo's little internet on loopback: one embedded DNS server, a private
 * CA, and one twoway server per domain, each on its own 127.0.0.x address
 * with the same SMTP port (as MX hosts share port 25). Domains with Two-Way
 * Mail get a certificate for `twm.<domain>` and publish SRV and key records;
 * every domain publishes MX, SPF, DKIM and DMARC. `lab = true` lets the TWM
 * client reach loopback, which a production server refuses.
 */
import { createServer } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseConfig } from '../config/load.ts';
import { dkimRecordValue, ensureMaterials } from '../config/materials.ts';
import { createPrivateCa, issueCertificate, type PemPair } from '../config/private-ca.ts';
import { renderConfig } from '../config/template.ts';
import { keyRecordValue } from '../core/twm-key-record.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../dns/embedded-server.ts';
import type { DnsRecord } from '../dns/types.ts';
import { startServer, type RunningServer } from '../main.ts';

export interface LabDomain {
  domain: string;
  host: string;
  twm: boolean;
}

export interface Lab {
  dns: EmbeddedDnsServer;
  servers: Map<string, RunningServer>;
  close(): Promise<void>;
}

/** A TCP port free on every given address (servers that must share one, like MX hosts on port 25). */
export async function commonFreePort(hosts: string[]): Promise<number> {
  const listen = (host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, host, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  for (let i = 0; i < 20; i++) {
    const port = await listen(hosts[0]!, 0);
    try {
      for (const h of hosts.slice(1)) await listen(h, port);
      return port;
    } catch {
      // taken on another address: try another
    }
  }
  throw new Error(`no free port common to ${hosts.join(', ')}`);
}

export async function startLab(dir: string, domains: LabDomain[], logger: Logger): Promise<Lab> {
  const dns = await startDnsServer();
  const servers = new Map<string, RunningServer>();
  const close = async () => {
    for (const s of servers.values()) await s.close();
    await dns.close();
  };
  try {
    const ca = createPrivateCa('twoway demo CA');
    mkdirSync(dir, { recursive: true });
    const caFile = join(dir, 'demo-ca.pem');
    writeFileSync(caFile, ca.cert);
    const port = await commonFreePort(domains.map((d) => d.host));
    for (const d of domains) {
      const home = join(dir, d.domain);
      mkdirSync(home, { recursive: true });
      let text = renderConfig({ hostname: `mx.${d.domain}`, domains: [d.domain], smtpPort: port, submissionPort: 0, httpPort: 0, imapPort: 0, imapsPort: 0, deliveryPort: port, deliveryLab: true, metricsPort: 0, dns: [dns.address] })
        .replaceAll('host = "0.0.0.0"', `host = "${d.host}"`)
        .replace('[delivery]\n', `[delivery]\nbind_address = "${d.host}"\nmin_backoff = "2s"\n`);
      if (d.twm) text += `\n${labTwmSection({ ca, caFile, dir: home, domain: d.domain, host: d.host, extra: ['fetch_jitter = "1s"', 'approval_delay = "1s"'] })}\n`;
      const file = join(home, 'twoway.toml');
      writeFileSync(file, text, { mode: 0o600 });
      const server = await startServer(parseConfig(text, file), { logger });
      servers.set(d.domain, server);
      dns.add(labRecords(server, d));
    }
    return { dns, servers, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The [twm] section of a lab server for `domain` on `host`: a certificate for
 * `twm.<domain>` from the lab CA (written into `dir`), the CA as the only
 * trust anchor, and `lab = true` (loopback targets; never in production).
 * Port 0 picks a free port; `extra` lines are appended.
 */
export function labTwmSection(o: { ca: PemPair; caFile: string; dir: string; domain: string; host: string; port?: number; extra?: string[] }): string {
  const pair = issueCertificate(o.ca, [`twm.${o.domain}`]);
  const cert = join(o.dir, `${o.domain}.crt`);
  const key = join(o.dir, `${o.domain}.key`);
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  return [
    '[twm]',
    'enabled = true',
    `host = "${o.host}"`,
    `port = ${o.port ?? 0}`,
    `public_host = "twm.${o.domain}"`,
    `cert = ${JSON.stringify(cert)}`,
    `cert_key = ${JSON.stringify(key)}`,
    `trust_anchors = [${JSON.stringify(o.caFile)}]`,
    '# loopback targets are refused unless lab is on: never in production',
    'lab = true',
    ...(o.extra ?? []),
  ].join('\n');
}

/**
 * What a lab domain publishes: MX, SPF, DMARC, both DKIM keys, and with TWM
 * its SRV record, the target's A record and the TWM key. `ttl` applies to the
 * SRV and A records (tests that move an endpoint use short ones).
 */
export function labRecords(server: RunningServer, d: LabDomain, options: { ttl?: number } = {}): DnsRecord[] {
  const { dkim, twm } = ensureMaterials(server.config);
  const ttl = options.ttl === undefined ? {} : { ttl: options.ttl };
  const records: DnsRecord[] = [
    { name: d.domain, type: 'MX', data: { preference: 10, exchange: `mx.${d.domain}` } },
    { name: `mx.${d.domain}`, type: 'A', data: d.host },
    { name: d.domain, type: 'TXT', data: `v=spf1 ip4:${d.host} -all` },
    { name: `_dmarc.${d.domain}`, type: 'TXT', data: 'v=DMARC1; p=reject' },
    { name: `${dkim.rsa.selector}._domainkey.${d.domain}`, type: 'TXT', data: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa') },
    { name: `${dkim.ed25519.selector}._domainkey.${d.domain}`, type: 'TXT', data: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519') },
  ];
  if (twm && server.twm) {
    records.push(
      { name: `_twoway._tcp.${d.domain}`, type: 'SRV', ...ttl, data: { priority: 10, weight: 10, port: server.twm.port, target: `twm.${d.domain}` } },
      { name: `twm.${d.domain}`, type: 'A', ...ttl, data: d.host },
      { name: `${twm.selector}._twoway.${d.domain}`, type: 'TXT', data: keyRecordValue(Buffer.from(twm.publicKeyBase64, 'base64'), { testing: server.config.twm.testing }) },
    );
  }
  return records;
}
