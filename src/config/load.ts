/**
 * Reads and validates the TOML configuration. Errors are `ConfigError`s whose
 * message names the file, the key and what was expected, one per line, so the
 * CLI can print them as they are.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { configSchema, type ConfigFile } from './schema.ts';
import { ConfigError } from './config-error.ts';
import type { HeaderLimits } from '../core/header-limits.ts';

export { ConfigError };


/** The validated configuration with every path made absolute. */
export interface Config {
  file: string | null;
  hostname: string;
  domains: string[];
  dataDir: string;
  storage: string;
  /** `twoway start`'s worker processes ("auto" resolved: 1 on SQLite, half the cores on PostgreSQL); 1 = one process, no supervisor. */
  server: {
    processes: number;
    /** How long a verified login is remembered, ms (services/login-cache.ts); 0: not at all. */
    loginCacheMs: number;
  };
  smtp: { host: string; port: number };
  /** `addressLiterals`: accept address-literal recipients from users (off by default). */
  submission: { enabled: boolean; host: string; port: number; addressLiterals: boolean; relaySenders: string[] };
  imap: {
    enabled: boolean;
    host: string;
    port: number;
    tlsPort: number;
    allowPlaintextAuth: boolean;
    maxConnections: number;
    maxConnectionsPerIp: number;
    maxConnectionsPerUser: number;
    maxLine: number;
    commandsPerSecond: number;
    idleTimeoutMs: number;
    /** Octets of rendered ENVELOPE/BODYSTRUCTURE kept per process (`imap.wire_cache_mb`). */
    wireCacheBytes: number;
  };
  delivery: {
    port: number;
    bindAddress: string | null;
    /** Loopback and private destination addresses allowed (labs and tests only). */
    lab: boolean;
    maxActive: number;
    perDomainConcurrency: number;
    giveUpAfterMs: number;
    delayWarningAfterMs: number;
    minBackoffMs: number;
    maxBackoffMs: number;
    keepHistoryMs: number;
    /** Claims on queue entries and TWM work rows (store leases). */
    leaseMs: number;
  };
  http: { host: string; port: number; tls: boolean };
  tls: { cert: string; key: string; generated: boolean };
  dns: { servers: string[]; timeoutMs: number };
  dkim: { selector: string; key: string; ed25519Selector: string; ed25519Key: string };
  limits: {
    messageSize: number;
    recipients: number;
    connections: number;
    connectionsPerIp: number;
    receivedHeaders: number;
    /** Header section limits, checked while a message streams in (core/header-limits.ts). */
    header: HeaderLimits;
    /** Authentication worker threads (mail/auth-pool.ts); null: the pool's default, min(2, CPU cores). */
    authWorkers: number | null;
    /** Busy time of one message's authentication in its worker, ms. */
    authBudgetMs: number;
  };
  twm: {
    enabled: boolean;
    host: string;
    port: number;
    publicHost: string;
    /** Null: the bound port (port 0 in tests). */
    publicPort: number | null;
    selector: string;
    key: string;
    /** Null: the [tls] pair. */
    tls: { cert: string; key: string } | null;
    trustAnchors: string[];
    expiryMs: number;
    fetchJitterMs: number;
    approvalDelayMs: number;
    declineDelayMs: number;
    /** How long a `pending` notice is kept at most (12.7). */
    pendingHoldMs: number;
    /** Stored pending notices per (user, sender address) and per user (12.7). */
    pendingCaps: { perSender: number; perUser: number };
    uniformAnswers: boolean;
    /** Testing mode (docs/protocol.md 6.6): `t=y` in the key record, and an SMTP copy of every TWM message. */
    testing: boolean;
    dnssec: 'off' | 'prefer' | 'require';
    policyPort: number;
    lab: boolean;
    noticeRate: { perSecond: number; burst: number };
    clientRate: { perSecond: number; burst: number };
  };
  /** The account for postmaster@ every served domain; null: the first account created. */
  postmaster: string | null;
  /** The metrics listener (GET /metrics, no login), or null when disabled. */
  metrics: { host: string; port: number } | null;
  /** Null without a [spam] section: no filtering. */
  spam: SpamConfig | null;
  log: { level: ConfigFile['log']['level'] };
}

export interface SpamConfig {
  url: string;
  controllerUrl: string;
  password: string | null;
  timeoutMs: number;
  maxSize: number;
  onUnreachable: 'accept' | 'tempfail';
  judge: { by: 'actions' } | { by: 'score'; thresholds: { reject: number | null; junk: number | null; greylist: number | null } };
  learn: boolean;
}

