/**
 * What `app.start()` adds to the application built by `createApp`
 * (app.ts): the resolver, the transports, the workers (queue, TWM fetches,
 * decisions reconcile, spam learning, sweeps) and the listeners (MX,
 * submission, IMAP, HTTP(S) with the API, CardDAV and the web app, metrics,
 * TWM). A module of its own, loaded by `start()` only, so that CLI commands,
 * which never start anything, load none of it.
 */
import type { Logger } from 'pino';
import type { Config } from './config/load.ts';
import type { Materials } from './config/materials.ts';
import { startDecisionsWorker } from './delivery/decisions-worker.ts';
import { createLocalTransport } from './delivery/local-transport.ts';
import { processOwner, processSlot, startQueueWorker } from './delivery/queue-worker.ts';
import { createRemoteTransport } from './delivery/remote-transport.ts';
import { createRouter } from './delivery/router.ts';
import { createSmtpTransport } from './delivery/smtp-transport.ts';
import { createDkimSigningTransport } from './delivery/dkim-signing-transport.ts';
import { createTwmClient } from './delivery/twm-client.ts';
import { ed25519Implementation } from './core/ed25519.ts';
import type { TwmClient, TwmSigningKey } from './delivery/twm-client-types.ts';
import { dnssecParts } from './twm-dnssec-wiring.ts';
import { startTwmFetchWorker, type TwmFetchWorker } from './delivery/twm-fetch-worker.ts';
import { createTwmTransport } from './delivery/twm-transport.ts';
import { createDkimSigner } from './mail/dkim-sign.ts';
import { createTwmReports, type TwmReports } from './services/twm-reports.ts';
import type { Transport } from './delivery/types.ts';
import { createResolver } from './dns/resolver.ts';
import type { DnsResolver } from './dns/types.ts';
import { createAddressBooks } from './endpoints/carddav/hooks.ts';
import { createInboundHooks } from './endpoints/mx/hooks.ts';
import { createPostmasterLookup } from './endpoints/mx/postmaster.ts';
import { createSubmissionHooks } from './endpoints/submission/hooks.ts';
import { createTwmInbox, type TwmInbox } from './endpoints/twm/inbox.ts';
import { SOLE_WRITER_TTL_MS } from './endpoints/twm/pending-totals.ts';
import { createTwmOutbox, type TwmOutbox } from './endpoints/twm/outbox.ts';
import type { Ingest } from './ingest/ingest.ts';
import { createAuthPool, type AuthPool } from './mail/auth-pool.ts';
import { autoconfigXml } from './endpoints/imap/autoconfig.ts';
import { createImapHooks } from './endpoints/imap/hooks.ts';
import { createHttpApp, startHttpListener } from './protocols/http/app.ts';
import type { ClientSettings } from './web/context.ts';
import { registerWeb } from './web/plugin.ts';
import { startMetricsListener } from './protocols/http/metrics-listener.ts';
import { startImapListener, type ImapListener } from './protocols/imap/server.ts';
import { startSmtpListener, type SmtpListener } from './protocols/smtp/server.ts';
import { createTwmApp, startTwmListener } from './protocols/twoway/server.ts';
import { startClusterSweeps, type SweepJob } from './services/cluster-sweeps.ts';
import type { Services } from './services/index.ts';
import type { Metrics } from './services/metrics.ts';
import type { SpamFilter } from './spam/index.ts';
import type { Store } from './store/types.ts';
import type { App, AppOptions, RunningServer } from './app.ts';
import { lowerHelperThreads } from './platform/thread-priority.ts';

/** How long an authentication worker reuses a DNS answer (mail/auth-pool.ts `dnsReuseMs`). */
const AUTH_DNS_REUSE_MS = 2000;

export type Hints = { queue: (recipients?: readonly string[]) => void; fetch: () => void; decisions: () => void };

