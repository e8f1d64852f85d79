/**
 * TWM failure reports (docs/protocol.md 6.6, modelled on RFC 8460): the
 * counters (`store.twmReports`) are filled as TWM exchanges succeed or fail;
 * once a day the report job (a cluster sweep, so one process of the cluster
 * sends) mails each domain that publishes `_twoway-report.<domain>` one
 * RFC 8460 section 4 report per finished UTC day, through the normal
 * outbound path (queued, delivered by SMTP or TWM like any mail: DKIM-signed
 * at the SMTP hand-off when it goes by SMTP).
 *
 * - A domain without a record, or with a malformed one, gets nothing and its
 *   counters go. A temporary DNS failure keeps them for the next run, for at
 *   most a week.
 * - Counters are by result type: the peer's `twm_error` for refused notices
 *   (or `http-<status>`), `fetch-…` and `receipt-…` by cause, `success`.
 * - Report messages follow RFC 8460 5.3 (multipart/report, the JSON as an
 *   attachment named per 5.3), with `TWM-Report-Domain` and
 *   `TWM-Report-Submitter` in place of the TLS ones.
 */
import { randomBytes } from 'node:crypto';
import { buildReport, parseReportRecord, reportFileName } from '../core/twm-report.ts';
import type { DnsResolver } from '../dns/types.ts';
import { formatRfc5322Date } from '../mail/date.ts';
import type { QueueRepository, TwmReportRepository } from '../store/types.ts';

/** Days a domain's counters wait out temporary DNS failures. */
const KEEP_DAYS = 7;
/** (domain, day) pairs handled per run: a backlog is worked off over several runs. */
const PER_RUN = 500;
const ANSWERED = new Set(['ENOTFOUND', 'ENODATA']);

/** The UTC day of `at`, `YYYY-MM-DD`: the counters' key. */
export const reportDay = (at: Date): string => at.toISOString().slice(0, 10);

export interface TwmReportsOptions {
  reports: TwmReportRepository;
  queue: Pick<QueueRepository, 'enqueue'>;
  resolver: Pick<DnsResolver, 'resolve'>;
  /** This server's name: the report's organization and submitter. */
  hostname: string;
  /** The sender and contact of reports: an address of one of our domains. */
  from: string;
  now: () => Date;
  onQueued?: () => void;
  log: (obj: object, msg: string) => void;
}

export function createTwmReports(o: TwmReportsOptions) {
  const { count, flush } = reportCounters(o);

  /** One run: every finished day's counters are reported (or dropped). Returns the reports queued. */
  async function run(): Promise<number> {
    await flush();
    const now = o.now();
    const today = reportDay(now);
    const oldest = reportDay(new Date(now.getTime() - KEEP_DAYS * 86_400_000));
    let sent = 0;
    for (const { domain, day } of await o.reports.finished(today, PER_RUN)) {
      const rua = await destinations(o, domain);
      if (rua === 'later' && day >= oldest) continue;
      if (rua !== 'later' && rua.length > 0) {
        await send(o, domain, day, rua, await o.reports.counts(domain, day));
        sent++;
      }
      await o.reports.remove(domain, day);
    }
    if (sent > 0) o.onQueued?.();
    return sent;
  }

  return { count, flush, run };
}

/**
 * Counts are kept in memory and written by flush() (every second, and
 * before each run): a write per exchange would cost a commit (an fsync)
 * per notice, fetch and receipt, and measured as a third of TWM's
 * throughput. A crash loses at most the last second's counts.
 */
function reportCounters(o: TwmReportsOptions) {
  const pending = new Map<string, { domain: string; day: string; resultType: string; n: number }>();
  /** Counts one outcome against `domain` today; never fails the exchange it describes. */
  function count(domain: string, resultType: string): void {
    const day = reportDay(o.now());
    const key = `${domain.toLowerCase()}\n${day}\n${resultType}`;
    const entry = pending.get(key);
    if (entry) entry.n++;
    else pending.set(key, { domain: domain.toLowerCase(), day, resultType, n: 1 });
  }
  /** Writes the counts kept so far; on failure they are kept for the next flush. */
  async function flush(): Promise<void> {
    if (pending.size === 0) return;
    const batch = [...pending.values()];
    pending.clear();
    try {
      await o.reports.add(batch);
    } catch (err) {
      for (const e of batch) {
        const key = `${e.domain}\n${e.day}\n${e.resultType}`;
        const entry = pending.get(key);
        if (entry) entry.n += e.n;
        else pending.set(key, e);
      }
      o.log({ err }, 'twm report counters not written; kept for the next flush');
    }
  }
  return { count, flush };
}

/** The report addresses a domain publishes (`_twoway-report`), or 'later' when DNS did not answer. */
async function destinations(o: TwmReportsOptions, domain: string): Promise<string[] | 'later'> {
  let txt: string[][];
  try {
    txt = (await o.resolver.resolve(`_twoway-report.${domain}`, 'TXT')) as string[][];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    return ANSWERED.has(code) ? [] : 'later';
  }
  const record = parseReportRecord(txt);
  if (!record && txt.some((t) => t.join('').startsWith('v=TWMRPT'))) o.log({ domain }, 'malformed _twoway-report record; treated as absent');
  return record?.rua ?? [];
}

/** One day's report for one domain, queued as mail to its `rua` addresses (signed as it leaves by SMTP). */
async function send(o: TwmReportsOptions, domain: string, day: string, rua: string[], counts: Map<string, number>): Promise<void> {
  const start = new Date(`${day}T00:00:00Z`);
  const meta = { organization: o.hostname, contact: o.from, reportId: `${day}_${domain}_${randomBytes(6).toString('hex')}`, start, end: new Date(start.getTime() + 86_400_000 - 1000) };
  const failures = new Map([...counts].filter(([k]) => k !== 'success'));
  const report = buildReport(meta, { domain, successes: counts.get('success') ?? 0, failures });
  const file = reportFileName(o.hostname, meta, domain);
  const boundary = `twmrpt-${randomBytes(9).toString('hex')}`;
  const json = Buffer.from(JSON.stringify(report)).toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = Buffer.from(
    [
      `From: ${o.from}`,
      `To: ${rua.join(', ')}`,
      `Subject: Report Domain: ${domain} Submitter: ${o.hostname} Report-ID: <${meta.reportId}>`,
      `Date: ${formatRfc5322Date(o.now())}`,
      `Message-ID: <${meta.reportId}@${o.hostname}>`,
      `TWM-Report-Domain: ${domain}`,
      `TWM-Report-Submitter: ${o.hostname}`,
      'Auto-Submitted: auto-generated',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type="twmrpt"; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      `Two-Way Mail report for ${domain}, ${day} (UTC), from ${o.hostname} (docs/protocol.md 6.6).`,
      '',
      `--${boundary}`,
      `Content-Type: application/twmrpt+json; name="${file}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename="${file}"`,
      '',
      json,
      '',
      `--${boundary}--`,
      '',
    ].join('\r\n'),
  );
  await o.queue.enqueue({ messageId: randomBytes(12).toString('hex'), sender: o.from, recipients: rua, raw, at: o.now() });
  o.log({ domain, day, rua }, 'twm failure report queued');
}

export type TwmReports = ReturnType<typeof createTwmReports>;
