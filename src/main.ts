/**
 * The composition root: config -> key material -> store -> resolver ->
 * services -> listeners. Nothing else in the project constructs
 * infrastructure; every module gets what it needs from here.
 */
import { pino, type Logger } from 'pino';
import type { Config } from './config/load.ts';
import { ensureMaterials } from './config/materials.ts';
import { createResolver } from './dns/resolver.ts';
import type { DnsResolver } from './dns/types.ts';
import { createIngest } from './ingest/ingest.ts';
import { createInboundHooks } from './ingest/smtp-inbound.ts';
import { createAuthenticator } from './mail/authenticate.ts';
import { createHttpApp, startHttpListener } from './protocols/http/app.ts';
import { startSmtpListener, type SmtpListener } from './protocols/smtp/server.ts';
import { createServices, type Services } from './services/index.ts';
import { openStore } from './store/open.ts';
import type { Store } from './store/types.ts';

export interface RunningServer {
  config: Config;
  store: Store;
  services: Services;
  smtp: SmtpListener;
  http: { port: number; url: string; close(): Promise<void> };
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
    const services = createServices(store, config.domains);
    const ingest = createIngest({
      store,
      maxReceivedHeaders: config.limits.receivedHeaders,
      onOutcome: (o) => log.info({ rcpt: o.user.address, verdict: o.verdict.kind, reasons: o.verdict.reasons }, 'message decided'),
    });
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
    const app = await createHttpApp({ services, log, ...(config.http.tls ? { tls: materials.tls } : {}) });
    const http = await startHttpListener({ host: config.http.host, port: config.http.port, app });
    closers.unshift(() => http.close());
    log.info({ smtp: `${config.smtp.host}:${smtp.port}`, http: `${config.http.host}:${http.port}`, domains: config.domains }, 'twoway started');
    let closed: Promise<void> | null = null;
    return {
      config,
      store,
      services,
      smtp,
      http: { ...http, url: `${config.http.tls ? 'https' : 'http'}://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${http.port}` },
      close: () => (closed ??= runAll(closers)),
    };
  } catch (err) {
    await runAll(closers);
    throw err;
  }
}

async function runAll(closers: Array<() => Promise<void>>): Promise<void> {
  for (const close of closers) await close().catch(() => undefined);
}