/** What the parts of `startApp` share; each part adds its closers in start order. */
interface StartContext {
  app: App;
  materials: Materials;
  options: AppOptions;
  hints: Hints;
  closers: Array<() => Promise<void>>;
  resolver: DnsResolver;
  now: () => Date;
  /** This process's name in the store's leases: work it claims is its own until the lease ends (docs/architecture.md 12). */
  owner: string;
}

export async function startApp(app: App, materials: Materials, options: AppOptions, hints: Hints): Promise<RunningServer> {
  const { config, store, services, metrics, log, clock } = app;
  const now = () => clock.now();
  const closers: Array<() => Promise<void>> = [() => store.close()];
  try {
    const resolver = options.resolver ?? createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs });
    const owner = await takeOverSlot(app, options.workerIndex ?? 0);
    const ctx: StartContext = { app, materials, options, hints, closers, resolver, now, owner };
    const { twmWiring, worker } = startOutbound(ctx);
    const { decisionsWorker, spamLearning } = startBackground(ctx, twmWiring?.sweeps ?? []);
    const { smtp, authPool, submission } = await startMailListeners(ctx);
    const imap = config.imap.enabled ? await startImap(config, materials, store, services, log, app.spam?.learn === true) : null;
    if (imap) closers.unshift(() => imap.close());
    // The settings page shows the ports these listeners really bound (port 0 in tests).
    const clients: ClientSettings = {
      hostname: config.hostname,
      imap: imap && (imap.port !== null || imap.tlsPort !== null) ? { port: imap.port, tlsPort: imap.tlsPort } : null,
      submission: submission ? { port: submission.port } : null,
    };
    const { http, metricsListener } = await startHttp(ctx, clients);

    const twm: RunningServer['twm'] = twmWiring ? await twmWiring.listen() : null;
    // Which Ed25519 signs and verifies TWM requests (core/ed25519.ts): node:crypto means the optional sodium-native did not load.
    // Asking loads it now (about 15 ms), not in the first request's handler.
    const signatures = twm ? { twmSignatures: ed25519Implementation() } : {};
    log.info({ smtp: `${config.smtp.host}:${smtp.port}`, http: `${config.http.host}:${http.port}`, domains: config.domains, ...signatures }, 'twoway started');
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
      kick: (what) => hints[what](),
      close: () => (closed ??= runAll(closers)),
    };
  } catch (err) {
    await runAll(closers);
    throw err;
  }
}


/** The SMTP transport, TWM (when keyed) and the queue worker over the router. */
function startOutbound(ctx: StartContext) {
  const { config, store, ingest, metrics, log } = ctx.app;
  const { closers, now, hints, materials, resolver, owner } = ctx;
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
  // Every SMTP hand-off of our mail passes here and is DKIM-signed on its way; TWM needs no DKIM.
  const smtp = createDkimSigningTransport({ smtp: smtpTransport, sign: createDkimSigner(materials.dkim), domains: config.domains });

  // Two-Way Mail (docs/protocol.md): TWM domains get notices instead of SMTP.
  const twmWiring = materials.twm ? wireTwm({ config, keys: materials.twm, store, ingest, resolver, smtp, metrics, log, now, owner, closers, spam: ctx.app.spam }) : null;
  const worker = startQueueWorker({
    queue: store.queue,
    route: createRouter({ localDomains: config.domains, local: createLocalTransport(ingest, config.domains), remote: twmWiring?.remote ?? smtp }),
    schedule: {
      baseMs: config.delivery.minBackoffMs,
      maxMs: config.delivery.maxBackoffMs,
      giveUpAfterMs: config.delivery.giveUpAfterMs,
      delayWarningAfterMs: config.delivery.delayWarningAfterMs,
    },
    maxActive: config.delivery.maxActive,
    perDomainConcurrency: config.delivery.perDomainConcurrency,
    owner,
    leaseMs: config.delivery.leaseMs,
    reportingMta: config.hostname,
    now,
    notify: (dsn) => deliverSystemMessage(ingest, dsn.sender, dsn.raw, log),
    log: (obj, msg) => log.info(obj, msg),
  });
  closers.unshift(() => worker.stop());
  // "Due now" reaches every node's queue worker (LISTEN/NOTIFY on PostgreSQL); polling is the fallback.
  const unsubscribe = store.signals.onQueued((recipients) => worker.kick(recipients));
  closers.unshift(async () => unsubscribe());
  hints.queue = (recipients) => store.signals.queued(recipients);
  if (twmWiring) hints.fetch = () => twmWiring.fetchWorker.kick();

  return { twmWiring, worker };
}

