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
import { ensureMaterials, type Materials } from './config/materials.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { startDecisionsWorker, type DecisionsWorker } from './delivery/decisions-worker.ts';
import { createLocalTransport } from './delivery/local-transport.ts';
import { startQueueWorker, type QueueWorker } from './delivery/queue-worker.ts';
import { createRemoteTransport } from './delivery/remote-transport.ts';
import { createRouter } from './delivery/router.ts';
import { createSmtpTransport } from './delivery/smtp-transport.ts';
import { createTwmClient } from './delivery/twm-client.ts';
import type { TwmSigningKey } from './delivery/twm-client-types.ts';
import { startTwmFetchWorker, type TwmFetchWorker } from './delivery/twm-fetch-worker.ts';
import { createTwmTransport } from './delivery/twm-transport.ts';
import type { Transport } from './delivery/types.ts';
import { createResolver } from './dns/resolver.ts';
import type { DnsResolver } from './dns/types.ts';
import { createAddressBooks } from './endpoints/carddav/hooks.ts';
import { createInboundHooks } from './endpoints/mx/hooks.ts';
import { createPostmasterLookup } from './endpoints/mx/postmaster.ts';
import { createSubmissionHooks } from './endpoints/submission/hooks.ts';
import { createTwmInbox, type TwmInbox } from './endpoints/twm/inbox.ts';
import { createTwmOutbox, type TwmOutbox } from './endpoints/twm/outbox.ts';
import { createIngest, type Ingest } from './ingest/ingest.ts';
import { createAuthPool, type AuthPool } from './mail/auth-pool.ts';
import type { Authenticator } from './mail/authenticate.ts';
import { createDkimSigner } from './mail/dkim-sign.ts';
import { autoconfigXml } from './endpoints/imap/autoconfig.ts';
import { createImapHooks } from './endpoints/imap/hooks.ts';
import { createHttpApp, startHttpListener } from './protocols/http/app.ts';
import { registerWeb } from './web/plugin.ts';
import { startMetricsListener } from './protocols/http/metrics-listener.ts';
import { startImapListener, type ImapListener } from './protocols/imap/server.ts';
import { startSmtpListener, type SmtpListener } from './protocols/smtp/server.ts';
import { createTwmApp, startTwmListener } from './protocols/twoway/server.ts';
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
  worker: QueueWorker;
  decisionsWorker: DecisionsWorker;
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
    fetchWorker: TwmFetchWorker;
    outbox: TwmOutbox;
    inbox: TwmInbox;
  } | null;
  metrics: Metrics;
  /** The port of the metrics listener (`[metrics]`), null when disabled. */
  metricsPort: number | null;
  clock: Clock;
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
    onError: (err, what) => log.warn({ err }, `${what} failed after delivery`),
    now,
  });
  // Latency hints to this process's workers, live once start() ran; before that (the CLI) the store is the only signal.
  const hints = { queue: () => {}, fetch: () => {}, decisions: () => {} };
  const services = createServices(
    store,
    config.domains,
    {
      sign: createDkimSigner(materials.dkim),
      hostname: config.hostname,
      maxRecipients: config.limits.recipients,
      maxMessageSize: config.limits.messageSize,
      maxReceivedHeaders: config.limits.receivedHeaders,
      headerLimits: config.limits.header,
      allowAddressLiterals: config.submission.addressLiterals,
      onQueued: () => hints.queue(),
    },
    {
      now,
      approvalDelayMs: config.twm.approvalDelayMs,
      declineDelayMs: config.twm.declineDelayMs,
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
      running ??= startApp(app, materials, options, hints);
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

type Hints = { queue: () => void; fetch: () => void; decisions: () => void };

async function startApp(app: App, materials: Materials, options: AppOptions, hints: Hints): Promise<RunningServer> {
  const { config, store, services, ingest, metrics, log, clock } = app;
  const now = () => clock.now();
  const closers: Array<() => Promise<void>> = [() => store.close()];
  try {
    const resolver = options.resolver ?? createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs });

    // Outbound: one queue, one router, one contract for local and remote delivery.
    if (config.delivery.lab) log.warn('delivery.lab is on: SMTP delivery may connect to loopback and private addresses (labs and tests only)');
    const smtpTransport = createSmtpTransport({
      resolver,
      heloName: config.hostname,
      port: config.delivery.port,
      lab: config.delivery.lab,
      // One connection per concurrent delivery to a domain's (usually single) MX host.
      maxConnectionsPerHost: config.delivery.perDomainConcurrency,
      ...(config.delivery.bindAddress ? { localAddress: config.delivery.bindAddress } : {}),
      log: (obj, msg) => log.debug(obj, msg),
    });
    closers.unshift(() => smtpTransport.close());

    // Two-Way Mail (docs/protocol.md): TWM domains get notices instead of SMTP.
    const twmWiring = materials.twm ? wireTwm({ config, keys: materials.twm, store, ingest, resolver, smtp: smtpTransport, metrics, log, now, closers }) : null;
    const worker = startQueueWorker({
      queue: store.queue,
      route: createRouter({ localDomains: config.domains, local: createLocalTransport(ingest), remote: twmWiring?.remote ?? smtpTransport }),
      schedule: {
        baseMs: config.delivery.minBackoffMs,
        maxMs: config.delivery.maxBackoffMs,
        giveUpAfterMs: config.delivery.giveUpAfterMs,
        delayWarningAfterMs: config.delivery.delayWarningAfterMs,
      },
      maxActive: config.delivery.maxActive,
      perDomainConcurrency: config.delivery.perDomainConcurrency,
      reportingMta: config.hostname,
      now,
      notify: (dsn) => deliverSystemMessage(ingest, dsn.sender, dsn.raw, log),
      log: (obj, msg) => log.info(obj, msg),
    });
    closers.unshift(() => worker.stop());
    hints.queue = () => worker.kick();
    if (twmWiring) hints.fetch = () => twmWiring.fetchWorker.kick();

    // Decisions made anywhere (this process, the CLI, another server) reach pending requests and notices from the store.
    const decisionsWorker = startDecisionsWorker({ decisions: app.decisions, log: (obj, msg) => log.info(obj, msg) });
    closers.unshift(() => decisionsWorker.stop());
    hints.decisions = () => decisionsWorker.kick();
    const spamLearning = app.spam?.startLearning(store.spamLearning, { baseMs: config.delivery.minBackoffMs, maxMs: config.delivery.maxBackoffMs }) ?? null;
    if (spamLearning) closers.unshift(() => spamLearning.stop());

    // Finished queue entries stay listed for a while (twoway queue list), then go.
    const prune = () =>
      void store.queue.prune(new Date(now().getTime() - config.delivery.keepHistoryMs)).catch((err: unknown) => log.error({ err }, 'queue prune failed'));
    // Expected-sender entries past their time or out of uses leave the cards hourly (docs/protocol.md 10.3).
    const expectSweep = () => void services.contacts.sweepExpired(now()).catch((err: unknown) => log.error({ err }, 'expected-sender sweep failed'));
    const hourly = [setInterval(prune, 3_600_000), setInterval(expectSweep, 3_600_000)];
    for (const t of hourly) t.unref();
    closers.unshift(async () => {
      for (const t of hourly) clearInterval(t);
    });

    // SPF/DKIM/DMARC of inbound mail run in worker threads, each message within a time budget (mail/auth-pool.ts).
    let authenticate = options.authenticate;
    let authPool: AuthPool | null = null;
    if (!authenticate) {
      const pool = createAuthPool({
        resolver,
        ...(config.limits.authWorkers !== null ? { size: config.limits.authWorkers } : {}),
        budgetMs: config.limits.authBudgetMs,
        onEvent: (event) => log.warn(event, `authentication worker: ${event.kind}`),
      });
      closers.unshift(() => pool.close());
      authenticate = pool.authenticate;
      authPool = pool;
    }
    const smtp = await startSmtpListener({
      hostname: config.hostname,
      host: config.smtp.host,
      port: config.smtp.port,
      tls: materials.tls,
      maxMessageSize: config.limits.messageSize,
      maxRecipients: config.limits.recipients,
      maxConnections: config.limits.connections,
      maxConnectionsPerIp: config.limits.connectionsPerIp,
      headerLimits: config.limits.header,
      hooks: createInboundHooks({
        hostname: config.hostname,
        domains: config.domains,
        ingest,
        authenticate,
        postmaster: createPostmasterLookup(store.users, config.domains, config.postmaster),
        onError: (err, session) => log.error({ err, session: session?.id, remote: session?.remoteAddress }, 'smtp error'),
      }),
    });
    closers.unshift(() => smtp.close());
    let submission: SmtpListener | null = null;
    if (config.submission.enabled && services.outbound) {
      const { hooks, auth } = createSubmissionHooks({
        hostname: config.hostname,
        accounts: services.accounts,
        outbound: services.outbound,
        onError: (err, session) => log.error({ err, session: session?.id, remote: session?.remoteAddress }, 'submission error'),
      });
      submission = await startSmtpListener({
        hostname: config.hostname,
        host: config.submission.host,
        port: config.submission.port,
        tls: materials.tls,
        maxMessageSize: config.limits.messageSize,
        maxRecipients: config.limits.recipients,
        maxConnections: config.limits.connections,
        maxConnectionsPerIp: config.limits.connectionsPerIp,
        headerLimits: config.limits.header,
        hooks,
        auth,
      });
      const listener = submission;
      closers.unshift(() => listener.close());
    }
    const imap = config.imap.enabled ? await startImap(config, materials, store, services, log) : null;
    if (imap) closers.unshift(() => imap.close());
    const httpApp = await createHttpApp({
      services,
      carddav: createAddressBooks(store, services.accounts, () => hints.decisions()),
      log,
      ...(config.http.tls ? { tls: materials.tls } : {}),
      extraRoutes: (a) => {
        // The web app (src/web/) at `/` on the same listener.
        registerWeb(a, { services });
        // Thunderbird's autoconfig (docs/imap.md): the settings for an address of one of our domains.
        a.get('/.well-known/autoconfig/mail/config-v1.1.xml', async (req, reply) => {
          const address = String((req.query as Record<string, unknown>).emailaddress ?? '');
          const domain = config.domains.find((d) => address.toLowerCase().endsWith(`@${d}`)) ?? config.domains[0]!;
          return reply.type('application/xml; charset=utf-8').send(autoconfigXml({ hostname: config.hostname, domain, imap: config.imap, submission: config.submission }));
        });
      },
    });
    const http = await startHttpListener({ host: config.http.host, port: config.http.port, app: httpApp });
    closers.unshift(() => http.close());
    // GET /metrics needs no login: a listener of its own, loopback by default, never the API's.
    const metricsListener = config.metrics
      ? await startMetricsListener({ ...config.metrics, render: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }) })
      : null;
    if (metricsListener) closers.unshift(() => metricsListener.close());

    const twm: RunningServer['twm'] = twmWiring ? await twmWiring.listen() : null;
    log.info({ smtp: `${config.smtp.host}:${smtp.port}`, http: `${config.http.host}:${http.port}`, domains: config.domains }, 'twoway started');
    let closed: Promise<void> | null = null;
    return {
      app,
      config,
      store,
      services,
      smtp,
      authPool,
      submission,
      imap,
      worker,
      decisionsWorker,
      spamLearning,
      twm,
      metrics,
      metricsPort: metricsListener?.port ?? null,
      clock,
      http: { ...http, url: `${config.http.tls ? 'https' : 'http'}://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${http.port}` },
      close: () => (closed ??= runAll(closers)),
    };
  } catch (err) {
    await runAll(closers);
    throw err;
  }
}

