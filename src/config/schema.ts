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

/** A listener's address; `what` names it in the two keys' descriptions. */
const listener = (defaults: { host: string; port: number }, what: string) =>
  z
    .object({
      host: z.string().min(1).default(defaults.host).describe(`address of the ${what}`),
      port: port.default(defaults.port).describe(`port of the ${what}; 0 picks a free port`),
    })
    .strict()
    .prefault({});

export const configSchema = z
  .object({
    hostname: domainName.describe("this server's name: SMTP greeting, Received headers, TLS certificate, the SRV target of Two-Way Mail"),
    domains: z
      .array(domainName)
      .min(1, 'expected at least one served domain')
      .describe('the mail domains served; mail for any other domain is refused (`550 5.7.1`, no relay)'),
    data_dir: z.string().min(1).default('data').describe('keys, the TLS pair and the SQLite database; relative to the configuration file'),
    postmaster: z
      .string()
      .regex(/^[^@\s]+@[a-z0-9.-]+$/, 'expected an account address such as "alice@example.org"')
      .optional()
      .describe('the account that receives postmaster@ every served domain (RFC 5321 4.5.1); default: the first account created'),
    storage: z
      .string()
      .regex(/^(sqlite:|postgres(ql)?:\/\/)/, 'expected "sqlite:FILE" or "postgres://…"')
      .optional()
      .describe('`sqlite:FILE` or `postgres://user@host:port/db[?schema=NAME]`. Default: `sqlite:<data_dir>/twoway.db`'),
    server: z
      .object({
        processes: z
          .union([z.literal('auto'), z.number().int().min(1).max(256)])
          .default('auto')
          .describe(
            '`twoway start` runs this many worker processes that share every listener, under one supervisor process that restarts a worker that dies; `1`: a single process, no supervisor; `"auto"`: one per two cores (os.availableParallelism() / 2, at least 1) on PostgreSQL, 1 on SQLite (measured faster: docs/architecture.md, "Processes")',
          ),
        login_cache: delay
          .prefault('5m')
          .refine((ms) => ms <= 3_600_000, 'at most "1h"')
          .describe(
            'how long each process remembers a login it verified (the same password against the same stored hash), so a client that logs in again and again pays one scrypt per this time, not per login; at most 10,000 logins, never the password itself; wrong passwords are never remembered, and a password change or a revoked app password takes effect at once (docs/reliability.md, "The app-password model"). `"0s"`: every login costs a scrypt; at most `"1h"`',
          ),
      })
      .strict()
      .prefault({}),
    smtp: listener({ host: '0.0.0.0', port: 25 }, 'inbound SMTP (MX) listener'),
    submission: z
      .object({
        enabled: z.boolean().default(true).describe('run the authenticated submission listener (STARTTLS, then AUTH)'),
        host: z.string().min(1).default('0.0.0.0').describe('address of the submission listener'),
        port: port.default(587).describe('port of the submission listener; 0 picks a free port'),
        address_literals: z
          .boolean()
          .default(false)
          .describe('accept address-literal recipients (user@[192.0.2.1]) from users; refused with 550 5.7.1 by default'),
        relay_senders: z
          .array(z.string().regex(/^[^\s@]+@[^\s@]+$/, 'expected an address'))
          .default([])
          .describe("users (their addresses) that may submit other authors' messages as a mailing list or forwarder, with Sender: set to their own address (docs/protocol.md 7.6); others get 553 5.7.1 for a From: not theirs"),
      })
      .strict()
      .prefault({}),
    imap: z
      .object({
        enabled: z.boolean().default(true).describe('run the IMAP listeners (docs/imap.md)'),
        host: z.string().min(1).default('0.0.0.0').describe('address of both IMAP listeners'),
        port: port.default(143).describe('IMAP with STARTTLS; 0 picks a free port'),
        tls_port: port.default(993).describe('IMAP over implicit TLS; 0 picks a free port'),
        allow_plaintext_auth: z
          .boolean()
          .default(false)
          .describe('allow LOGIN and AUTHENTICATE before STARTTLS on the plain port (labs only; otherwise LOGINDISABLED until TLS)'),
        max_connections: z.number().int().min(1).default(2000).describe('concurrent IMAP connections, both listeners together (`BYE [UNAVAILABLE]` beyond)'),
        max_connections_per_ip: z.number().int().min(1).default(100).describe('concurrent IMAP connections per client address'),
        max_connections_per_user: z.number().int().min(1).default(20).describe('concurrent logged-in IMAP sessions per user (`NO [LIMIT]` beyond)'),
        max_line: z.number().int().min(1024).max(10_485_760).default(65_536).describe('longest IMAP command line in octets, literals not counted (`BAD [TOOBIG]` beyond)'),
        commands_per_second: z.number().int().min(1).default(5000).describe('IMAP commands per second per connection (bursts of twice that); beyond, commands wait (mbsync sends one UID FETCH per message)'),
        idle_timeout: duration.prefault('30m').describe('an IMAP connection with no command for this long is closed (RFC 9051: at least 30 minutes)'),
        wire_cache_mb: z
          .number()
          .int()
          .min(0)
          .max(4096)
          .default(32)
          .describe('MiB of memory per process for the ENVELOPE and BODYSTRUCTURE of recently fetched messages, ready to send (about 1 KB per message; 0: none)'),
      })
      .strict()
      .prefault({}),
    delivery: z
      .object({
        port: port.default(25).describe('the port of remote MX hosts; another only in labs and tests'),
        bind_address: z.ipv4().or(z.ipv6()).optional().describe('source address of outgoing SMTP connections (the one SPF names). Default: the system\'s choice'),
        lab: z.boolean().default(false).describe('allow loopback and private addresses as SMTP destinations (MX hosts, address literals): labs, demos and tests only'),
        max_active: z.number().int().min(1).max(10_000).default(100).describe('recipients in delivery at once, over all domains'),
        // Postfix's default_destination_concurrency_limit: 10 left the relay to another server waiting on
        // the receiver's fsyncs at half Postfix's rate (bench/smtp-relay.ts); a peer's per-IP limit still applies.
        per_domain_concurrency: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(20)
          .describe('deliveries in flight per recipient domain, and SMTP connections per MX host'),
        give_up_after: duration.prefault('5d').describe('a recipient still deferred after this fails, and its sender gets a DSN'),
        delay_warning_after: duration.prefault('4h').describe('a recipient still deferred after this gets its sender one "delayed" DSN'),
        min_backoff: duration.prefault('5m').describe('wait after the first failed attempt; doubled after each further one'),
        max_backoff: duration.prefault('1h').describe('the longest wait between two attempts'),
        keep_history: duration.prefault('30d').describe('how long delivered and failed queue entries (and finished TWM notices) stay listed'),
        lease: duration
          .prefault('2m')
          .describe('how long a process keeps the queue entries, TWM fetches and spam learning rows it claimed without renewing its claim (renewed every third of this); another process or node takes over the work of one that died after this'),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        host: z.string().min(1).default('127.0.0.1').describe('address of the HTTPS listener (the API and CardDAV)'),
        port: port.default(8080).describe('port of the HTTPS listener; 0 picks a free port'),
        tls: z.boolean().default(true).describe('serve HTTPS with the `[tls]` pair; `false` only behind a TLS-terminating proxy'),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        cert: z.string().optional().describe('PEM certificate chain; both `cert` and `key`, or neither. Default: a self-signed pair generated into `<data_dir>/tls/`'),
        key: z.string().optional().describe('PEM private key of `tls.cert`. Default: generated with the certificate'),
      })
      .strict()
      .prefault({})
      .refine((t) => (t.cert === undefined) === (t.key === undefined), 'expected both "cert" and "key", or neither'),
    dns: z
      .object({
        servers: z.array(hostPort).default([]).describe('resolvers as `host` or `host:port`, e.g. `["127.0.0.1:5353"]`; empty: the system\'s'),
        timeout_ms: z.number().int().min(100).max(60_000).default(5000).describe('per-query timeout in milliseconds'),
      })
      .strict()
      .prefault({}),
    dkim: z
      .object({
        selector: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a DNS label').default('twoway').describe('selector of the RSA DKIM key'),
        key: z.string().optional().describe('PEM RSA private key (generated, 2048 bits, when missing). Default: `<data_dir>/dkim.key`'),
        ed25519_selector: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a DNS label')
          .default('twoway-ed')
          .describe('selector of the Ed25519 DKIM key (RFC 8463)'),
        ed25519_key: z.string().optional().describe('PEM Ed25519 private key (generated when missing). Default: `<data_dir>/dkim-ed25519.key`'),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        message_size: z.number().int().min(1024).default(25 * 1024 * 1024).describe('bytes; larger messages get `552 5.3.4`'),
        recipients: z.number().int().min(1).max(10_000).default(100).describe('recipients per message (`452 4.5.3` beyond)'),
        connections: z.number().int().min(1).default(1000).describe('concurrent connections per SMTP listener (MX and submission each; `421` beyond)'),
        connections_per_ip: z
          .number()
          .int()
          .min(1)
          .default(50)
          .describe('concurrent connections per client address, per SMTP listener (`421 4.7.0` beyond)'),
        received_headers: z.number().int().min(5).max(200).default(50).describe('this many Received headers or more is a mail loop (`554 5.4.6`)'),
        header_bytes: z
          .number()
          .int()
          .min(4096)
          .max(1024 * 1024)
          .default(64 * 1024)
          .describe('octets of a message header section, checked while it streams in (552 5.3.4 beyond)'),
        header_lines_per_field: z
          .number()
          .int()
          .min(10)
          .max(10_000)
          .default(100)
          .describe('physical lines of one header field, its folded continuation lines included (554 5.6.0 beyond)'),
        header_fields: z.number().int().min(50).max(100_000).default(1000).describe('header fields per message (554 5.6.0 beyond)'),
        dkim_signatures: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(10)
          .describe('DKIM-Signature fields per message; each may cost a hash of the whole body (554 5.6.0 beyond)'),
        auth_workers: z
          .number()
          .int()
          .min(1)
          .max(64)
          .optional()
          .describe('worker threads that run SPF/DKIM/DMARC checks of inbound messages off the event loop. Default: min(2, CPU cores)'),
        auth_budget_ms: z
          .number()
          .int()
          .min(10)
          .max(600_000)
          .default(5000)
          .describe('busy time of an authentication worker on one message, in ms (DNS waits excluded); beyond it the worker is replaced and the message gets `451 4.7.0`'),
      })
      .strict()
      .prefault({}),
    twm: z
      .object({
        enabled: z.boolean().default(false).describe('speak Two-Way Mail: serve the TWM endpoint and send notices to TWM domains instead of SMTP'),
        host: z.string().min(1).default('0.0.0.0').describe('address of the TWM HTTPS endpoint'),
        port: port.default(443).describe('port of the TWM HTTPS endpoint; 0 picks a free port'),
        public_host: domainName.optional().describe('the SRV target other servers reach the endpoint at; signatures must name it. Default: `hostname`'),
        public_port: port.optional().describe('the port in the SRV record; signatures must name it. Default: `twm.port`'),
        selector: z
          .string()
          .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'expected a DNS label')
          .default('twm1')
          .describe('selector of the TWM signing key, published at `<selector>._twoway.<domain>`'),
        key: z.string().optional().describe('PEM Ed25519 signing key (generated when missing). Default: `<data_dir>/twm-ed25519.key`'),
        cert: z.string().optional().describe('PEM certificate chain for `public_host`; both `cert` and `cert_key`, or neither. Default: the `[tls]` pair'),
        cert_key: z.string().optional().describe('PEM private key of `twm.cert`. Default: the `[tls]` pair\'s key'),
        trust_anchors: z.array(z.string()).default([]).describe("PEM CA files trusted for other servers' TWM endpoints; empty: the public CAs"),
        // A notice's `expires` may be at most 30 days after `created` (docs/protocol.md 6.1): a longer
        // expiry would make every notice `invalid-request` at the recipient, so it is refused here.
        expiry: duration
          .prefault('7d')
          .refine((ms) => ms <= 30 * 86_400_000, { message: 'at most "30d": recipients refuse notices that live longer (docs/protocol.md 6.1)' })
          .describe('how long a sent notice can be fetched, at most 30 days; the sender then gets one status message'),
        fetch_jitter: delay.prefault('10s').describe('fetches for allowed senders start after a random delay up to this (it blurs what timing would reveal; `"0s"` turns it off)'),
        approval_delay: delay.prefault('15m').describe('fetches released by an approval wait a random time up to this (`"0s"`: none)'),
        decline_delay: delay.prefault('60m').describe('declined receipts wait a random time up to this (`"0s"`: none)'),
        pending_hold: duration.prefault('14d').describe('a notice held as a contact request (`pending`) is forgotten after this, or at its own expiry if sooner (docs/protocol.md 12.7)'),
        pending_per_sender: z.number().int().min(1).default(100).describe('stored `pending` notices per user and sender address; beyond, notices are answered `deferred` (12.7)'),
        pending_per_user: z.number().int().min(1).default(10_000).describe('stored `pending` notices per user; beyond, notices are answered `deferred` (12.7)'),
        uniform_answers: z.boolean().default(false).describe('answer `pending` for unknown recipients too, so recipients cannot be enumerated (docs/protocol.md 12.6)'),
        testing: z
          .boolean()
          .default(false)
          .describe('TWM testing mode (docs/protocol.md 6.6): the key record carries `t=y`, and every message sent by TWM also goes by SMTP (marked `TWM-Testing: y`); recipients keep the first copy. For rolling TWM out: a broken setup loses no mail'),
        lab: z.boolean().default(false).describe('allow loopback and private addresses as TWM targets: labs, tests and the demo only'),
        dnssec: z
          .enum(['off', 'prefer', 'require'])
          .default('off')
          .describe('DNSSEC for TWM discovery and key lookups (docs/protocol.md 3.4): `off` ignores it; `prefer` uses validated answers for DANE and defers on bogus ones; `require` also treats unvalidated answers as absent unless the domain\'s policy (3.6) vouches for them. `prefer` and `require` need validating resolvers in `[dns] servers` on a trusted path'),
        policy_port: port.default(443).describe('port of `twoway-policy.<domain>` when fetching TWM policies (docs/protocol.md 3.6): 443; other values for labs and tests only'),
        notices_per_second: z.number().min(0.01).default(10).describe('notices accepted per second per sending domain, after verification (`429` beyond)'),
        notice_burst: z.number().int().min(1).default(200).describe('notices a sending domain may send at once before `notices_per_second` applies'),
        client_requests_per_second: z.number().min(0.01).default(20).describe('TWM requests per second per client address, before any verification (`429` beyond; docs/protocol.md 12.7); a busy peer may need more'),
        client_burst: z.number().int().min(1).default(100).describe('TWM requests a client address may send at once before `client_requests_per_second` applies'),
      })
      .strict()
      .prefault({})
      .refine((t) => (t.cert === undefined) === (t.cert_key === undefined), 'expected both "cert" and "cert_key", or neither'),
    metrics: z
      .object({
        enabled: z.boolean().default(true).describe('serve Prometheus metrics at GET /metrics on a listener of their own'),
        host: z.string().min(1).default('127.0.0.1').describe('the metrics listener address; loopback by default: the metrics need no login'),
        port: port.default(9464).describe('the metrics listener port'),
      })
      .strict()
      .prefault({}),
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
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info')
          .describe('pino log level on stderr: `fatal` … `trace`, or `silent`'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigFile = z.infer<typeof configSchema>;
