/**
 * The composition root, the one place that builds the application:
 * config -> key material -> store -> resolver -> ingest -> services ->
 * decisions, with `start()` adding the workers (queue, TWM fetches,
 * decisions reconcile, sweeps) and the listeners (MX, submission, IMAP,
 * HTTP(S), TWM). Construction opens the store and starts nothing, so:
 *
 *   - `twoway start` (and tests, the demo, the benchmarks): `(await createApp(config)).start()`;
 *   - every other CLI command: `(await createApp(config)).services`, then
 *     `close()`: the same services on the same store, no worker, no socket.
 *
 * Whatever one process decides is stored state that the workers of any
 * running process pick up by polling (queue entries, TWM state rows, the
 * allowlist-changed marks); in-process "kicks" only save a poll interval.
 */
import { pino, type Logger } from 'pino';
import type { Config } from './config/load.ts';
import { ensureMaterials } from './config/materials.ts';
import { systemClock, type Clock } from './core/clock.ts';
import type { DecisionsWorker } from './delivery/decisions-worker.ts';
import type { QueueWorker } from './delivery/queue-worker.ts';
import type { Hints } from './app-start.ts';
import type { TwmFetchWorker } from './delivery/twm-fetch-worker.ts';
import type { DnsResolver } from './dns/types.ts';
import type { TwmInbox } from './endpoints/twm/inbox.ts';
import type { TwmOutbox } from './endpoints/twm/outbox.ts';
import { createIngest, type Ingest } from './ingest/ingest.ts';
import type { AuthPool } from './mail/auth-pool.ts';
import type { Authenticator } from './mail/authenticate.ts';
import type { ImapListener } from './protocols/imap/server.ts';
import type { SmtpListener } from './protocols/smtp/server.ts';
import { createDecisions, type Decisions } from './services/decisions.ts';
import { createServices, type Services } from './services/index.ts';
import { createMetrics, type Metrics } from './services/metrics.ts';
import { createSpamFilter, type SpamFilter } from './spam/index.ts';
import type { LearnWorker } from './spam/learn-worker.ts';
import { openStore } from './store/open.ts';
import type { Store } from './store/types.ts';

export interface AppOptions {
  logger?: Logger;
  /** Overrides the resolver built from config.dns (tests may share one). */
  resolver?: DnsResolver;
  /**
   * The time the application computes with (queue schedules, TWM delays and
   * expiry, Screener decisions, sweeps); the system clock by default. TWM
   * signatures on the wire keep the system time: peers check them against theirs.
   */
  clock?: Clock;
  /** Replaces SPF/DKIM/DMARC checking of inbound SMTP (the benchmarks' `no-auth` experiment only). */
  authenticate?: Authenticator;
  /** Which of the supervisor's worker processes this is (0 without a supervisor): part of the process's lease owner name. */
  workerIndex?: number;
}

export interface App {
  config: Config;
  store: Store;
  services: Services;
  ingest: Ingest;
  /** Re-decides pending requests and notices of users whose address book changed (services/decisions.ts). */
  decisions: Decisions;
  /** rspamd, when [spam] is configured (spam/index.ts). */
  spam: SpamFilter | null;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
  /** Starts the workers, the sweeps and the listeners. Once per app. */
  start(): Promise<RunningServer>;
  /** Stops what start() started (if it ran) and closes the store. */
  close(): Promise<void>;
}

