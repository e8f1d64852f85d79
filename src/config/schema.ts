/**
 * The configuration file's schema: one TOML file, validated once at start-up
 * into a typed `Config` that is passed down from main.ts. Keys are snake_case
 * in the file; unknown keys are errors (a typo must not silently become a
 * default). Defaults are chosen so that a file with only `hostname` and
 * `domains` runs a safe server: no relay, STARTTLS offered, open mode.
 */
import { z } from 'zod';
import { parseDuration } from '../core/duration.ts';

const port = z.number().int().min(0).max(65535);
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, 'expected "host" or "host:port", e.g. "127.0.0.1:5353"');
const domainName = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'expected a lower-case domain name such as "example.org"');

/** "30s", "15m", "4h", "5d" (core/duration.ts, as the CLI reads them) -> milliseconds. */
const duration = z.string().transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as "30s", "15m", "4h" or "5d"' });
    return z.NEVER;
  }
  return ms;
});

/** A duration that may also be zero ("0s"): for deliberate delays a lab can turn off. */
const delay = z.string().transform((v, ctx) => {
  if (/^0+[smhdw]?$/i.test(v.trim())) return 0;
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as "0s", "30s", "15m" or "4h"' });
    return z.NEVER;
  }
  return ms;
});

const listener = (defaults: { host: string; port: number }) =>
  z
    .object({
      host: z.string().min(1).default(defaults.host),
      port: port.default(defaults.port),
    })
    .strict()
    .prefault({});

