/**
 * The composition root: config -> key material -> store -> resolver ->
 * services -> listeners. Nothing else in the project constructs
 * infrastructure; every module gets what it needs from here.
 */
import { pino, type Logger } from 'pino';
import type { Config } from './config/load.ts';
import { ensureMaterials, type Materials } from './config/materials.ts';
import { createResolver } from './dns/resolver.ts';
import type { DnsResolver } from './dns/types.ts';
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
import { createIngest, type Ingest } from './ingest/ingest.ts';
import { createSubmissionHooks } from './ingest/submission.ts';
import { createDkimSigner } from './mail/dkim-sign.ts';
import { createInboundHooks } from './ingest/smtp-inbound.ts';
import { createAuthenticator } from './mail/authenticate.ts';
import { createHttpApp, startHttpListener } from './protocols/http/app.ts';
import { startSmtpListener, type SmtpListener } from './protocols/smtp/server.ts';
import { startImapListener, type ImapListener } from './protocols/imap/server.ts';
import { createImapHooks } from './endpoints/imap/hooks.ts';
import { autoconfigXml } from './endpoints/imap/autoconfig.ts';
import { createTwmApp, startTwmListener } from './protocols/twoway/server.ts';
import { createServices, type Services } from './services/index.ts';
import { createMetrics, type Metrics } from './services/metrics.ts';
import { createTwmInbox, type TwmInbox } from './services/twm-inbox.ts';
import { createTwmOutbox, type TwmOutbox } from './services/twm-outbox.ts';
import { openStore } from './store/open.ts';
import type { Store } from './store/types.ts';

export interface RunningServer {
  config: Config;
  store: Store;
  services: Services;
  smtp: SmtpListener;
  /** The authenticated submission listener, unless disabled. */
  submission: SmtpListener | null;
  worker: QueueWorker;
  /** The IMAP listeners, unless `[imap] enabled = false`. */
  imap: ImapListener | null;
  http: { port: number; url: string; close(): Promise<void> };
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
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Overrides the resolver built from config.dns (tests may share one). */
  resolver?: DnsResolver;
}

