/**
 * Two-Way Mail test domains: each a real twoway server on its own loopback
 * address with SMTP, submission and the TWM endpoint, a certificate for
 * `twm.<domain>` from a private CA that every server trusts, and the MX, SPF,
 * DKIM, DMARC, SRV and key records in one shared embedded DNS server.
 * `lab = true` lets them reach each other on loopback.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth';
import { labRecords, labTwmSection } from '../../src/cli/demo-lab.ts';
import { createPrivateCa, type PemPair } from '../../src/config/private-ca.ts';
import type { Clock } from '../../src/core/clock.ts';
import type { EmbeddedDnsServer } from '../../src/dns/embedded-server.ts';
import { createResolver, toResolveFunction } from '../../src/dns/resolver.ts';
import { startTestServer, type TestServer } from './server.ts';

export interface TwmLab {
  ca: PemPair;
  caFile: string;
  dir: string;
  close(): void;
}

export function createTwmLab(): TwmLab {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-twm-lab-'));
  const ca = createPrivateCa('twoway test CA');
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.cert);
  return { ca, caFile, dir, close: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface DomainOptions {
  lab: TwmLab;
  dns: EmbeddedDnsServer;
  domain: string;
  host: string;
  /** The SMTP port shared by every domain (MX hosts all listen on it). */
  smtpPort: number;
  /** false: a legacy domain (no [twm], no SRV record). */
  twm?: boolean;
  /** Extra lines for the [twm] section. */
  twmToml?: string;
  extraToml?: string;
  /** Edits the rendered config (e.g. the [delivery] section). */
  edit?: (toml: string) => string;
  clock?: Clock;
}

/** Starts a server for `domain` and publishes its records. */
export async function startDomain(o: DomainOptions): Promise<TestServer> {
  const twm = o.twm ?? true;
  const twmToml = twm
    ? labTwmSection({
        ca: o.lab.ca,
        caFile: o.lab.caFile,
        dir: o.lab.dir,
        domain: o.domain,
        host: o.host,
        extra: ['fetch_jitter = "1s"', 'approval_delay = "1s"', 'decline_delay = "1s"', o.twmToml ?? ''],
      })
    : '';
  const t = await startTestServer({
    domain: o.domain,
    dns: o.dns,
    host: o.host,
    smtpPort: o.smtpPort,
    deliveryPort: o.smtpPort,
    extraToml: `${o.extraToml ?? ''}\n${twmToml}`,
    ...(o.edit ? { edit: o.edit } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
  });
  // Short TTLs: tests move a domain's endpoint (a sender that is down during a fetch).
  o.dns.add(labRecords(t.server, { domain: o.domain, host: o.host, twm }, { ttl: 1 }));
  return t;
}

/**
 * The DKIM signatures of `raw` as mailauth verifies them against the lab's DNS: one
 * "domain algorithm result" per signature, sorted ("a.test rsa-sha256 pass").
 */
export async function dkimResults(dns: EmbeddedDnsServer, raw: string | Buffer): Promise<string[]> {
  const resolver = toResolveFunction(createResolver({ servers: [dns.address], cacheTtlCapSeconds: 0 }));
  const verified = await dkimVerify(Buffer.isBuffer(raw) ? raw : Buffer.from(raw), { resolver } as unknown as Parameters<typeof dkimVerify>[1]);
  return verified.results.map((r) => `${r.signingDomain} ${/header\.a=([\w-]+)/.exec(r.info)?.[1]} ${r.status.result}`).sort();
}