export const configSchema = z
  .object({
    hostname: domainName.describe('the server name used in SMTP greetings and Received headers'),
    domains: z.array(domainName).min(1, 'expected at least one served domain'),
    data_dir: z.string().min(1).default('data'),
    storage: z
      .string()
      .regex(/^(sqlite:|postgres(ql)?:\/\/)/, 'expected "sqlite:FILE" or "postgres://…"')
      .optional()
      .describe('defaults to sqlite:<data_dir>/twoway.db'),
    smtp: listener({ host: '0.0.0.0', port: 25 }),
    submission: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().min(1).default('0.0.0.0'),
        port: port.default(587),
      })
      .strict()
      .prefault({}),
    delivery: z
      .object({
        port: port.default(25).describe('the port of remote MX hosts; other than 25 only in labs and tests'),
        bind_address: z.ipv4().or(z.ipv6()).optional().describe('source address of outgoing SMTP connections'),
        max_active: z.number().int().min(1).max(10_000).default(100),
        // Postfix's default_destination_concurrency_limit is 20; 10 keeps a stranger's MX from seeing a burst.
        per_domain_concurrency: z.number().int().min(1).max(100).default(10),
        give_up_after: duration.prefault('5d'),
        delay_warning_after: duration.prefault('4h'),
        min_backoff: duration.prefault('5m'),
        max_backoff: duration.prefault('1h'),
        keep_history: duration.prefault('30d').describe('how long delivered and failed queue entries stay listed'),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(8080),
        tls: z.boolean().default(true).describe('serve HTTPS with the [tls] pair; false only behind a TLS-terminating proxy'),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        cert: z.string().optional(),
        key: z.string().optional(),
      })
      .strict()
      .prefault({})
      .refine((t) => (t.cert === undefined) === (t.key === undefined), 'expected both "cert" and "key", or neither'),
    dns: z
      .object({
        servers: z.array(hostPort).default([]),
        timeout_ms: z.number().int().min(100).max(60_000).default(5000),
      })
      .strict()
      .prefault({}),
    dkim: z
      .object({
        selector: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a DNS label').default('twoway'),
        key: z.string().optional().describe('PEM private key file; defaults to <data_dir>/dkim.key'),
        ed25519_selector: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a DNS label').default('twoway-ed'),
        ed25519_key: z.string().optional().describe('PEM Ed25519 private key; defaults to <data_dir>/dkim-ed25519.key'),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        message_size: z.number().int().min(1024).default(25 * 1024 * 1024),
        recipients: z.number().int().min(1).max(10_000).default(100),
        connections: z.number().int().min(1).default(1000),
        connections_per_ip: z.number().int().min(1).default(50),
        received_headers: z.number().int().min(5).max(200).default(50),
      })
      .strict()
      .prefault({}),
    twm: z
      .object({
        enabled: z.boolean().default(false).describe('speak Two-Way Mail: serve the TWM endpoint and notify TWM domains instead of SMTP'),
        host: z.string().min(1).default('0.0.0.0'),
        port: port.default(443),
        public_host: domainName.optional().describe('the SRV target other servers reach this endpoint at; defaults to hostname'),
        public_port: port.optional().describe('the port in the SRV record; defaults to port'),
        selector: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'expected a DNS label').default('twm1'),
        key: z.string().optional().describe('PEM Ed25519 private key; defaults to <data_dir>/twm-ed25519.key'),
        cert: z.string().optional().describe('PEM certificate chain for public_host; defaults to the [tls] pair'),
        cert_key: z.string().optional().describe('PEM private key of cert'),
        trust_anchors: z.array(z.string()).default([]).describe("PEM CA files trusted for other servers' endpoints; empty: the public CAs"),
        expiry: duration.prefault('7d').describe('how long a sent notice can be fetched'),
        fetch_jitter: delay.prefault('10s').describe('fetches for allowed senders start within this random delay'),
        approval_delay: delay.prefault('15m').describe('fetches released by an approval wait a random time up to this'),
        decline_delay: delay.prefault('60m').describe('declined receipts wait a random time up to this'),
        uniform_answers: z.boolean().default(false).describe('answer "pending" for unknown recipients (docs/protocol.md 12.6)'),
        lab: z.boolean().default(false).describe('allow loopback and private addresses as TWM targets: labs, demos and tests only'),
        notices_per_second: z.number().min(0.01).default(10).describe('per sending domain, after verification'),
        notice_burst: z.number().int().min(1).default(200),
        client_requests_per_second: z.number().min(0.01).default(20).describe('per client address, before verification (docs/protocol.md 12.7)'),
        client_burst: z.number().int().min(1).default(100),
      })
      .strict()
      .prefault({})
      .refine((t) => (t.cert === undefined) === (t.cert_key === undefined), 'expected both "cert" and "cert_key", or neither'),
    spam: z
      .object({
        url: z.url({ protocol: /^https?$/ }).describe("rspamd's normal worker (POST /checkv2), e.g. http://127.0.0.1:11333"),
        controller_url: z
          .url({ protocol: /^https?$/ })
          .optional()
          .describe("rspamd's controller (POST /learnspam, /learnham); defaults to url with port 11334"),
        password: z.string().min(1).optional().describe("the controller's password, if it asks for one (never logged)"),
        timeout_ms: z.number().int().min(100).max(120_000).default(10_000).describe('per scan or learn request; a slower answer leaves the message unscanned'),
        max_size: z.number().int().min(1024).default(20 * 1024 * 1024).describe('bytes; larger messages are delivered unscanned'),
        on_unreachable: z
          .enum(['accept', 'tempfail'])
          .default('accept')
          .describe('rspamd down, slow or answering nonsense: accept the message marked unscanned, or answer 451 4.7.1'),
        judge_by: z.enum(['actions', 'score']).default('actions').describe("act on rspamd's action, or on its score against the thresholds below"),
        reject_score: z.number().nullable().default(15).describe('with judge_by = "score": refuse 550 5.7.1 at or above'),
        junk_score: z.number().nullable().default(6).describe('with judge_by = "score": likely spam (Junk, or marked in the Screener) at or above'),
        greylist_score: z.number().nullable().default(null).describe('with judge_by = "score": answer 451 4.7.1 at or above; null: never greylist'),
        learn: z.boolean().default(true).describe('teach rspamd from Junk moves and Screener decisions (its controller)'),
      })
      .strict()
      .optional()
      .describe('rspamd judges strangers\' mail before the policy; absent: no spam filtering'),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigFile = z.infer<typeof configSchema>;