/** The decisions worker, spam learning and the periodic sweeps (once per cluster: services/cluster-sweeps.ts). */
function startBackground(ctx: StartContext, twmSweeps: SweepJob[]) {
  const { config, store, log, services } = ctx.app;
  const { closers, now, hints, owner } = ctx;
  // Decisions made anywhere (this process, the CLI, another server) reach pending requests and notices from the store.
  const decisionsWorker = startDecisionsWorker({ decisions: ctx.app.decisions, log: (obj, msg) => log.info(obj, msg) });
  closers.unshift(() => decisionsWorker.stop());
  hints.decisions = () => decisionsWorker.kick();
  // Claimed like the queue (any process of any node may send a row), under the same lease.
  const backoff = { baseMs: config.delivery.minBackoffMs, maxMs: config.delivery.maxBackoffMs };
  const spamLearning = ctx.app.spam?.startLearning(store.spamLearning, backoff, { owner, leaseMs: config.delivery.leaseMs }) ?? null;
  if (spamLearning) closers.unshift(() => spamLearning.stop());

  // Periodic sweeps run in the one process holding the store's `sweeps` lease.
  const sweeps = startClusterSweeps({
    leases: store.leases,
    owner,
    now,
    log: (obj, msg) => log.info(obj, msg),
    jobs: [
      // Finished queue entries stay listed for a while (twoway queue list), then go.
      { name: 'queue-prune', everyMs: 3_600_000, run: () => store.queue.prune(new Date(now().getTime() - config.delivery.keepHistoryMs)) },
      // Expected-sender entries past their time or out of uses leave the cards hourly (docs/protocol.md 10.3).
      { name: 'expected-senders', everyMs: 3_600_000, run: () => services.contacts.sweepExpired(now()) },
      { name: 'twm-nonces', everyMs: 300_000, run: () => store.twmNonces.prune(now()) },
      // Testing mode's first-copy records (6.6) pair nothing after the longest notice lifetime, 30 days.
      { name: 'twm-copies', everyMs: 3_600_000, run: () => store.messages.pruneCopies(new Date(now().getTime() - 31 * 86_400_000)) },
      // Finished spam learning rows of messages that are gone guard nothing any more (docs/architecture.md 8).
      { name: 'spam-learning-prune', everyMs: 3_600_000, run: () => store.spamLearning.pruneGone() },
      ...twmSweeps,
    ],
  });
  closers.unshift(() => sweeps.stop());

  return { decisionsWorker, spamLearning };
}

