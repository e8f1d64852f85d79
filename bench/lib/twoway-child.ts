/**
 * Starts bench/lib/twoway-server.ts in a child process and talks to it over
 * its stdin/stdout line protocol (see that file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

/** The bench user's password (twoway-server.ts); not a secret, a benchmark account on loopback. */
export const BENCH_PASSWORD = 'bench-password-not-secret';

export interface TwowayChildOptions {
  dir: string;
  dns: string;
  domain?: string;
  user?: string;
  /** Loopback address of the listeners and of outgoing SMTP (default 127.0.0.1). */
  host?: string;
  /** The SMTP (MX) port; default any free port. */
  smtpPort?: number;
  /** The port of remote MX hosts ([delivery] port). */
  deliveryPort?: number;
  logLevel?: string;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=bench/out/prof']. */
  nodeFlags?: string[];
  commitStats?: boolean;
  /** Profiling experiments, comma-separated (bench/lib/experiments.ts). */
  experiment?: string;
  /** Milliseconds to wait for the ready line. */
  startTimeoutMs?: number;
  /** More served domains (BENCH_DOMAINS). */
  domains?: string[];
  /** More users with their modes (BENCH_USERS); their password is BENCH_PASSWORD too. */
  users?: Array<{ address: string; mode: 'open' | 'screen' | 'strict' }>;
  /** Appended to the config, e.g. a [twm] section (BENCH_EXTRA_TOML). */
  extraToml?: string;
  /** `[server] processes` (BENCH_PROCESSES): default "auto", as `twoway start`. */
  processes?: number | 'auto';
  /** `storage` (BENCH_STORAGE); default SQLite in `dir`. */
  storage?: string;
  /** limits.connections and connections_per_ip (BENCH_MAX_CONNECTIONS; default 1000 each). */
  maxConnections?: number;
  /**
   * The server script to run (default this directory's twoway-server.ts): another checkout's
   * `bench/lib/twoway-server.ts` runs that checkout's sources, so two versions can be measured
   * side by side in one sitting (bench/accept-cpu.ts BENCH_TREES).
   */
  serverScript?: string;
  /** More environment for the child (e.g. NODE_CLUSTER_SCHED_POLICY). */
  env?: Record<string, string>;
}

/** The store on disk after a WAL checkpoint (twoway-server.ts `db`). */
export interface ChildDbReport {
  files: { db: number; wal: number; shm: number };
  /** dbstat per table and index: pages, their bytes, and the payload (row bytes) in them. */
  tables: Record<string, { pages: number; bytes: number; payload: number }>;
  /** Rows per table. */
  rows: Record<string, number>;
}

/** A DNS record as the embedded DNS server takes it. */
export interface ChildDnsRecord {
  name: string;
  type: 'TXT';
  data: string;
}

export interface TwowayChild {
  readonly smtpPort: number;
  /** The authenticated submission port (STARTTLS + AUTH), null if the server has none (no-auth experiment). */
  readonly submissionPort: number | null;
  /** TXT records publishing the server's DKIM keys (RSA and Ed25519 selectors of its domain). */
  readonly dkimRecords: ChildDnsRecord[];
  /** The TWM endpoint's port, null without [twm]. */
  readonly twmPort: number | null;
  /** IMAP with implicit TLS (the certificate is `<dir>/data/tls/cert.pem`), null without IMAP. */
  readonly imapsPort: number | null;
  /** TXT records publishing the TWM key, one per served domain (empty without [twm]). */
  readonly twmKeyRecords: ChildDnsRecord[];
  /** Messages stored for one of the bench users (all mailboxes). */
  countOf(address: string): Promise<number>;
  /** [subject, receivedAt in ms, mailbox] of every message of a bench user. */
  received(address: string): Promise<Array<[string | null, number, string]>>;
  /** Puts `sender` in the user's address book. */
  allow(user: string, sender: string): Promise<void>;
  /** TWM per-recipient states of the notices `address` sent. */
  sent(address: string): Promise<Record<string, number>>;
  /** The user's contact requests: how many, attempts counted, messages held. */
  requests(address: string): Promise<{ requests: number; attempts: number; held: number }>;
  /** Checkpoints the WAL and describes the store on disk. */
  db(): Promise<ChildDbReport>;
  readonly pid: number;
  /** Messages stored for the bench user (all mailboxes). */
  count(): Promise<number>;
  /** Outbound queue entries per state (`delivered`, `scheduled`, `deferred`, `failed`). */
  queue(): Promise<Record<string, number>>;
  stats(): Promise<Record<string, unknown>>;
  /** Per-stage latencies since the last call (BENCH_TRACE=1 in the child's environment), else null. */
  trace(): Promise<Record<string, unknown> | null>;
  /** Starts the child's V8 CPU profiler. */
  profileStart(): Promise<void>;
  /** Stops the profiler and writes the .cpuprofile to `file`. */
  profileStop(file: string): Promise<void>;
  /** Asks the server to close and waits for the process to exit; kills it after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** Immediate SIGKILL, for failure paths. */
  kill(): void;
}

type Reply = Record<string, unknown> & { event: string };

