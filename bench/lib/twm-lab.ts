/**
 * Two-Way Mail for benchmark children (bench/lib/twoway-server.ts): the
 * [twm] section of a domain's config, with a certificate for `twm.<domain>`
 * from the private CA of test/helpers/twm.ts, and the DNS records that
 * publish its endpoint (SRV, A) and key. `lab = true` lets the servers
 * reach each other on loopback, as in the integration tests.
 */
import { labTwmSection } from '../../src/cli/demo-lab.ts';
import type { DnsRecord } from '../../src/dns/types.ts';
import type { TwmLab } from '../../test/helpers/twm.ts';

export { createTwmLab, type TwmLab } from '../../test/helpers/twm.ts';

/**
 * Notices per second and burst per sending domain for benchmarks: the
 * defaults (10/s, burst 200) are a production guard against one domain
 * flooding a recipient; a benchmark that sends thousands of notices from one
 * domain on purpose must not measure 429s.
 */
export const BENCH_NOTICE_RATE = 1_000_000;

/**
 * The TWM endpoint's per-client-address limit (protocol 12.7: 20 requests/s,
 * burst 100, before verification) for benchmarks. Between two servers every
 * TWM message costs three requests (notice A->B, fetch and receipt B->A),
 * each from one address, so the default caps a server pair at about 7-10
 * messages/s, and 10,000 notices from one driver address would be mostly
 * 429s. Raised through `[twm] client_requests_per_second` / `client_burst`.
 */
export const BENCH_TWM_CLIENT_RATE = { perSecond: 1_000_000, burst: 1_000_000 };

/**
 * The fetch jitter of the benchmark servers: "0s" by default, so that the
 * figures measure the protocol and the implementation. The jitter is a
 * deliberate privacy delay (protocol 8.4, default 10 s: fetch timing must not
 * tell the sender when the user reads mail); it adds up to its value to every
 * TWM latency. BENCH_FETCH_JITTER=1s measures with it.
 */
export const BENCH_FETCH_JITTER = process.env.BENCH_FETCH_JITTER ?? '0s';

/** The [twm] section for `domain` served on `host` (the endpoint on a free port). */
export function twmSection(lab: TwmLab, domain: string, host: string, extra: string[] = []): string {
  return labTwmSection({
    ca: lab.ca,
    caFile: lab.caFile,
    dir: lab.dir,
    domain,
    host,
    extra: [
      `fetch_jitter = "${BENCH_FETCH_JITTER}"`,
      `notices_per_second = ${BENCH_NOTICE_RATE}`,
      `notice_burst = ${BENCH_NOTICE_RATE}`,
      // Two servers exchanging hundreds of messages a second exceed the per-address default (20/s).
      `client_requests_per_second = ${BENCH_TWM_CLIENT_RATE.perSecond}`,
      `client_burst = ${BENCH_TWM_CLIENT_RATE.burst}`,
      ...extra,
    ],
  });
}

/** SRV and A of `domain`'s TWM endpoint on `host:port`, plus its key record(s). */
export function twmRecords(domain: string, host: string, port: number, keyRecords: Array<{ name: string; type: 'TXT'; data: string }>): DnsRecord[] {
  return [
    { name: `_twoway._tcp.${domain}`, type: 'SRV', data: { priority: 10, weight: 10, port, target: `twm.${domain}` } },
    { name: `twm.${domain}`, type: 'A', data: host },
    ...keyRecords.filter((r) => r.name.endsWith(`._twoway.${domain}`)),
  ];
}