/** The authentication pool (unless given), the MX listener and the submission listener. */
async function startMailListeners(ctx: StartContext) {
  const { config, store, ingest, log, services } = ctx.app;
  const { closers, materials, resolver, options } = ctx;
  // SPF/DKIM/DMARC of inbound mail run in worker threads, each message within a time budget (mail/auth-pool.ts).
  let authenticate = options.authenticate;
  let authPool: AuthPool | null = null;
  if (!authenticate) {
    const pool = createAuthPool({
      resolver,
      ...(config.limits.authWorkers !== null ? { size: config.limits.authWorkers } : {}),
      budgetMs: config.limits.authBudgetMs,
      // The workers keep answers briefly (mail/auth-worker.ts), never longer than the resolver caches them.
      dnsReuseMs: 'cacheTtlCapSeconds' in resolver ? Math.min(AUTH_DNS_REUSE_MS, Number(resolver.cacheTtlCapSeconds) * 1000) : 0,
      onEvent: (event) => log.warn(event, `authentication worker: ${event.kind}`),
    });
    closers.unshift(() => pool.close());
    authenticate = pool.authenticate;
    authPool = pool;
  }
  // The same limits and certificate on the MX and the submission listener.
  const limits = {
    tls: materials.tls,
    maxMessageSize: config.limits.messageSize,
    maxRecipients: config.limits.recipients,
    maxConnections: config.limits.connections,
    maxConnectionsPerIp: config.limits.connectionsPerIp,
    headerLimits: config.limits.header,
  };
  const smtp = await startSmtpListener({
    hostname: config.hostname,
    host: config.smtp.host,
    port: config.smtp.port,
    ...limits,
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
  // The first inbound message would otherwise wait for a worker to start (module loading: about 1.6 s
  // from the TypeScript sources on a loaded 2-core machine, the first confirmation of the extension's tests).
  authPool?.warm();
  // Likewise the message writer's thread (store/message-writer.ts), which loads the store's modules.
  store.messages.warm();
  // V8's and libuv's helper threads below the event loop, as the workers above put themselves (platform/thread-priority.ts).
  lowerHelperThreads();
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
      ...limits,
      hooks,
      auth,
    });
    const listener = submission;
    closers.unshift(() => listener.close());
  }
  return { smtp, authPool, submission };
}