export async function startTwowayChild(options: TwowayChildOptions): Promise<TwowayChild> {
  const script = options.serverScript ?? fileURLToPath(new URL('./twoway-server.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeFlags ?? []), '--import', 'tsx', script], {
    env: {
      ...process.env,
      BENCH_TWOWAY_DIR: options.dir,
      BENCH_DNS: options.dns,
      ...(options.domain ? { BENCH_DOMAIN: options.domain } : {}),
      ...(options.user ? { BENCH_USER: options.user } : {}),
      ...(options.host ? { BENCH_HOST: options.host } : {}),
      ...(options.smtpPort !== undefined ? { BENCH_SMTP_PORT: String(options.smtpPort) } : {}),
      ...(options.deliveryPort !== undefined ? { BENCH_DELIVERY_PORT: String(options.deliveryPort) } : {}),
      BENCH_LOG_LEVEL: options.logLevel ?? 'warn',
      BENCH_COMMIT_STATS: options.commitStats ? '1' : '0',
      BENCH_EXPERIMENT: options.experiment ?? '',
      BENCH_DOMAINS: (options.domains ?? []).join(','),
      BENCH_USERS: (options.users ?? []).map((u) => `${u.address}=${u.mode}`).join(','),
      BENCH_EXTRA_TOML: options.extraToml ?? '',
      ...(options.processes !== undefined ? { BENCH_PROCESSES: String(options.processes) } : {}),
      ...(options.storage ? { BENCH_STORAGE: options.storage } : {}),
      ...(options.maxConnections ? { BENCH_MAX_CONNECTIONS: String(options.maxConnections) } : {}),
      ...options.env,
    },
    stdio: ['pipe', 'pipe', 'inherit'],
    // A session of its own, as Postfix's master has (it daemonizes) and as a service under systemd
    // has its own cgroup: with the kernel's autogroup scheduling (sched_autogroup_enabled, on by
    // default) the CPU is shared per session, and a child left in the driver's session would share
    // one slot with the driver and the load generator while each Postfix got a slot of its own.
    // The child still ends with the driver: it quits when its stdin closes.
    detached: true,
  });

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waiting: Array<{ event: string; resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  const failAll = (err: Error) => {
    for (const w of waiting.splice(0)) w.reject(err);
  };
  void exited.then((code) => failAll(new Error(`twoway child exited (code ${code})`)));

  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    let msg: Reply;
    try {
      msg = JSON.parse(line) as Reply;
    } catch {
      process.stderr.write(`[twoway child] ${line}\n`);
      return;
    }
    const i = waiting.findIndex((w) => w.event === msg.event || msg.event === 'error');
    if (i < 0) return;
    const [w] = waiting.splice(i, 1);
    if (msg.event === 'error') w!.reject(new Error(`twoway child: ${String(msg.message)}`));
    else w!.resolve(msg);
  });

  const expect = (event: string, timeoutMs: number): Promise<Reply> =>
    new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`twoway child: no "${event}" within ${timeoutMs} ms`)), timeoutMs);
      waiting.push({
        event,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  const ask = (cmd: string, event: string): Promise<Reply> => {
    const p = expect(event, 60_000);
    child.stdin!.write(cmd + '\n');
    return p;
  };

  let ready: Reply;
  try {
    ready = await expect('ready', options.startTimeoutMs ?? 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  return {
    smtpPort: Number(ready.smtpPort),
    submissionPort: ready.submissionPort === null || ready.submissionPort === undefined ? null : Number(ready.submissionPort),
    dkimRecords: (ready.dkim as ChildDnsRecord[] | undefined) ?? [],
    twmPort: typeof ready.twmPort === 'number' ? ready.twmPort : null,
    imapsPort: typeof ready.imapsPort === 'number' ? ready.imapsPort : null,
    twmKeyRecords: (ready.twmKey as ChildDnsRecord[] | undefined) ?? [],
    countOf: async (address: string) => Number((await ask(`count ${address}`, 'count')).count),
    received: async (address: string) => (await ask(`received ${address}`, 'received')).items as Array<[string | null, number, string]>,
    allow: async (user: string, sender: string) => void (await ask(`allow ${user} ${sender}`, 'allowed')),
    sent: async (address: string) => (await ask(`sent ${address}`, 'sent')).states as Record<string, number>,
    requests: async (address: string) => {
      const r = await ask(`requests ${address}`, 'requests');
      return { requests: Number(r.requests), attempts: Number(r.attempts), held: Number(r.held) };
    },
    db: async () => (await ask('db', 'db')) as unknown as ChildDbReport,
    pid: child.pid!,
    count: async () => Number((await ask('count', 'count')).count),
    queue: async () => (await ask('queue', 'queue')).states as Record<string, number>,
    stats: async () => (await ask('stats', 'stats')).commits as Record<string, unknown>,
    trace: async () => (await ask('trace', 'trace')).trace as Record<string, unknown> | null,
    profileStart: async () => void (await ask('profile-start', 'profiling')),
    profileStop: async (file: string) => void (await ask(`profile-stop ${file}`, 'profile')),
    async stop(timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.stdin!.end('quit\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