export function createLogger(level: Config['log']['level']): Logger {
  // Logs go to stderr so that CLI output on stdout stays machine-readable.
  return pino({ level, redact: ['password', 'token', '*.password', '*.token', 'req.headers.authorization'] }, pino.destination(2));
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const log = options.logger ?? createLogger(config.log.level);
  const materials = ensureMaterials(config);
  const store = await openStore(config.storage);
  const closers: Array<() => Promise<void>> = [() => store.close()];
  try {
    const resolver = options.resolver ?? createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs });
    const ingest = createIngest({
      store,
      maxReceivedHeaders: config.limits.receivedHeaders,
      onOutcome: (o) => log.info({ rcpt: o.user.address, verdict: o.verdict.kind, reasons: o.verdict.reasons }, 'message decided'),
      onError: (err, what) => log.warn({ err }, `${what} failed after delivery`),
    });

    // Outbound: one queue, one router, one contract for local and remote delivery.
    const smtpTransport = createSmtpTransport({
      resolver,
      heloName: config.hostname,
      port: config.delivery.port,
      // One connection per concurrent delivery to a domain's (usually single) MX host.
      maxConnectionsPerHost: config.delivery.perDomainConcurrency,
      ...(config.delivery.bindAddress ? { localAddress: config.delivery.bindAddress } : {}),
      log: (obj, msg) => log.debug(obj, msg),
    });
    closers.unshift(() => smtpTransport.close());
    const metrics = createMetrics();

    // Two-Way Mail (docs/protocol.md): TWM domains get notices instead of SMTP.
    const twmWiring = materials.twm ? wireTwm({ config, keys: materials.twm, store, ingest, resolver, smtp: smtpTransport, metrics, log, closers }) : null;
    const worker = startQueueWorker({
      queue: store.queue,
      route: createRouter({ localDomains: config.domains, local: createLocalTransport(ingest), smtp: twmWiring?.remote ?? smtpTransport }),
      schedule: {
        baseMs: config.delivery.minBackoffMs,
        maxMs: config.delivery.maxBackoffMs,
        giveUpAfterMs: config.delivery.giveUpAfterMs,
        delayWarningAfterMs: config.delivery.delayWarningAfterMs,
      },
      maxActive: config.delivery.maxActive,
      perDomainConcurrency: config.delivery.perDomainConcurrency,
      reportingMta: config.hostname,
      notify: (dsn) => deliverNotice(ingest, dsn.sender, dsn.raw, log),
      log: (obj, msg) => log.info(obj, msg),
    });
    closers.unshift(() => worker.stop());
    // Finished queue entries stay listed for a while (twoway queue list), then go.
    const prune = () =>
      void store.queue.prune(new Date(Date.now() - config.delivery.keepHistoryMs)).catch((err: unknown) => log.error({ err }, 'queue prune failed'));
    const pruneTimer = setInterval(prune, 3_600_000);
    pruneTimer.unref();
    closers.unshift(async () => clearInterval(pruneTimer));
    const services = createServices(
      store,
      config.domains,
      {
        sign: createDkimSigner(materials.dkim),
        hostname: config.hostname,
        maxRecipients: config.limits.recipients,
        maxMessageSize: config.limits.messageSize,
        maxReceivedHeaders: config.limits.receivedHeaders,
        onQueued: () => worker.kick(),
      },
      twmWiring ? { approved: twmWiring.inbox.approved, denied: twmWiring.inbox.denied } : undefined,
    );
    const smtp = await startSmtpListener({
      hostname: config.hostname,
      host: config.smtp.host,
      port: config.smtp.port,
      tls: materials.tls,
      maxMessageSize: config.limits.messageSize,
      maxRecipients: config.limits.recipients,
      maxConnections: config.limits.connections,
      maxConnectionsPerIp: config.limits.connectionsPerIp,
      hooks: createInboundHooks({
        hostname: config.hostname,
        domains: config.domains,
        ingest,
        authenticate: createAuthenticator(resolver),
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
        hooks,
        auth,
      });
      const listener = submission;
      closers.unshift(() => listener.close());
    }
    const imap = config.imap.enabled ? await startImap(config, materials, store, services, log) : null;
    if (imap) closers.unshift(() => imap.close());
    const app = await createHttpApp({
      services,
      log,
      ...(config.http.tls ? { tls: materials.tls } : {}),
      extraRoutes: (a) => {
        a.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
        // Thunderbird's autoconfig (docs/imap.md): the settings for an address of one of our domains.
        a.get('/.well-known/autoconfig/mail/config-v1.1.xml', async (req, reply) => {
          const address = String((req.query as Record<string, unknown>).emailaddress ?? '');
          const domain = config.domains.find((d) => address.toLowerCase().endsWith(`@${d}`)) ?? config.domains[0]!;
          return reply.type('application/xml; charset=utf-8').send(autoconfigXml({ hostname: config.hostname, domain, imap: config.imap, submission: config.submission }));
        });
      },
    });
    const http = await startHttpListener({ host: config.http.host, port: config.http.port, app });
    closers.unshift(() => http.close());
    // Expected-sender entries past their time or out of uses leave the cards hourly (docs/protocol.md 10.3).
    const expectSweep = setInterval(
      () => void services.contacts.sweepExpired().catch((err: unknown) => log.error({ err }, 'expected-sender sweep failed')),
      3_600_000,
    );
    expectSweep.unref();
    closers.unshift(async () => clearInterval(expectSweep));

    const twm: RunningServer['twm'] = twmWiring ? await twmWiring.listen() : null;
    log.info({ smtp: `${config.smtp.host}:${smtp.port}`, http: `${config.http.host}:${http.port}`, domains: config.domains }, 'twoway started');
    let closed: Promise<void> | null = null;
    return {
      config,
      store,
      services,
      smtp,
      submission,
      worker,
      imap,
      twm,
      metrics,
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
  closers: Array<() => Promise<void>>;
}

/**
 * Two-Way Mail's parts: the client, the remote transport that picks TWM or
 * SMTP, the recipient's fetch worker and notice decisions, the sender's
 * outbox with its expiry sweep, and `listen()` for the HTTPS endpoint (last,
 * like every listener). Closers are registered as parts start.
 */
function wireTwm({ config, keys, store, ingest, resolver, smtp, metrics, log, closers }: TwmWiringInput) {
  if (config.twm.lab) log.warn('twm.lab is on: TWM may connect to loopback and private addresses (labs and tests only)');
  const keyFor = (domain: string): TwmSigningKey => ({ selector: keys.selector, domain, privateKey: keys.privateKey });
  const client = createTwmClient({ resolver, trustAnchors: keys.trustAnchors, lab: config.twm.lab });
  closers.unshift(() => client.close());
  const remote = createRemoteTransport({
    smtp,
    twm: createTwmTransport({ outbox: store.twmOut, client, key: keyFor, expiryMs: config.twm.expiryMs }),
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
    backoff: { baseMs: config.delivery.minBackoffMs, maxMs: config.delivery.maxBackoffMs, jitter: 0.1 },
    log: (obj, msg) => log.info(obj, msg),
    onFetch: (outcome) => metrics.twmFetched.inc({ outcome }),
  });
  closers.unshift(() => fetchWorker.stop());
  const inbox = createTwmInbox({
    inbox: store.twmIn,
    ingest,
    users: store.users,
    resolver,
    domains: config.domains,
    maxMessageSize: config.limits.messageSize,
    uniformAnswers: config.twm.uniformAnswers,
    noticeRate: config.twm.noticeRate,
    fetchJitterMs: config.twm.fetchJitterMs,
    approvalDelayMs: config.twm.approvalDelayMs,
    declineDelayMs: config.twm.declineDelayMs,
    kick: () => fetchWorker.kick(),
  });
  const outbox = createTwmOutbox({
    outbox: store.twmOut,
    hostname: config.hostname,
    notifyUser: (address, raw) => deliverNotice(ingest, address, raw, log),
    log: (obj, msg) => log.info(obj, msg),
  });
  // Sent notices expire (checked every minute); finished history goes after delivery.keep_history.
  const sweep = () => void outbox.sweep().catch((err: unknown) => log.error({ err }, 'twm expiry sweep failed'));
  const prune = () => {
    const old = new Date(Date.now() - config.delivery.keepHistoryMs);
    void Promise.all([store.twmOut.prune(old), store.twmIn.prune(old)]).catch((err: unknown) => log.error({ err }, 'twm prune failed'));
  };
  const timers = [setInterval(sweep, 60_000), setInterval(prune, 3_600_000)];
  for (const t of timers) t.unref();
  closers.unshift(async () => timers.forEach((t) => clearInterval(t)));

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

  return { remote, inbox, outbox, listen };
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

/** A delivery status notification for a local sender, through the one ingest path (system origin: always INBOX). */
async function deliverNotice(ingest: Ingest, sender: string, raw: Buffer, log: Logger): Promise<void> {
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
    auth: { alignedDomain: null, authenticatedDomains: [] },
  });
}

async function runAll(closers: Array<() => Promise<void>>): Promise<void> {
  for (const close of closers) await close().catch(() => undefined);
}