export interface RunningServer {
  app: App;
  config: Config;
  store: Store;
  services: Services;
  smtp: SmtpListener;
  /** The authenticated submission listener, unless disabled. */
  submission: SmtpListener | null;
  /** The IMAP listeners, unless `[imap] enabled = false`. */
  imap: ImapListener | null;
  /** Null in a supervised worker without the background work (AppOptions.background). */
  worker: QueueWorker | null;
  decisionsWorker: DecisionsWorker | null;
  /** The worker that teaches rspamd, when [spam] learns. */
  spamLearning: LearnWorker | null;
  http: { port: number; url: string; close(): Promise<void> };
  /** The authentication workers of the MX listener; null when AppOptions.authenticate replaced them. */
  authPool: AuthPool | null;
  /** Two-Way Mail, when [twm] is enabled. */
  twm: {
    port: number;
    /** `host:port` as published in the SRV record and checked in signatures. */
    authority: string;
    fetchWorker: TwmFetchWorker | null;
    outbox: TwmOutbox;
    inbox: TwmInbox;
  } | null;
  metrics: Metrics;
  /** The port of the metrics listener (`[metrics]`), null when disabled. */
  metricsPort: number | null;
  clock: Clock;
  /** A "new work now" hint to this process's worker (or forwarded to the one that has it). */
  kick(what: 'queue' | 'fetch' | 'decisions'): void;
  close(): Promise<void>;
}

export function createLogger(level: Config['log']['level']): Logger {
  // Logs go to stderr so that CLI output on stdout stays machine-readable.
  return pino({ level, redact: ['password', 'token', '*.password', '*.token', 'req.headers.authorization'] }, pino.destination(2));
}

/** Builds the application on an open store; starts nothing (see the module comment). */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.logger ?? createLogger(config.log.level);
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const materials = ensureMaterials(config);
  const store = await openStore(config.storage);
  // [spam]: rspamd judges strangers' mail in ingest; learning is queued work (null without the section).
  const spam = createSpamFilter(config.spam, { warn: (o, m) => log.warn(o, m), info: (o, m) => log.info(o, m) });
  const ingest = createIngest({
    store,
    ...(spam ? { spam: spam.ingest } : {}),
    maxReceivedHeaders: config.limits.receivedHeaders,
    headerLimits: config.limits.header,
    onOutcome: (o) => log.info({ rcpt: o.user.address, verdict: o.verdict.kind, reasons: o.verdict.reasons }, 'message decided'),
    now,
  });
  // Latency hints to this process's workers, live once start() ran; before that (the CLI) the store is the only signal.
  const hints: Hints = { queue: () => {}, fetch: () => {}, decisions: () => {} };
  const services = createServices(
    store,
    config.domains,
    {
      hostname: config.hostname,
      maxRecipients: config.limits.recipients,
      maxMessageSize: config.limits.messageSize,
      maxReceivedHeaders: config.limits.receivedHeaders,
      headerLimits: config.limits.header,
      allowAddressLiterals: config.submission.addressLiterals,
      relaySenders: config.submission.relaySenders,
      onQueued: (recipients) => hints.queue(recipients),
    },
    {
      now,
      approvalDelayMs: config.twm.approvalDelayMs,
      declineDelayMs: config.twm.declineDelayMs,
      loginCacheMs: config.server.loginCacheMs,
      onTwmScheduled: () => hints.fetch(),
      onAllowlistChanged: () => hints.decisions(),
      learn: spam?.learn === true,
    },
  );
  const decisions = createDecisions({ store, ingest, twm: services.twmDecisions, now });
  const metrics = createMetrics();

  let running: Promise<RunningServer> | null = null;
  let closed: Promise<void> | null = null;
  const app: App = {
    config,
    store,
    services,
    ingest,
    decisions,
    spam,
    metrics,
    clock,
    log,
    start() {
      if (closed) return Promise.reject(new Error('the app is closed'));
      running ??= import('./app-start.ts').then(({ startApp }) => startApp(app, materials, options, hints));
      return running;
    },
    close() {
      closed ??= (async () => {
        const server = running ? await running.catch(() => null) : null;
        if (server) await server.close();
        else await store.close();
      })();
      return closed;
    },
  };
  return app;
}

/** Shorthand for `twoway start` and tests: build the app and start everything. */
export async function startServer(config: Config, options: AppOptions = {}): Promise<RunningServer> {
  const app = await createApp(config, options);
  try {
    return await app.start();
  } catch (err) {
    await app.close();
    throw err;
  }
}

