/**
 * A twoway server for benchmarks, run as a CHILD PROCESS of the benchmark
 * driver so that its event loop and CPU are its own:
 *
 *   node --import tsx bench/lib/twoway-server.ts
 *
 * Input (environment):
 *   BENCH_TWOWAY_DIR   a fresh directory for the config file and data (required)
 *   BENCH_DNS          `host:port` of the DNS server to use, the only one (required)
 *   BENCH_DOMAIN       the served domain (default bench.test)
 *   BENCH_USER         the one user, mode open (default bench@<domain>); its
 *                      password is BENCH_PASSWORD (twoway-child.ts)
 *   BENCH_HOST         loopback address of the SMTP and submission listeners,
 *                      and the source of outgoing SMTP (default 127.0.0.1)
 *   BENCH_SMTP_PORT    the SMTP (MX) port (default 0: any free port)
 *   BENCH_DELIVERY_PORT  the port of remote MX hosts ([delivery] port, default 25)
 *   BENCH_LOG_LEVEL    twoway's log level (default warn)
 *   BENCH_COMMIT_STATS =1: record group-commit batch sizes and durations
 *                      (wraps the repository's commit function at run time;
 *                      for profiling only, the normal path is untouched)
 *   BENCH_TRACE        =1: per-stage latency of every accepted message (bench/lib/accept-trace.ts)
 *   BENCH_EXPERIMENT   comma-separated profiling experiments (bench/lib/experiments.ts);
 *                      empty = the server exactly as src/app.ts builds it
 *   BENCH_DOMAINS      more served domains, comma-separated (same server, same store)
 *   BENCH_USERS        more users, comma-separated `address=mode` (mode open|screen|strict)
 *   BENCH_EXTRA_TOML   appended to the config (e.g. a [twm] section)
 *   BENCH_PROCESSES    `[server] processes` ("auto" by default, as `twoway start`): above 1,
 *                      this process is the supervisor (src/supervisor.ts) and answers the
 *                      commands from its own, unstarted app on the same store; profile-* and
 *                      stats then answer with an error, experiments are not applied
 *   BENCH_STORAGE      `storage` (e.g. postgres://…?schema=NAME); default SQLite in the dir
 *
 * Protocol: one JSON object per line on stdout. First
 *   {"event":"ready","smtpPort":N,"submissionPort":N,"imapsPort":N|null,"userId":N,"dkim":[DNS records],"twmPort":N|null,"twmKey":[DNS records]}
 * (`dkim`: the TXT records that publish the server's two DKIM keys; `twmKey`: the
 * TXT record of its TWM key per served domain, when [twm] is on), then one
 * reply per command line read on stdin:
 *   count  -> {"event":"count","count":N}          messages stored for the user
 *   queue  -> {"event":"queue","states":{...}}     outbound queue entries per state
 *   stats  -> {"event":"stats","commits":{...}}    group-commit statistics since the last `stats`
 *   trace  -> {"event":"trace","trace":{...}|null} per-stage latencies since the last `trace`
 *                                                      (BENCH_TRACE=1, bench/lib/accept-trace.ts)
 *   profile-start       -> {"event":"profiling"}   starts the V8 CPU profiler (node:inspector)
 *   profile-stop FILE   -> {"event":"profile","file":FILE}   stops it and writes FILE (.cpuprofile)
 *   count ADDRESS       -> {"event":"count","count":N}   messages stored for that user
 *   received ADDRESS    -> {"event":"received","items":[[subject, receivedAtMs, mailbox], ...]}
 *   allow USER SENDER   -> {"event":"allowed"}          SENDER goes into USER's address book
 *   sent ADDRESS        -> {"event":"sent","states":{...}}   TWM per-recipient states of ADDRESS's notices
 *   requests ADDRESS    -> {"event":"requests","requests":N,"attempts":N,"held":N}   contact requests
 *   db                  -> {"event":"db",...}          checkpoint (TRUNCATE), file sizes, rows and
 *                                                      payload bytes per table (SQLite only)
 *   quit   -> closes the server (lets queued commits finish) and exits 0
 * End of stdin counts as `quit`, so the child never outlives the driver.
 */
import { statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseConfig } from '../../src/config/load.ts';
import { dkimRecordValue, ensureMaterials } from '../../src/config/materials.ts';
import { keyRecordValue } from '../../src/core/twm-key-record.ts';
import type { User } from '../../src/core/types.ts';
import Database from 'better-sqlite3';
import { renderConfig } from '../../src/config/template.ts';
import { createApp, createLogger, startServer } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config/load.ts';
import { isSupervisedWorker, runWorker, superviseWorkers } from '../../src/supervisor.ts';
import type { Authenticator } from '../../src/mail/authenticate.ts';
import type { Services } from '../../src/services/index.ts';
import { parseStoreUrl } from '../../src/store/open.ts';
import type { Store } from '../../src/store/types.ts';
import { applyAfterStart, applyBeforeStart, parseExperiments } from './experiments.ts';
import { installAcceptTrace, takeTrace, traceCommits } from './accept-trace.ts';

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
};

const dir = env('BENCH_TWOWAY_DIR');
const dns = env('BENCH_DNS');
const domain = env('BENCH_DOMAIN', 'bench.test');
const userAddress = env('BENCH_USER', `bench@${domain}`);
const level = env('BENCH_LOG_LEVEL', 'warn');
const host = env('BENCH_HOST', '127.0.0.1');
const smtpPort = Number(env('BENCH_SMTP_PORT', '0'));
const deliveryPort = process.env.BENCH_DELIVERY_PORT ? Number(process.env.BENCH_DELIVERY_PORT) : undefined;
const list = (v: string | undefined) => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
const extraDomains = list(process.env.BENCH_DOMAINS);
const extraUsers = list(process.env.BENCH_USERS).map((u) => {
  const [address, mode = 'open'] = u.split('=');
  if (!address || !['open', 'screen', 'strict'].includes(mode)) throw new Error(`BENCH_USERS: bad entry ${JSON.stringify(u)}`);
  return { address, mode: mode as 'open' | 'screen' | 'strict' };
});
const extraToml = process.env.BENCH_EXTRA_TOML ?? '';
const processesSetting = process.env.BENCH_PROCESSES ?? 'auto';
const storage = process.env.BENCH_STORAGE ?? '';
const maxConnections = process.env.BENCH_MAX_CONNECTIONS ? Number(process.env.BENCH_MAX_CONNECTIONS) : undefined;
/** Not a secret: a benchmark account on loopback (twoway-child.ts exports the same value). */
const PASSWORD = 'bench-password-not-secret';

const send = (obj: object) => process.stdout.write(JSON.stringify(obj) + '\n');

interface CommitStats {
  batches: number;
  items: number;
  maxItems: number;
  totalMs: number;
  maxMs: number;
  /** Histogram of batch sizes: 1, 2-4, 5-16, 17-64, 65+. */
  sizes: Record<string, number>;
}

const emptyStats = (): CommitStats => ({ batches: 0, items: 0, maxItems: 0, totalMs: 0, maxMs: 0, sizes: { '1': 0, '2-4': 0, '5-16': 0, '17-64': 0, '65+': 0 } });
let stats = emptyStats();

function bucket(n: number): string {
  return n <= 1 ? '1' : n <= 4 ? '2-4' : n <= 16 ? '5-16' : n <= 64 ? '17-64' : '65+';
}

/** What the benchmark needs of a running server. */
interface BenchServer {
  store: Store;
  services: Services;
  smtp: { port: number };
  submission?: { port: number } | null;
  /** Two-Way Mail, when [twm] is on (src/app.ts's RunningServer). */
  twm?: { port: number } | null;
  imap?: { tlsPort: number | null } | null;
  close(): Promise<void>;
}

/**
 * The `no-auth` experiment: the server exactly as `twoway start` builds it
 * (src/app.ts), with an authenticator that does nothing, so the cost of
 * SPF/DKIM/DMARC can be measured.
 */
const noAuth: Authenticator = async () => ({
  headers: '',
  spf: { result: 'none', domain: null },
  dkimDomains: [],
  dmarc: { result: 'none', policy: null },
  identity: null,
  fromProblem: null,
  fromDomain: null,
  fromAuthenticated: false,
  alignedDomain: null,
  authenticatedDomains: [],
});

