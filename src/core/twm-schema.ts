/**
 * The TWM/1 documents of docs/protocol.md section 6 on the wire: zod schemas
 * mirroring the JSON Schemas (and the rules the member tables add), parsers
 * that throw `twmError('invalid-request', <which member>)`, and serialisers
 * producing the exact wire JSON (snake_case members, times without
 * fractions).
 *
 * Parsing is lenient where 1.3 asks for it (unknown members ignored, an
 * unregistered `purpose` treated as absent) and strict everywhere else.
 * Checks that need the receiver's clock (`created`, `expires` against now)
 * are not here: they run after verification (8.1), in the endpoint.
 */
import { z } from 'zod';
import { parseJsonStrict, JsonTextError } from './json-strict.ts';
import {
  TWM_PURPOSES,
  twmError,
  type FetchRequest,
  type Notice,
  type NoticeResult,
  type Receipt,
  type ReceiptEntry,
} from './twm-types.ts';

/** `expires` at most this long after `created` (6.1). */
export const MAX_NOTICE_LIFETIME_MS = 30 * 86_400_000;
export const MAX_STAMP_OCTETS = 1024;

// JSON Schema lengths count code points (1.3), zod's count UTF-16 units.
const codePoints = (s: string): number => [...s].length;
const cpLength = (min: number, max: number) => (s: string) => {
  const n = codePoints(s);
  return n >= min && n <= max;
};

