/**
 * Zod schemas shared by several routes: request fields and the documented
 * shapes of responses (these mirror the services' view types; the handlers'
 * return types are checked against them by defineRoute).
 */
import { z } from 'zod';
import { MAILBOXES, MODES } from '../../core/types.ts';

/** ISO 8601 timestamps as the services produce them (Date#toISOString). */
export const dateTime = z.string().meta({ format: 'date-time' });

/** An address or `@domain`; the services parse and normalise it (400 when malformed). */
export const senderSpec = z.string().min(1).max(320).meta({ description: 'A mail address, or @domain for a whole domain', examples: ['alice@example.net', '@example.net'] });
export const senderAddress = z.string().min(1).max(320).meta({ description: 'A sender mail address', examples: ['alice@example.net'] });
/** Bulk actions: bounded so one request cannot hold the store for long. */
export const senderList = z.array(senderAddress).min(1).max(1000);

export const mode = z.enum(MODES).meta({ description: 'Screening mode: open (default), screen or strict' });
export const mailboxName = z.enum(MAILBOXES);

export const items = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });

export const publicUser = z.object({ address: z.string(), mode, revealDeclined: z.boolean(), createdAt: dateTime });

export const contactEntry = z.object({
  kind: z.enum(['address', 'domain', 'list', 'expect']),
  value: z.string(),
  action: z.enum(['allow', 'block']),
  expect: z
    .object({
      purpose: z.string(),
      until: dateTime,
      uses: z.number().int().nullable(),
      from: z.string().nullable().meta({ description: 'The sending domain the site declared (FROM), also admitted' }),
      requireMarker: z.boolean().meta({ description: 'Only a message marked TWM-Purpose matches (MARKER=REQUIRED)' }),
    })
    .optional()
    .meta({ description: 'For expect entries (X-TWOWAY-EXPECT): purpose, expiry, uses left (null: unlimited), declared sending domain and marker requirement' }),
  declaredFor: z.string().optional().meta({ description: 'For the entry of a declared sending domain: the expected domain it belongs to' }),
});

export const contactView = z.object({
  uid: z.string(),
  book: z.string(),
  name: z.string().nullable(),
  entries: z.array(contactEntry),
  etag: z.string(),
  updatedAt: dateTime,
  vcard: z.string().meta({ description: 'The vCard exactly as stored' }),
});

export const requestView = z.object({
  sender: z.string(),
  authDomain: z.string().nullable(),
  firstSeen: dateTime,
  lastSeen: dateTime,
  count: z.number().int(),
  sampleSubject: z.string().nullable(),
  intro: z.string().nullable().meta({ description: "The sender's introduction from its latest Two-Way Mail notice: untrusted plain text, show it as such" }),
  status: z.enum(['pending', 'approved', 'denied']),
  held: z.number().int().meta({ description: 'Messages held in the Screener for this sender' }),
  spamScore: z.number().nullable().meta({ description: "The spam filter's latest score for this sender's mail; null: never scanned" }),
  likelySpam: z.boolean().meta({ description: 'The latest attempt was judged likely spam ([spam] configured)' }),
  dmarc: z
    .object({ result: z.string(), policy: z.string().nullable() })
    .nullable()
    .meta({ description: "DMARC of the latest SMTP attempt: mailauth's result (pass, fail, none, temperror, permerror) and the sender domain's published policy that applied (null: no record); null when never evaluated (TWM notices)" }),
  reputation: z
    .object({ score: z.number(), reasons: z.array(z.string()) })
    .meta({ description: 'What the list is ordered by (higher first), with the facts that made it' }),
});

export const actionResult = z.object({
  sender: z.string(),
  released: z.number().int().optional().meta({ description: 'Held messages moved to INBOX' }),
  dropped: z.number().int().optional().meta({ description: 'Held messages deleted' }),
  junked: z.number().int().optional().meta({ description: 'Held messages moved to Junk' }),
});

export const mailboxView = z.object({
  name: mailboxName,
  count: z.number().int(),
  uidValidity: z.number().int(),
  uidNext: z.number().int(),
});

export const messageView = z.object({
  id: z.number().int(),
  mailbox: mailboxName,
  uid: z.number().int(),
  flags: z.array(z.string()),
  size: z.number().int(),
  sender: z.string().nullable().meta({ description: 'Envelope sender (SMTP MAIL FROM)' }),
  from: z.string().nullable(),
  subject: z.string().nullable(),
  receivedAt: dateTime,
  firstContact: z.boolean(),
});

/** 204 No Content. */
export const noContent = z.void();

/** Decimal integers in query strings and paths: digits only, no signs, exponents or spaces. */
export const decimal = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, 'Expected a decimal integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
