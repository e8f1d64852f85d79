/**
 * TWM failure reports (docs/protocol.md 6.6 "Failure reports.", modelled on
 * SMTP TLS reporting, RFC 8460): the `_twoway-report.<domain>` TXT record
 * that names where a domain wants its reports, and the daily JSON report of
 * RFC 8460 section 4 with `policy-type` "twm". Pure: the caller does the DNS
 * query, keeps the counts and mails the report.
 *
 * The record is read strictly (issue "Bad input"): exactly one record whose
 * first tag is the whole token `v=TWMRPTv1`, a valid tag list without
 * repeats, and `rua` a comma-separated list of `mailto:` URIs of which at
 * least one is a plain address. Anything else is treated as no record.
 * `https:` destinations (RFC 8460 3) are not supported and skipped.
 */
import { parseTagList } from './twm-key-record.ts';

export interface ReportRecord {
  /** The addresses the report goes to (at most MAX_RUA), as written after `mailto:`. */
  rua: string[];
}

/** Destinations used per domain: a record cannot make one report into many messages. */
export const MAX_RUA = 2;
const MAILBOX = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function parseReportRecord(txt: string[][]): ReportRecord | null {
  const candidates = txt.map((strings) => strings.join('')).filter((text) => /^[ \t]*v=TWMRPTv1[ \t]*(;|$)/.test(text));
  if (candidates.length !== 1) return null;
  const text = candidates[0]!;
  if (text.length > 2048) return null;
  const tags = parseTagList(text);
  if (!tags) return null;
  const [first] = tags;
  if (first?.[0] !== 'v' || first[1] !== 'TWMRPTv1') return null;
  const rua = tags.get('rua');
  if (rua === undefined) return null;
  const out: string[] = [];
  for (const raw of rua.split(',')) {
    const uri = raw.trim();
    if (!/^mailto:/i.test(uri)) {
      if (/^https:/i.test(uri)) continue;
      return null;
    }
    // RFC 6068 allows hfields (`?subject=`) and percent-encoding; a report address needs neither.
    let address: string;
    try {
      address = decodeURIComponent(uri.slice('mailto:'.length));
    } catch {
      return null;
    }
    if (!MAILBOX.test(address) || address.length > 254) return null;
    if (out.length < MAX_RUA && !out.some((a) => a.toLowerCase() === address.toLowerCase())) out.push(address);
  }
  return out.length > 0 ? { rua: out } : null;
}

/** One day's counts for one domain: successes, and failures by result type. */
export interface ReportCounts {
  domain: string;
  successes: number;
  /** result type (a `twm_error` code, `fetch-<cause>`, `receipt-<cause>`, `key-<cause>`) -> count. */
  failures: Map<string, number>;
}

export interface ReportMeta {
  organization: string;
  contact: string;
  /** Unique per report (RFC 8460 4.1 `report-id`). */
  reportId: string;
  start: Date;
  end: Date;
}

const iso = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

/**
 * The report of RFC 8460 section 4 for one domain and one day, with
 * `policy-type` "twm" (6.6): the summary counts and one `failure-details`
 * entry per result type, largest first (ties by name, so equal counts give
 * the same text).
 */
export function buildReport(meta: ReportMeta, counts: ReportCounts): Record<string, unknown> {
  const details = [...counts.failures]
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([resultType, n]) => ({ 'result-type': resultType, 'failed-session-count': n }));
  return {
    'organization-name': meta.organization,
    'date-range': { 'start-datetime': iso(meta.start), 'end-datetime': iso(meta.end) },
    'contact-info': meta.contact,
    'report-id': meta.reportId,
    policies: [
      {
        policy: { 'policy-type': 'twm', 'policy-string': ['v=TWM1'], 'policy-domain': counts.domain },
        summary: {
          'total-successful-session-count': counts.successes,
          'total-failure-session-count': details.reduce((sum, d) => sum + d['failed-session-count'], 0),
        },
        ...(details.length > 0 ? { 'failure-details': details } : {}),
      },
    ],
  };
}

/** RFC 8460 5.3's file name: `<receiver>!<policy domain>!<start>!<end>!<unique>.json` (epoch seconds). */
export function reportFileName(receiver: string, meta: ReportMeta, domain: string): string {
  const s = (d: Date) => Math.floor(d.getTime() / 1000);
  return `${receiver}!${domain}!${s(meta.start)}!${s(meta.end)}!${meta.reportId.replace(/[^A-Za-z0-9._-]/g, '')}.json`;
}