interface TwmWiringInput {
  config: Config;
  keys: NonNullable<Materials['twm']>;
  store: Store;
  ingest: Ingest;
  resolver: DnsResolver;
  smtp: Transport;
  metrics: Metrics;
  log: Logger;
  now: () => Date;
  closers: Array<() => Promise<void>>;
}

/**
 * Two-Way Mail's parts: the client, the remote transport that picks TWM or
 * SMTP, the recipient's fetch worker and notice decisions, the sender's
 * outbox with its expiry sweep, and `listen()` for the HTTPS endpoint (last,
 * like every listener). Closers are registered as parts start.
 */
function wireTwm({ config, keys, store, ingest, resolver, smtp, metrics, log, now, closers }: TwmWiringInput) {
  if (config.twm.lab) log.warn('twm.lab is on: TWM may connect to loopback and private addresses (labs and tests only)');
  const keyFor = (domain: string): TwmSigningKey => ({ selector: keys.selector, domain, privateKey: keys.privateKey });
  // No clock here: signatures carry the system time, which peers check against theirs.
  const client = createTwmClient({ resolver, trustAnchors: keys.trustAnchors, lab: config.twm.lab });
  closers.unshift(() => client.close());
  const remote = createRemoteTransport({
    smtp,
    twm: createTwmTransport({ outbox: store.twmOut, client, key: keyFor, expiryMs: config.twm.expiryMs, now }),
    client,
    outbox: store.twmOut,
    domains: config.domains,
  });
  const fetchWorker = startTwmFetchWorker({
    inbox: store.twmIn,
    ingest,
    client,
    key: keyFor,
    hostname: config.hostname,
    maxMessageSize: config.limits.messageSize,
    headerLimits: config.limits.header,
    backoff: { baseMs: config.delivery.minBackoffMs, maxMs: config.delivery.maxBackoffMs, jitter: 0.1 },
    now,
    log: (obj, msg) => log.info(obj, msg),
    onFetch: (outcome) => metrics.twmFetched.inc({ outcome }),
  });
  closers.unshift(() => fetchWorker.stop());
  const inbox = createTwmInbox({
    inbox: store.twmIn,
    ingest,
    resolver,
    domains: config.domains,
    maxMessageSize: config.limits.messageSize,
    uniformAnswers: config.twm.uniformAnswers,
    noticeRate: config.twm.noticeRate,
    fetchJitterMs: config.twm.fetchJitterMs,
    declineDelayMs: config.twm.declineDelayMs,
    kick: () => fetchWorker.kick(),
    now,
  });
  const outbox = createTwmOutbox({
    outbox: store.twmOut,
    hostname: config.hostname,
    notifyUser: (address, raw) => deliverSystemMessage(ingest, address, raw, log),
    log: (obj, msg) => log.info(obj, msg),
    now,
  });
  // Sent notices expire (checked every minute); finished history goes after delivery.keep_history.
  const sweep = () => void outbox.sweep().catch((err: unknown) => log.error({ err }, 'twm expiry sweep failed'));
  const prune = () => {
    const old = new Date(now().getTime() - config.delivery.keepHistoryMs);
    void Promise.all([store.twmOut.prune(old), store.twmIn.prune(old)]).catch((err: unknown) => log.error({ err }, 'twm prune failed'));
  };
  const timers = [setInterval(sweep, 60_000), setInterval(prune, 3_600_000)];
  for (const t of timers) t.unref();
  closers.unshift(async () => {
    for (const t of timers) clearInterval(t);
  });

  async function listen(): Promise<NonNullable<RunningServer['twm']>> {
    // The authority other servers sign for is the SRV target and port; with port 0 (tests) it is known only after listening.
    const authorities: string[] = [];
    const app = await createTwmApp({
      hooks: { ...inbox.hooks, ...outbox.hooks, onRefused: (endpoint, code) => metrics.twmRefused.inc({ endpoint, code }) },
      authorities,
      maxMessageSize: config.limits.messageSize,
      clientRate: config.twm.clientRate,
      tls: keys.tls,
      log,
    });
    const listener = await startTwmListener({ host: config.twm.host, port: config.twm.port, app });
    closers.unshift(() => listener.close());
    const port = config.twm.publicPort ?? listener.port;
    const authority = port === 443 ? config.twm.publicHost : `${config.twm.publicHost}:${port}`;
    authorities.push(authority);
    return { port: listener.port, authority, inbox, outbox, fetchWorker };
  }

  return { remote, fetchWorker, listen };
}

