/**
 * `twoway doctor`: checks a deployment from the configuration alone. DNS as
 * the configured resolvers answer it (against what `twoway dns` prints), the
 * keys on disk against the published keys, the TLS certificates, each
 * listener, and rspamd when [spam] is present. Every check is a value (types.ts); the CLI only prints them.
 */
import type { Config } from '../config/load.ts';
import type { Materials } from '../config/materials.ts';
import { recordsToPublish } from '../config/published-records/dns-records.ts';
import { twmRecordsToPublish } from '../config/published-records/twm-records.ts';
import { carddavRecords } from '../config/published-records/carddav-records.ts';
import type { DnsResolver } from '../dns/types.ts';
import { checkDns, type ExpectedKeys } from './dns-checks.ts';
import { publishedKeyOf } from './keys.ts';
import { checkListener, type ListenerToCheck } from './listener-checks.ts';
import { checkCertificate, type CertificateToCheck } from './tls-checks.ts';
import { checkSpam } from './spam-checks.ts';
import type { CheckResult } from './types.ts';

export type { CheckResult, CheckStatus } from './types.ts';

export interface DoctorOptions {
  resolver: DnsResolver;
  now?: Date;
  connectTimeoutMs?: number;
}

export async function runDoctor(config: Config, materials: Materials, options: DoctorOptions): Promise<CheckResult[]> {
  const now = options.now ?? new Date();
  const expected = [...recordsToPublish(config, materials.dkim), ...twmRecordsToPublish(config, materials.twm), ...carddavRecords(config)];
  const [dns, listeners, spam] = await Promise.all([
    checkDns(expected, options.resolver, expectedKeys(config, materials)),
    Promise.all(listenersOf(config).map((l) => checkListener(l, options.connectTimeoutMs ?? 3000))),
    config.spam ? checkSpam(config.spam, options.connectTimeoutMs ?? 3000) : [],
  ]);
  const tls = certificatesOf(config).flatMap((c) => checkCertificate(c, now));
  return [...dns, ...tls, ...listeners, ...spam];
}

/** The keys DNS must carry, derived from the private keys (not from the records `twoway dns` prints). */
function expectedKeys(config: Config, materials: Materials): ExpectedKeys {
  const keys: ExpectedKeys = new Map();
  for (const domain of config.domains) {
    keys.set(`${materials.dkim.rsa.selector}._domainkey.${domain}.`, { key: publishedKeyOf(materials.dkim.rsa.privateKey), file: config.dkim.key });
    keys.set(`${materials.dkim.ed25519.selector}._domainkey.${domain}.`, { key: publishedKeyOf(materials.dkim.ed25519.privateKey), file: config.dkim.ed25519Key });
    if (materials.twm) keys.set(`${materials.twm.selector}._twoway.${domain}.`, { key: publishedKeyOf(materials.twm.privateKey), file: config.twm.key });
  }
  return keys;
}

function listenersOf(config: Config): ListenerToCheck[] {
  return [
    { name: 'smtp', ...config.smtp },
    ...(config.submission.enabled ? [{ name: 'submission', host: config.submission.host, port: config.submission.port }] : []),
    { name: 'http', host: config.http.host, port: config.http.port },
    ...(config.twm.enabled ? [{ name: 'twm', host: config.twm.host, port: config.twm.port }] : []),
  ];
}

function certificatesOf(config: Config): CertificateToCheck[] {
  const main: CertificateToCheck = { label: 'tls', file: config.tls.cert, names: [config.hostname], generated: config.tls.generated };
  if (!config.twm.enabled) return [main];
  if (config.twm.tls === null) return [{ ...main, names: [...new Set([config.hostname, config.twm.publicHost])] }];
  return [main, { label: 'twm.tls', file: config.twm.tls.cert, names: [config.twm.publicHost] }];
}