/** Wraps the message repository's group-commit function to measure batch sizes (bench instrumentation only). */
function instrumentCommits(server: BenchServer): void {
  const repo = server.store.messages as unknown as { committer?: { commit?: (items: unknown[]) => Promise<unknown[]> } };
  const committer = repo.committer;
  const original = committer?.commit;
  if (!committer || typeof original !== 'function') {
    process.stderr.write('twoway-server: BENCH_COMMIT_STATS: no committer.commit found; statistics disabled\n');
    return;
  }
  (committer as { commit: (items: unknown[]) => Promise<unknown[]> }).commit = async (items: unknown[]) => {
    const t0 = performance.now();
    try {
      return await original.call(committer, items);
    } finally {
      const ms = performance.now() - t0;
      stats.batches++;
      stats.items += items.length;
      stats.maxItems = Math.max(stats.maxItems, items.length);
      stats.totalMs += ms;
      stats.maxMs = Math.max(stats.maxMs, ms);
      stats.sizes[bucket(items.length)]!++;
    }
  };
}

async function main(): Promise<void> {
  const configFile = join(dir, 'twoway.toml');
  // A supervised worker reads the file its supervisor wrote and runs what `twoway start` runs in a worker.
  if (isSupervisedWorker()) return void (await runWorker(loadConfig(configFile)));
  const text =
    (storage ? `storage = ${JSON.stringify(storage)}\n` : '') +
    renderConfig({ hostname: `mx.${domain}`, domains: [domain, ...extraDomains], smtpPort, submissionPort: 0, httpPort: 0, imapPort: 0, imapsPort: 0, deliveryPort, deliveryLab: deliveryPort !== undefined, metricsPort: 0, dns: [dns] })
      // SMTP and submission listen on `host`; outgoing SMTP leaves from it (the address SPF names).
      .replaceAll('host = "0.0.0.0"', `host = "${host}"`)
      .replace('[delivery]\n', `[delivery]\nbind_address = "${host}"\n`)
      // 100 parallel sessions from one address: the default per-IP limit (50) would refuse half of them.
      .replace(/^connections_per_ip = \d+$/m, `connections_per_ip = ${maxConnections ?? 1000}`)
      // BENCH_MAX_CONNECTIONS: the idle-connections benchmark holds 10,000 at once.
      .replace(/^connections = \d+$/m, `connections = ${maxConnections ?? 1000}`)
      // The same for IMAP (bench/imap-idle.ts: 10,000 logged-in sessions of one user from loopback).
      .replace('[imap]\n', maxConnections ? `[imap]\nmax_connections = ${maxConnections}\nmax_connections_per_ip = ${maxConnections}\nmax_connections_per_user = ${maxConnections}\n` : '[imap]\n') + `\n[log]\nlevel = ${JSON.stringify(level)}\n\n[server]\nprocesses = ${processesSetting === 'auto' ? '"auto"' : Number(processesSetting)}\n` + (extraToml ? `\n${extraToml}\n` : '');
  writeFileSync(configFile, text, { mode: 0o600 });
  const config = parseConfig(text, configFile);
  // The overrides above edit the template's text; make sure they took.
  if (
    config.smtp.host !== host ||
    config.submission.host !== host ||
    config.submission.port !== 0 ||
    config.delivery.bindAddress !== host ||
    config.limits.connectionsPerIp < (maxConnections ?? 1000) ||
    config.limits.connections < (maxConnections ?? 1000) ||
    config.log.level !== level
  ) {
    throw new Error(`the config template changed: could not set smtp.host, submission, delivery.bind_address, limits.connections_per_ip and log.level in ${configFile}`);
  }
  const experiments = parseExperiments(process.env.BENCH_EXPERIMENT);
  const location = parseStoreUrl(config.storage);
  const supervised = config.server.processes > 1;
  let server: BenchServer;
  let users: Map<string, User>;
  if (supervised) {
    ({ server, users } = await startSupervised(config));
  } else {
    await applyBeforeStart(experiments);
    server = await startServer(config, {
      logger: createLogger(config.log.level),
      ...(experiments.has('no-auth') ? { authenticate: noAuth } : {}),
    });
    await applyAfterStart(experiments, server.store, location.kind === 'sqlite' ? location.path : '');
    if (process.env.BENCH_COMMIT_STATS === '1') instrumentCommits(server);
    if (process.env.BENCH_TRACE === '1') {
      await installAcceptTrace();
      traceCommits(server.store, (server.store.messages as unknown as { s?: object }).s ?? null);
    }
    users = await addUsers(server.services);
  }
  const inspector = new Session();
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) => inspector.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
  const user = users.get(userAddress)!;
  const userOf = (address: string | undefined): User => {
    const found = address ? users.get(address) : undefined;
    if (!found) throw new Error(`no bench user ${JSON.stringify(address)}`);
    return found;
  };
  const sqlitePath = location.kind === 'sqlite' ? location.path : null;
  /** Answers a command that takes arguments; errors go back as {"event":"error"}. */
  const reply = (work: () => Promise<object>) =>
    void work().then(send, (err: unknown) => send({ event: 'error', message: err instanceof Error ? err.message : String(err) }));

  let closing: Promise<void> | null = null;
  const quit = () =>
    (closing ??= server
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        process.stderr.write(`twoway-server: close failed: ${String(err)}\n`);
        process.exit(1);
      }));
  process.once('SIGTERM', quit);
  process.once('SIGINT', quit);

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'count') {
      server.services.mail.mailboxes(user.id).then(
        (boxes) => send({ event: 'count', count: boxes.reduce((n, b) => n + b.count, 0), mailboxes: Object.fromEntries(boxes.map((b) => [b.name, b.count])) }),
        (err: unknown) => send({ event: 'error', message: String(err) }),
      );
    } else if (cmd === 'queue') {
      server.services.queue.list().then(
        (entries) => {
          const states: Record<string, number> = {};
          for (const e of entries) states[e.status.state] = (states[e.status.state] ?? 0) + 1;
          send({ event: 'queue', states });
        },
        (err: unknown) => send({ event: 'error', message: String(err) }),
      );
    } else if (supervised && (cmd === 'stats' || cmd.startsWith('profile-'))) {
      send({ event: 'error', message: `${cmd}: not with ${config.server.processes} processes (BENCH_PROCESSES=1 to profile)` });
    } else if (cmd === 'trace') {
      send({ event: 'trace', trace: process.env.BENCH_TRACE === '1' ? takeTrace() : null });
    } else if (cmd === 'stats') {
      send({ event: 'stats', commits: stats });
      stats = emptyStats();
    } else if (cmd === 'profile-start') {
      inspector.connect();
      post('Profiler.enable')
        .then(() => post('Profiler.setSamplingInterval', { interval: 250 }))
        .then(() => post('Profiler.start'))
        .then(() => send({ event: 'profiling' }), (err: unknown) => send({ event: 'error', message: String(err) }));
    } else if (cmd.startsWith('profile-stop ')) {
      const file = cmd.slice('profile-stop '.length).trim();
      post<{ profile: unknown }>('Profiler.stop')
        .then(({ profile }) => {
          writeFileSync(file, JSON.stringify(profile));
          inspector.disconnect();
          send({ event: 'profile', file });
        })
        .catch((err: unknown) => send({ event: 'error', message: String(err) }));
    } else if (/^(count|received|sent|requests) \S+$/.test(cmd) || /^allow \S+ \S+$/.test(cmd) || cmd === 'db') {
      const [verb, arg1, arg2] = cmd.split(' ');
      reply(async () => {
        if (verb === 'count') {
          const boxes = await server.services.mail.mailboxes(userOf(arg1).id);
          return { event: 'count', count: boxes.reduce((n, b) => n + b.count, 0), mailboxes: Object.fromEntries(boxes.map((b) => [b.name, b.count])) };
        }
        if (verb === 'received') {
          // Every message of the user, oldest first (the repository orders by received_at without a mailbox).
          const rows = await server.services.mail.list(userOf(arg1).id, undefined, { limit: 1_000_000 });
          return { event: 'received', items: rows.map((m) => [m.subject, m.receivedAt.getTime(), m.mailbox]) };
        }
        if (verb === 'allow') {
          await server.services.contacts.allow(userOf(arg1).id, arg2!);
          return { event: 'allowed' };
        }
        if (verb === 'sent') {
          const states: Record<string, number> = {};
          for (const n of await server.store.twmOut.listBySender(arg1!, { limit: 1_000_000 })) {
            for (const r of n.recipients) states[r.state] = (states[r.state] ?? 0) + 1;
          }
          return { event: 'sent', states };
        }
        if (verb === 'requests') {
          const rs = await server.services.screener.list(userOf(arg1).id);
          return { event: 'requests', requests: rs.length, attempts: rs.reduce((n, r) => n + r.count, 0), held: rs.reduce((n, r) => n + r.held, 0) };
        }
        if (!sqlitePath) throw new Error('db: not a SQLite store');
        return { event: 'db', ...describeDatabase(sqlitePath) };
      });
    } else if (cmd === 'quit') {
      void quit();
    } else if (cmd !== '') {
      send({ event: 'error', message: `unknown command ${JSON.stringify(cmd)}` });
    }
  });
  lines.on('close', () => void quit());

  const { dkim, twm } = ensureMaterials(config);
  send({
    event: 'ready',
    smtpPort: server.smtp.port,
    submissionPort: server.submission?.port ?? null,
    imapsPort: server.imap?.tlsPort ?? null,
    userId: user.id,
    dkim: [
      { name: `${dkim.rsa.selector}._domainkey.${domain}`, type: 'TXT', data: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa') },
      { name: `${dkim.ed25519.selector}._domainkey.${domain}`, type: 'TXT', data: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519') },
    ],
    twmPort: server.twm?.port ?? null,
    twmKey:
      server.twm && twm
        ? [domain, ...extraDomains].map((d) => ({ name: `${twm.selector}._twoway.${d}`, type: 'TXT', data: keyRecordValue(Buffer.from(twm.publicKeyBase64, 'base64')) }))
        : [],
  });
}

/** The bench user and BENCH_USERS, through the services (before the workers start when supervised: they would be there anyway). */
async function addUsers(services: Services): Promise<Map<string, User>> {
  const users = new Map<string, User>([[userAddress, await services.accounts.add(userAddress, PASSWORD, 'open')]]);
  for (const u of extraUsers) users.set(u.address, await services.accounts.add(u.address, PASSWORD, u.mode));
  return users;
}

/**
 * `[server] processes` > 1: the supervisor of src/supervisor.ts with the
 * workers forked from this script; this process keeps an unstarted app
 * (no listener, no worker) on the same store to answer the driver's commands.
 */
async function startSupervised(config: Config): Promise<{ server: BenchServer; users: Map<string, User> }> {
  const log = createLogger(config.log.level);
  const app = await createApp(config, { logger: log });
  const users = await addUsers(app.services);
  const supervisor = superviseWorkers({ processes: config.server.processes, log });
  const ready = await supervisor.ready;
  const server: BenchServer = {
    store: app.store,
    services: app.services,
    smtp: { port: ready.smtpPort },
    submission: ready.submissionPort === null ? null : { port: ready.submissionPort },
    twm: ready.twmPort === null ? null : { port: ready.twmPort },
    async close() {
      await supervisor.stop();
      await app.close();
    },
  };
  return { server, users };
}

/**
 * What the store holds on disk: the WAL is checkpointed into the database
 * file first (TRUNCATE empties the -wal file), so the file size is the data's
 * pages; `dbstat` adds per-table pages and payload (row bytes without
 * page overhead). A second connection in this process: the server's own is
 * idle when the driver asks.
 */
function describeDatabase(path: string): Record<string, unknown> {
  const db = new Database(path);
  try {
    const checkpoint = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    const size = (p: string) => {
      try {
        return statSync(p).size;
      } catch {
        return 0;
      }
    };
    let tables: Record<string, { pages: number; bytes: number; payload: number }> = {};
    try {
      const rows = db.prepare('SELECT name, count(*) AS pages, sum(pgsize) AS bytes, sum(payload) AS payload FROM dbstat GROUP BY name').all() as Array<{ name: string; pages: number; bytes: number; payload: number }>;
      tables = Object.fromEntries(rows.map((r) => [r.name, { pages: r.pages, bytes: r.bytes, payload: r.payload }]));
    } catch {
      // SQLite built without SQLITE_ENABLE_DBSTAT_VTAB: file sizes only.
    }
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as Array<{ name: string }>).map((r) => r.name);
    const rows = Object.fromEntries(names.map((n) => [n, (db.prepare(`SELECT count(*) AS n FROM "${n}"`).get() as { n: number }).n]));
    return { busy: checkpoint[0]?.busy ?? null, files: { db: size(path), wal: size(`${path}-wal`), shm: size(`${path}-shm`) }, tables, rows };
  } finally {
    db.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`twoway-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