/**
 * A system message (a DSN, a TWM status message) for a local sender, through
 * the one ingest path (system origin: always INBOX).
 */
async function deliverSystemMessage(ingest: Ingest, sender: string, raw: Buffer, log: Logger): Promise<void> {
  const user = await ingest.findRecipient(sender);
  if (!user) {
    log.warn({ sender }, 'no local mailbox for a delivery status notification; dropped');
    return;
  }
  await ingest.ingest({
    channel: 'smtp',
    origin: 'system',
    envelopeFrom: null,
    recipients: [user],
    raw,
    prepend: '',
    auth: { identity: null, alignedDomain: null, authenticatedDomains: [] },
  });
}

/** IMAP (docs/imap.md): the wire code with the store's mail and the Screener's decisions behind its hooks. */
function startImap(config: Config, materials: Materials, store: Store, services: Services, log: Logger): Promise<ImapListener> {
  const onError = (err: unknown) => log.error({ err }, 'imap error');
  return startImapListener({
    hostname: config.hostname,
    host: config.imap.host,
    port: config.imap.port,
    tlsPort: config.imap.tlsPort,
    tls: materials.tls,
    allowPlaintextAuth: config.imap.allowPlaintextAuth,
    hooks: createImapHooks({ store, accounts: services.accounts, screener: services.screener, hostname: config.hostname, maxConnectionsPerUser: config.imap.maxConnectionsPerUser, onError }),
    limits: {
      maxLine: config.imap.maxLine,
      maxLiteral: config.limits.messageSize,
      commandsPerSecond: config.imap.commandsPerSecond,
      commandBurst: config.imap.commandsPerSecond * 2,
      maxConnections: config.imap.maxConnections,
      maxConnectionsPerIp: config.imap.maxConnectionsPerIp,
      idleTimeoutMs: config.imap.idleTimeoutMs,
    },
    onError,
  });
}

async function runAll(closers: Array<() => Promise<void>>): Promise<void> {
  for (const close of closers) await close().catch(() => undefined);
}