/** The HTTP(S) listener (API, CardDAV, web app, autoconfig) and the metrics listener. */
async function startHttp(ctx: StartContext, clients: ClientSettings) {
  const { config, store, metrics, log, services } = ctx.app;
  const { closers, hints, materials } = ctx;
  const httpApp = await createHttpApp({
    services,
    carddav: createAddressBooks(store, services.accounts, () => hints.decisions()),
    log,
    ...(config.http.tls ? { tls: materials.tls } : {}),
    extraRoutes: (a) => {
      // The web app (src/web/) at `/` on the same listener.
      registerWeb(a, { services, clients });
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

  return { http, metricsListener };
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
  owner: string;
  closers: Array<() => Promise<void>>;
  spam: SpamFilter | null;
}

/**
 * Two-Way Mail's parts: the client, the remote transport that picks TWM or
 * SMTP, the recipient's fetch worker and notice decisions, the sender's
 * outbox with its expiry sweep, and `listen()` for the HTTPS endpoint (last,
 * like every listener). Closers are registered as parts start.
 */
function wireTwm(w: TwmWiringInput) {
  const { config, keys, store, resolver, smtp, log, closers } = w;
  if (config.twm.lab) log.warn('twm.lab is on: TWM may connect to loopback and private addresses (labs and tests only)');
  const keyFor = (domain: string): TwmSigningKey => ({ selector: keys.selector, domain, privateKey: keys.privateKey });
  // No clock here: signatures carry the system time, which peers check against theirs.
  const dnssec = dnssecParts(config, resolver, keys.trustAnchors, log);
  const client = createTwmClient({ resolver, trustAnchors: keys.trustAnchors, lab: config.twm.lab, ...dnssec.client });
  closers.unshift(() => client.close());
  const reports = startTwmReports(w);
  const remote = createRemoteTransport({
    smtp,
    twm: createTwmTransport({ outbox: store.twmOut, client, key: keyFor, expiryMs: config.twm.expiryMs, domains: config.domains, now: w.now, report: reports.count }),
    client,
    outbox: store.twmOut,
    domains: config.domains,
    testing: config.twm.testing,
    report: reports.count,
  });
  const fetchWorker = startFetchWorker(w, client, keyFor, reports);
  const inbox = twmInbox(w, dnssec.lookupKey, fetchWorker);
  const outbox = createTwmOutbox({
    outbox: store.twmOut,
    hostname: config.hostname,
    notifyUser: (address, raw) => deliverSystemMessage(w.ingest, address, raw, log),
    log: (obj, msg) => log.info(obj, msg),
    now: w.now,
  });
  const sweeps = twmSweeps(w, outbox, reports);
  const listen = () => listenTwm(w, { inbox, outbox, fetchWorker, reports });
  return { remote, fetchWorker, sweeps, listen };
}

/** Failure reports (6.6): counted as exchanges end, written once a second, mailed daily by the `twm-reports` sweep. */
function startTwmReports({ config, store, resolver, now, log, closers }: TwmWiringInput): TwmReports {
  const reports = createTwmReports({
    reports: store.twmReports,
    queue: store.queue,
    resolver,
    hostname: config.hostname,
    from: config.postmaster ?? `postmaster@${config.domains[0]}`,
    now,
    log: (obj, msg) => log.info(obj, msg),
  });
  const flushReports = setInterval(() => void reports.flush(), 1000);
  flushReports.unref();
  closers.unshift(async () => {
    clearInterval(flushReports);
    await reports.flush();
  });
  return reports;
}

/** The recipient's side: fetches the messages of notices whose sender is allowed, and sends the receipts. */
function startFetchWorker(w: TwmWiringInput, client: TwmClient, keyFor: (domain: string) => TwmSigningKey, reports: TwmReports): TwmFetchWorker {
  const { config, store, metrics, log, closers } = w;
  const fetchWorker = startTwmFetchWorker({
    inbox: store.twmIn,
    ingest: w.ingest,
    client,
    key: keyFor,
    hostname: config.hostname,
    maxMessageSize: config.limits.messageSize,
    headerLimits: config.limits.header,
    backoff: { baseMs: config.delivery.minBackoffMs, maxMs: config.delivery.maxBackoffMs, jitter: 0.1 },
    owner: w.owner,
    leaseMs: config.delivery.leaseMs,
    // Notice expiry is one of the cluster-wide sweeps (startBackground).
    expire: false,
    now: w.now,
    log: (obj, msg) => log.info(obj, msg),
    onFetch: (outcome) => metrics.twmFetched.inc({ outcome }),
    pendingHoldMs: config.twm.pendingHoldMs,
    report: reports.count,
  });
  closers.unshift(() => fetchWorker.stop());
  return fetchWorker;
}

/** The notices other servers post here, and their decisions. */
function twmInbox(w: TwmWiringInput, lookupKey: ReturnType<typeof dnssecParts>['lookupKey'], fetchWorker: TwmFetchWorker): TwmInbox {
  const { config, store, spam } = w;
  return createTwmInbox({
    inbox: store.twmIn,
    ingest: w.ingest,
    resolver: w.resolver,
    domains: config.domains,
    maxMessageSize: config.limits.messageSize,
    uniformAnswers: config.twm.uniformAnswers,
    noticeRate: config.twm.noticeRate,
    pendingCaps: config.twm.pendingCaps,
    // One process on a SQLite file records every notice: its pending counts miss nothing (pending-totals.ts).
    ...(store.kind === 'sqlite' && config.server.processes === 1 ? { pendingCountTtlMs: SOLE_WRITER_TTL_MS } : {}),
    fetchJitterMs: config.twm.fetchJitterMs,
    declineDelayMs: config.twm.declineDelayMs,
    // A restart refuses signatures that the previous process may have seen (5.5); a new store had none.
    ...(store.createdNow ? { noncesSince: new Date(0) } : {}),
    kick: () => fetchWorker.kick(),
    // In the store: a request replayed at another node (or process) is refused too.
    nonces: store.twmNonces,
    now: w.now,
    ...(lookupKey ? { lookupKey } : {}),
    ...(spam ? { scanIntro: spam.scanIntro } : {}),
  });
}

/** Sent notices expire (checked every minute), received ones every few seconds; finished history goes after delivery.keep_history. */
function twmSweeps({ config, store, now }: TwmWiringInput, outbox: TwmOutbox, reports: TwmReports): SweepJob[] {
  return [
    { name: 'twm-out-expiry', everyMs: 60_000, run: () => outbox.sweep() },
    // Checked hourly; a day's reports go out in the first run after it ends (UTC).
    { name: 'twm-reports', everyMs: 3_600_000, run: () => reports.run() },
    { name: 'twm-in-expiry', everyMs: 5_000, run: () => store.twmIn.expire(now(), new Date(now().getTime() - config.twm.pendingHoldMs)) },
    {
      name: 'twm-prune',
      everyMs: 3_600_000,
      run: () => {
        const old = new Date(now().getTime() - config.delivery.keepHistoryMs);
        return Promise.all([store.twmOut.prune(old), store.twmIn.prune(old)]);
      },
    },
  ];
}

/** The HTTPS endpoint, started last like every listener. */
async function listenTwm(
  { config, keys, metrics, log, closers }: TwmWiringInput,
  parts: { inbox: TwmInbox; outbox: TwmOutbox; fetchWorker: TwmFetchWorker; reports: TwmReports },
): Promise<NonNullable<RunningServer['twm']>> {
  const { inbox, outbox, fetchWorker, reports } = parts;
  // The authority other servers sign for is the SRV target and port; with port 0 (tests) it is known only after listening.
  const authorities: string[] = [];
  const app = await createTwmApp({
    hooks: {
      ...inbox.hooks,
      ...outbox.hooks,
      onRefused: (endpoint, code, signerDomain) => {
        metrics.twmRefused.inc({ endpoint, code });
        // Only after the signature verified: a claimed domain is not counted against (6.6).
        if (signerDomain) reports.count(signerDomain, `refused-${endpoint}-${code}`);
      },
    },
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
function startImap(config: Config, materials: Materials, store: Store, services: Services, log: Logger, learn: boolean): Promise<ImapListener> {
  const onError = (err: unknown) => log.error({ err }, 'imap error');
  return startImapListener({
    hostname: config.hostname,
    host: config.imap.host,
    port: config.imap.port,
    tlsPort: config.imap.tlsPort,
    tls: materials.tls,
    allowPlaintextAuth: config.imap.allowPlaintextAuth,
    hooks: createImapHooks({ store, accounts: services.accounts, screener: services.screener, hostname: config.hostname, maxConnectionsPerUser: config.imap.maxConnectionsPerUser, learn, onError }),
    limits: {
      maxLine: config.imap.maxLine,
      maxLiteral: config.limits.messageSize,
      commandsPerSecond: config.imap.commandsPerSecond,
      commandBurst: config.imap.commandsPerSecond * 2,
      maxConnections: config.imap.maxConnections,
      maxConnectionsPerIp: config.imap.maxConnectionsPerIp,
      idleTimeoutMs: config.imap.idleTimeoutMs,
    },
    wireCacheBytes: config.imap.wireCacheBytes,
    // A diagnostic, not a setting (docs/imap.md): per-command timings appended to this file.
    ...(process.env.TWOWAY_IMAP_TRACE ? { traceFile: process.env.TWOWAY_IMAP_TRACE } : {}),
    onError,
  });
}

async function runAll(closers: Array<() => Promise<void>>): Promise<void> {
  for (const close of closers) await close().catch(() => undefined);
}

/**
 * This process's lease owner name, and the leases its dead predecessor in
 * the same slot still held, freed now: a restarted server resumes the
 * deliveries and fetches that a crash interrupted at once, not when their
 * leases expire. The slot is this machine's host name, the SMTP listening
 * address and port, and the worker index: no two live processes can share it
 * (the port would not bind), whereas several nodes may share a data
 * directory (the same keys). With port 0 (tests) there is no stable slot, and
 * the leases simply expire.
 */
async function takeOverSlot(app: App, workerIndex: number): Promise<string> {
  const { smtp } = app.config;
  if (smtp.port === 0) return processOwner();
  const node = processSlot(`${smtp.host}:${smtp.port}`, workerIndex);
  const owner = processOwner(node);
  const freed = await app.store.leases.releaseEarlier(node, owner);
  if (freed > 0) app.log.info({ node, freed }, 'leases of an earlier run of this process taken back');
  return owner;
}