function controllerOf(url: string): string {
  const u = new URL(url);
  u.port = '11334';
  return u.toString().replace(/\/+$/, '');
}

export function loadConfig(file: string): Config {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${path}: cannot read the configuration file (${code ?? String(err)})`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, path: string | null): Config {
  const where = path ?? '<config>';
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      throw new ConfigError(`${where}:${err.line}:${err.column}: invalid TOML: ${err.message.split('\n')[0]}`);
    }
    throw err;
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(where, result.error.issues));
  return resolveConfig(result.data, path);
}

function formatIssues(where: string, issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.map((k) => (issue.path.length ? `${issue.path.join('.')}.${k}` : k));
        return `${where}: unknown key ${keys.map((k) => `"${k}"`).join(', ')}`;
      }
      return `${where}: key "${key}": ${issue.message}`;
    })
    .join('\n');
}

/** `postmaster` must be an address of a served domain (its account may be created later). */
function postmasterOf(c: ConfigFile, path: string | null): string | null {
  if (c.postmaster === undefined) return null;
  const address = c.postmaster.toLowerCase();
  const domain = address.slice(address.lastIndexOf('@') + 1);
  if (!c.domains.includes(domain)) {
    throw new ConfigError(`${path ?? 'config'}: key "postmaster": ${address} is not in a served domain (${c.domains.join(', ')})`);
  }
  return address;
}

function resolveConfig(c: ConfigFile, path: string | null): Config {
  const base = path ? dirname(path) : process.cwd();
  const abs = (p: string, from = base) => (isAbsolute(p) ? p : resolve(from, p));
  const dataDir = abs(c.data_dir);
  const tlsGiven = c.tls.cert !== undefined && c.tls.key !== undefined;
  return {
    file: path,
    hostname: c.hostname,
    domains: [...new Set(c.domains)],
    dataDir,
    storage: c.storage
      ? c.storage.startsWith('sqlite:') && c.storage !== 'sqlite::memory:'
        ? `sqlite:${abs(c.storage.slice('sqlite:'.length), dataDir)}`
        : c.storage
      : `sqlite:${resolve(dataDir, 'twoway.db')}`,
    // "auto": one process on SQLite, where processes share one write lock and each fsyncs its own
    // commits; on PostgreSQL one per two cores, since one process already keeps about 1.3 cores busy
    // (its authentication workers, GC and JIT threads): on 2 cores a second process measured slower
    // (docs/architecture.md, "Processes").
    server: {
      processes: c.server.processes !== 'auto' ? c.server.processes : c.storage?.startsWith('postgres') ? Math.max(1, Math.floor(availableParallelism() / 2)) : 1,
      loginCacheMs: c.server.login_cache,
    },
    smtp: c.smtp,
    submission: {
      enabled: c.submission.enabled,
      host: c.submission.host,
      port: c.submission.port,
      addressLiterals: c.submission.address_literals,
      relaySenders: c.submission.relay_senders.map((a) => a.toLowerCase()),
    },
    imap: imapConfig(c),
    delivery: deliveryConfig(c),
    http: c.http,
    tls: tlsGiven
      ? { cert: abs(c.tls.cert!), key: abs(c.tls.key!), generated: false }
      : { cert: resolve(dataDir, 'tls/cert.pem'), key: resolve(dataDir, 'tls/key.pem'), generated: true },
    dns: { servers: c.dns.servers, timeoutMs: c.dns.timeout_ms },
    dkim: {
      selector: c.dkim.selector,
      key: c.dkim.key ? abs(c.dkim.key) : resolve(dataDir, 'dkim.key'),
      ed25519Selector: c.dkim.ed25519_selector,
      ed25519Key: c.dkim.ed25519_key ? abs(c.dkim.ed25519_key) : resolve(dataDir, 'dkim-ed25519.key'),
    },
    limits: limitsConfig(c),
    twm: twmConfig(c, abs, dataDir),
    postmaster: postmasterOf(c, path),
    metrics: c.metrics.enabled ? { host: c.metrics.host, port: c.metrics.port } : null,
    spam: spamConfig(c),
    log: c.log,
  };
}

/** The [imap] section, in the names the code uses. */
function imapConfig(c: ConfigFile): Config['imap'] {
  return {
    enabled: c.imap.enabled,
    host: c.imap.host,
    port: c.imap.port,
    tlsPort: c.imap.tls_port,
    allowPlaintextAuth: c.imap.allow_plaintext_auth,
    maxConnections: c.imap.max_connections,
    maxConnectionsPerIp: c.imap.max_connections_per_ip,
    maxConnectionsPerUser: c.imap.max_connections_per_user,
    maxLine: c.imap.max_line,
    commandsPerSecond: c.imap.commands_per_second,
    idleTimeoutMs: c.imap.idle_timeout,
    wireCacheBytes: c.imap.wire_cache_mb * 1024 * 1024,
  };
}

/** The [delivery] section, in the names the code uses. */
function deliveryConfig(c: ConfigFile): Config['delivery'] {
  return {
    port: c.delivery.port,
    bindAddress: c.delivery.bind_address ?? null,
    lab: c.delivery.lab,
    maxActive: c.delivery.max_active,
    perDomainConcurrency: c.delivery.per_domain_concurrency,
    giveUpAfterMs: c.delivery.give_up_after,
    delayWarningAfterMs: c.delivery.delay_warning_after,
    minBackoffMs: c.delivery.min_backoff,
    maxBackoffMs: c.delivery.max_backoff,
    keepHistoryMs: c.delivery.keep_history,
    leaseMs: c.delivery.lease,
  };
}

/** The [limits] section, in the names the code uses. */
function limitsConfig(c: ConfigFile): Config['limits'] {
  return {
    messageSize: c.limits.message_size,
    recipients: c.limits.recipients,
    connections: c.limits.connections,
    connectionsPerIp: c.limits.connections_per_ip,
    receivedHeaders: c.limits.received_headers,
    header: {
      maxBytes: c.limits.header_bytes,
      maxLinesPerField: c.limits.header_lines_per_field,
      maxFields: c.limits.header_fields,
      maxDkimSignatures: c.limits.dkim_signatures,
    },
    authWorkers: c.limits.auth_workers ?? null,
    authBudgetMs: c.limits.auth_budget_ms,
  };
}

/** The [twm] section, in the names the code uses; paths resolved from the config file's folder. */
function twmConfig(c: ConfigFile, abs: (p: string) => string, dataDir: string): Config['twm'] {
  return {
    enabled: c.twm.enabled,
    host: c.twm.host,
    port: c.twm.port,
    publicHost: c.twm.public_host ?? c.hostname,
    publicPort: c.twm.public_port ?? (c.twm.port === 0 ? null : c.twm.port),
    selector: c.twm.selector,
    key: c.twm.key ? abs(c.twm.key) : resolve(dataDir, 'twm-ed25519.key'),
    tls: c.twm.cert && c.twm.cert_key ? { cert: abs(c.twm.cert), key: abs(c.twm.cert_key) } : null,
    trustAnchors: c.twm.trust_anchors.map((p) => abs(p)),
    expiryMs: c.twm.expiry,
    fetchJitterMs: c.twm.fetch_jitter,
    approvalDelayMs: c.twm.approval_delay,
    declineDelayMs: c.twm.decline_delay,
    pendingHoldMs: c.twm.pending_hold,
    pendingCaps: { perSender: c.twm.pending_per_sender, perUser: c.twm.pending_per_user },
    uniformAnswers: c.twm.uniform_answers,
    testing: c.twm.testing,
    dnssec: c.twm.dnssec,
    policyPort: c.twm.policy_port,
    lab: c.twm.lab,
    noticeRate: { perSecond: c.twm.notices_per_second, burst: c.twm.notice_burst },
    clientRate: { perSecond: c.twm.client_requests_per_second, burst: c.twm.client_burst },
  };
}

/** The [spam] section, in the names the code uses. */
function spamConfig(c: ConfigFile): Config['spam'] {
  if (!c.spam) return null;
  return {
    url: c.spam.url.replace(/\/+$/, ''),
    controllerUrl: (c.spam.controller_url ?? controllerOf(c.spam.url)).replace(/\/+$/, ''),
    password: c.spam.password ?? null,
    timeoutMs: c.spam.timeout_ms,
    maxSize: c.spam.max_size,
    onUnreachable: c.spam.on_unreachable,
    judge:
      c.spam.judge_by === 'actions'
        ? { by: 'actions' }
        : { by: 'score', thresholds: { reject: c.spam.reject_score, junk: c.spam.junk_score, greylist: c.spam.greylist_score } },
    learn: c.spam.learn,
  };
}