// Patterns of section 6, with the `u` flag so that classes match code points as JSON Schema does.
const ID = /^[A-Za-z0-9_-]{22,43}$/;
const MAILBOX = /^[^\s@"<>()[\]\\,;:]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/u;
const TIME = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/;
const TOKEN = /^[a-z][a-z0-9-]{0,62}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const INTRO = /^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$/u;
const LIST_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+$/;

/**
 * The stamp's size, without letting its shape choose our stack depth: the
 * member is free-form, and JSON.stringify recurses, so a stamp nested a few
 * thousand levels deep (it fits in 16 KiB) threw RangeError out of the
 * schema, a 503 instead of `invalid-request`. Every level costs at least two
 * octets (`[]`), so anything deeper than half the limit is too large anyway;
 * the depth is measured iteratively before anything recursive runs.
 */
function stampFits(stamp: unknown): boolean {
  const maxDepth = MAX_STAMP_OCTETS / 2;
  const pending: Array<[unknown, number]> = [[stamp, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [value, depth] = next;
    if (depth > maxDepth) return false;
    if (value !== null && typeof value === 'object') for (const v of Object.values(value)) pending.push([v, depth + 1]);
  }
  return Buffer.byteLength(JSON.stringify(stamp)) <= MAX_STAMP_OCTETS;
}

const id = z.string().regex(ID);
const mailbox = z.string().refine(cpLength(3, 254), 'length').regex(MAILBOX);
/** A real instant: the pattern alone lets 2026-02-30 through. */
const time = z
  .string()
  .regex(TIME)
  .transform((s, ctx) => {
    const d = new Date(s);
    if (Number.isNaN(d.getTime()) || formatTwmTime(d) !== s) {
      ctx.addIssue({ code: 'custom', message: 'not a valid time' });
      return z.NEVER;
    }
    return d;
  });
const token = z.string().regex(TOKEN);
/** uniqueItems, with addresses compared lower-cased (1.3). */
const rcpts = z
  .array(mailbox)
  .min(1)
  .max(100)
  .refine((a) => new Set(a.map((r) => r.toLowerCase())).size === a.length, 'duplicate address');

const noticeSchema = z
  .object({
    id,
    from: mailbox,
    to: rcpts,
    size: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    sha256: z.string().regex(SHA256),
    created: time,
    expires: time,
    intro: z.string().refine(cpLength(1, 1000), 'length').regex(INTRO).optional(),
    purpose: token.optional(),
    list_id: z.string().refine(cpLength(0, 255), 'length').regex(LIST_ID).optional(),
    // Reserved (12.7): no algorithm is defined, so only its shape and size are checked.
    stamp: z.looseObject({ alg: token })
      .refine((s) => stampFits(s), 'larger than 1024 octets')
      .optional(),
  })
  // Zod runs this even when a time failed its pattern (the issue does not abort), hence the instanceof.
  .refine((n) => !(n.created instanceof Date && n.expires instanceof Date) || n.expires.getTime() - n.created.getTime() <= MAX_NOTICE_LIFETIME_MS, {
    message: 'more than 30 days after created',
    path: ['expires'],
  });

/**
 * Section 6.6: statuses and error codes are meant to grow, so a receiver
 * checks them as tokens and maps an unknown value by the rule table there
 * instead of refusing the whole document. The `retry_after` / `error`
 * pairing (present iff deferred / failed) is checked for known statuses
 * only: what a later status carries is that revision's business.
 */
const NOTICE_STATUSES = ['accepted', 'pending', 'unknown', 'deferred'] as const;
const RECEIPT_STATUSES = ['delivered', 'declined', 'failed'] as const;
const RECEIPT_ERRORS = ['size-mismatch', 'digest-mismatch', 'from-mismatch', 'message-too-large'] as const;
const isOneOf = <T extends string>(list: readonly T[], v: string): v is T => (list as readonly string[]).includes(v);
/** The wait a TWM/1 sender gives a notice result status it does not know (6.6). */
export const UNKNOWN_STATUS_RETRY_AFTER = 3600;

const noticeResultEntry = z
  .object({
    rcpt: mailbox,
    status: token,
    retry_after: z.number().int().min(1).max(86_400).optional(),
  })
  .refine((e) => !isOneOf(NOTICE_STATUSES, e.status) || (e.status === 'deferred') === (e.retry_after !== undefined), {
    message: 'present iff status is deferred',
    path: ['retry_after'],
  });
const noticeResultSchema = z.object({ id, results: z.array(noticeResultEntry).min(1).max(100) });

const fetchSchema = z.object({ rcpt: rcpts });

const receiptEntry = z
  .object({
    rcpt: mailbox,
    status: token,
    error: token.optional(),
  })
  .refine((e) => !isOneOf(RECEIPT_STATUSES, e.status) || (e.status === 'failed') === (e.error !== undefined), {
    message: 'present iff status is failed',
    path: ['error'],
  });
const receiptSchema = z.object({ id, results: z.array(receiptEntry).min(1).max(100) });

/** `to[1]`, `results[0].status`: the member a problem detail names. */
function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function validate<T extends z.ZodType>(schema: T, json: unknown, what: string): z.output<T> {
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue ? pathOf(issue.path) : '';
  // Zod's messages name the rule, never the value, so they are safe to send back.
  throw twmError('invalid-request', `invalid ${what}${path ? `: member ${path}` : ''}: ${issue?.message ?? 'schema violation'}`);
}

/** The request content as JSON (step 8, first half): UTF-8, no BOM, no duplicate members. */
export function decodeTwmJson(content: Buffer): unknown {
  try {
    return parseJsonStrict(content);
  } catch (err) {
    if (err instanceof JsonTextError) throw twmError('invalid-request', `the content is not a valid JSON text (${err.message})`);
    throw err;
  }
}

type NoticeFields = z.output<typeof noticeSchema>;

/** A string whose length in code points is within [min, max]; counts them only when UTF-16 units cannot tell. */
function cpWithin(s: unknown, min: number, max: number): s is string {
  if (typeof s !== 'string') return false;
  // Code points <= UTF-16 units <= 2 x code points.
  if (s.length <= max && s.length >= 2 * min) return true;
  return cpLength(min, max)(s);
}

/**
 * The instant of a TIME string, when it names a real one: what `time` (the schema's) accepts,
 * checked field by field instead of a Date parse and a formatting round trip (the notice's two
 * times took both, per notice).
 */
function timeOf(s: unknown): Date | undefined {
  if (typeof s !== 'string' || !TIME.test(s)) return undefined;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  // setUTCFullYear, not Date.UTC: that one reads years 0-99 as 1900-1999.
  const d = new Date(Date.UTC(2000, 0, 1, hour, minute, second));
  d.setUTCFullYear(year, month - 1, day);
  return d;
}

/** The number written at s[at, at + length) (TIME has checked that these are digits). */
function digits(s: string, at: number, length: number): number {
  let n = 0;
  for (let i = at; i < at + length; i++) n = n * 10 + (s.charCodeAt(i) - 48);
  return n;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

const isMailbox = (s: unknown): s is string => cpWithin(s, 3, 254) && MAILBOX.test(s);
const optional = (v: unknown, valid: (v: unknown) => boolean): boolean => v === undefined || valid(v);

/**
 * The notice schema's checks written out, for the common case: a notice that
 * passes every one of them (and has no `stamp`, which is rare) is read here
 * without zod, whose generic machinery was a visible share of a stranger's
 * notice at the recipient (bench/twm-stranger-cost.ts). Anything else gives
 * undefined and goes through the schema, which accepts exactly what this
 * accepts (src/core/twm-schema.test.ts compares them) and names the member
 * that failed in its refusal.
 */
export function readValidNotice(json: unknown): NoticeFields | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  const { id, from, to, size, sha256, intro, purpose, list_id: listId } = o;
  if (o.stamp !== undefined || typeof id !== 'string' || !ID.test(id) || !isMailbox(from)) return undefined;
  if (!Array.isArray(to) || to.length < 1 || to.length > 100 || !to.every(isMailbox)) return undefined;
  if (to.length > 1 && new Set(to.map((r: string) => r.toLowerCase())).size !== to.length) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) return undefined;
  if (typeof sha256 !== 'string' || !SHA256.test(sha256)) return undefined;
  const created = timeOf(o.created);
  const expires = timeOf(o.expires);
  if (!created || !expires || expires.getTime() - created.getTime() > MAX_NOTICE_LIFETIME_MS) return undefined;
  if (!optional(intro, (v) => cpWithin(v, 1, 1000) && INTRO.test(v))) return undefined;
  if (!optional(purpose, (v) => typeof v === 'string' && TOKEN.test(v))) return undefined;
  if (!optional(listId, (v) => cpWithin(v, 0, 255) && LIST_ID.test(v))) return undefined;
  return {
    id,
    from: from as string,
    to: [...(to as string[])],
    size,
    sha256,
    created,
    expires,
    ...(intro === undefined ? {} : { intro: intro as string }),
    ...(purpose === undefined ? {} : { purpose: purpose as string }),
    ...(listId === undefined ? {} : { list_id: listId as string }),
  };
}

/** The schema alone (zod), without the fast path: for tests that compare the two. */
export function validateNotice(json: unknown): NoticeFields {
  return validate(noticeSchema, json, 'notice');
}

export function parseNotice(json: unknown): Notice {
  const n = readValidNotice(json) ?? validateNotice(json);
  const purpose = n.purpose !== undefined && (TWM_PURPOSES as readonly string[]).includes(n.purpose) ? n.purpose : undefined;
  return {
    id: n.id,
    from: n.from,
    to: n.to,
    size: n.size,
    sha256: n.sha256,
    created: n.created,
    expires: n.expires,
    ...(n.intro === undefined ? {} : { intro: n.intro }),
    ...(purpose === undefined ? {} : { purpose }),
    ...(n.list_id === undefined ? {} : { listId: n.list_id }),
  };
}

/** Unknown statuses read as `deferred` with `retry_after` 3600 (6.6): a delay, never a failure. */
export function parseNoticeResult(json: unknown): NoticeResult {
  const r = validate(noticeResultSchema, json, 'notice result');
  return {
    id: r.id,
    results: r.results.map((e) => {
      if (!isOneOf(NOTICE_STATUSES, e.status)) return { rcpt: e.rcpt, status: 'deferred' as const, retryAfter: UNKNOWN_STATUS_RETRY_AFTER };
      return { rcpt: e.rcpt, status: e.status, ...(e.retry_after === undefined ? {} : { retryAfter: e.retry_after }) };
    }),
  };
}

export function parseFetchRequest(json: unknown): FetchRequest {
  return { rcpt: validate(fetchSchema, json, 'fetch request').rcpt };
}

/**
 * Section 6.6: an entry with an unknown status is ignored (its recipient
 * stays open, expiry settles it) but still listed in `ignored`, so that the
 * entitlement check (5.4 step 9) covers every address the receipt names; an
 * unknown `error` reads as `failed` without a known reason.
 */
export function parseReceipt(json: unknown): Receipt {
  const r = validate(receiptSchema, json, 'receipt');
  const results: ReceiptEntry[] = [];
  const ignored: string[] = [];
  for (const e of r.results) {
    if (!isOneOf(RECEIPT_STATUSES, e.status)) {
      ignored.push(e.rcpt);
      continue;
    }
    const error = e.status === 'failed' && e.error !== undefined && isOneOf(RECEIPT_ERRORS, e.error) ? e.error : undefined;
    results.push({ rcpt: e.rcpt, status: e.status, ...(error === undefined ? {} : { error }) });
  }
  return { id: r.id, results, ...(ignored.length > 0 ? { ignored } : {}) };
}

/** `YYYY-MM-DDTHH:MM:SSZ`; a fraction of a second is dropped. */
export function formatTwmTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/**
 * The recipient domain (lower-case) when every address shares one domain,
 * else undefined (5.4 step 9: mixed domains are `invalid-request`).
 */
export function recipientDomain(to: readonly string[]): string | undefined {
  const domains = new Set(to.map((a) => a.slice(a.lastIndexOf('@') + 1).toLowerCase()));
  return domains.size === 1 ? [...domains][0] : undefined;
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

/** A notice's wire octets: members in the order of section 6.1, compact, optional ones only when set. */
export function noticeToJson(n: Notice): Buffer {
  return json({
    id: n.id,
    from: n.from,
    to: n.to,
    size: n.size,
    sha256: n.sha256,
    created: formatTwmTime(n.created),
    expires: formatTwmTime(n.expires),
    ...(n.intro === undefined ? {} : { intro: n.intro }),
    ...(n.purpose === undefined ? {} : { purpose: n.purpose }),
    ...(n.listId === undefined ? {} : { list_id: n.listId }),
  });
}

export function noticeResultToJson(r: NoticeResult): Buffer {
  return json({
    id: r.id,
    results: r.results.map((e) => ({ rcpt: e.rcpt, status: e.status, ...(e.retryAfter === undefined ? {} : { retry_after: e.retryAfter }) })),
  });
}

export function fetchRequestToJson(f: FetchRequest): Buffer {
  return json({ rcpt: f.rcpt });
}

export function receiptToJson(r: Receipt): Buffer {
  return json({ id: r.id, results: r.results.map((e) => ({ rcpt: e.rcpt, status: e.status, ...(e.error === undefined ? {} : { error: e.error }) })) });
}
