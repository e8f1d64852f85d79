/**
 * The parts of `[twm] dnssec` (docs/protocol.md 3.4-3.6) the composition
 * root hands to the TWM client and inbox: the AD-reading resolver, the
 * policy source, the secure key lookup, and the problem log, which says
 * each problem once per domain per hour (a busy peer with a broken record
 * must not flood the log, yet the operator must hear of it).
 */
import type { Logger } from 'pino';
import type { Config } from './config/load.ts';
import { createSecureResolver } from './dns/secure-resolver.ts';
import type { DnsResolver } from './dns/types.ts';
import { createPolicySource } from './delivery/twm-policy-source.ts';
import { createSecureKeyLookup } from './endpoints/twm/key-lookup-secure.ts';
import type { TwmClientOptions } from './delivery/twm-client-types.ts';

const HOUR_MS = 3_600_000;

/** Calls `log` for a domain at most once an hour (the first problem of the hour wins). */
export function oncePerDomainPerHour(log: (domain: string, problem: string) => void, now: () => number = Date.now) {
  const last = new Map<string, number>();
  return (domain: string, problem: string): void => {
    const t = now();
    const seen = last.get(domain);
    if (seen !== undefined && t - seen < HOUR_MS) return;
    if (last.size >= 10_000) last.clear();
    last.set(domain, t);
    log(domain, problem);
  };
}

export function dnssecParts(config: Config, resolver: DnsResolver, trustAnchors: string[], log: Logger) {
  const mode = config.twm.dnssec;
  if (mode === 'off') return { client: {} satisfies Partial<TwmClientOptions>, lookupKey: undefined };
  const onProblem = oncePerDomainPerHour((domain, problem) => log.warn({ domain, problem }, 'twm: DNS record or policy problem'));
  const secure = createSecureResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs });
  const policies = createPolicySource({ resolver, secure, trustAnchors, lab: config.twm.lab, port: config.twm.policyPort, onProblem });
  const client = { dnssec: mode, secure, policies, onProblem } satisfies Partial<TwmClientOptions>;
  const lookupKey = createSecureKeyLookup({ mode, secure, policyFor: (d) => policies.get(d), onProblem });
  return { client, lookupKey };
}
