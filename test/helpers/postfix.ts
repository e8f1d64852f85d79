/**
 * A private Postfix instance for tests and benchmarks: its own main.cf and
 * master.cf, queue, data, log and Maildir directories under one temporary
 * directory, smtpd on a given loopback address and a free port. The system's
 * Postfix (/etc/postfix, port 25) is never started, read or changed.
 *
 * What an instance can do, each from one option:
 * - accept mail for `relayDomains` from anyone, and anything from `mynetworks`
 *   (default 127.0.0.0/8);
 * - route by `transports` (transport_maps: `domain -> smtp:[127.0.0.1]:2525`)
 *   or send everything else to a `relayhost`;
 * - deliver `mailboxes` (virtual mailbox domains) into Maildirs under
 *   `mailDir`, owned by `mailboxOwner` (default `nobody`), so a test reads the
 *   delivered files; an address not listed is refused at RCPT with 550 5.1.1;
 * - or throw everything away (`defaultTransport: 'discard'`, the benchmarks'
 *   accept configuration);
 * - STARTTLS on both sides (a self-signed pair made at start; the client is
 *   opportunistic, `smtp_tls_security_level = may`), unless `tls: false`.
 *
 * Needs root: the master daemon starts as root and its children drop to
 * `mail_owner` (as root, `postfix -c DIR` needs no alternate_config_directories
 * entry in /etc/postfix/main.cf). Postfix reports fatal errors on stderr only
 * when stderr is a terminal, and to its log otherwise; failures here therefore
 * quote the instance's maillog.
 *
 * Robustness: ports are found free at start (never fixed); `stop()` is
 * idempotent, waits for the listener to go away and removes the directory; an
 * instance still running when this process exits gets SIGTERM on its master
 * (so an aborted test run does not leave daemons behind).
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export const POSTFIX = '/usr/sbin/postfix';
export const INSTALL_HINT =
  'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && ' +
  'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix';

export interface PostfixOptions {
  /** Loopback address smtpd listens on (also inet_interfaces). Default 127.0.0.1. */
  host?: string;
  /** Default: a port free on `host` at start. */
  port?: number;
  /** myhostname: the greeting, HELO and Received name. Default `postfix.local.test`. Must differ from the peer's (loop check). */
  hostname?: string;
  /** Clients allowed to relay anywhere (mynetworks). Default 127.0.0.0/8. */
  mynetworks?: string;
  /** Where mail for non-local domains goes when no transport entry matches, e.g. `[127.0.0.1]:2525`. */
  relayhost?: string;
  /** transport_maps entries, e.g. `{ 'tw.test': 'smtp:[127.0.0.1]:2525' }`; their domains are also relay domains. */
  transports?: Record<string, string>;
  /** More domains accepted for relay from any client (relay_domains). */
  relayDomains?: string[];
  /** Virtual mailbox domains and their local parts, delivered to Maildirs under `mailDir`. */
  mailboxes?: Record<string, string[]>;
  /** System user owning the Maildirs (virtual_uid_maps/virtual_gid_maps). Default `nobody`. */
  mailboxOwner?: string;
  /** Source address of outgoing SMTP (smtp_bind_address); Postfix's choice (the kernel's) if unset. */
  bindAddress?: string;
  /** default_transport / relay_transport / local_transport, e.g. `discard`. Default: Postfix's (smtp, relay, local). */
  defaultTransport?: string;
  /** STARTTLS in smtpd (self-signed) and opportunistic TLS in the smtp client. Default true. */
  tls?: boolean;
  /** Parallel SMTP sessions to allow (process limit and per-client connection limit). Default 100. */
  maxSessions?: number;
  /** More main.cf parameters (they win over the generated ones). */
  main?: Record<string, string | number>;
  /** Prefix of the temporary directory's name. */
  name?: string;
}

/** One message as `postqueue -j` describes it. */
export interface QueuedMessage {
  queue_name: string;
  queue_id: string;
  sender: string;
  recipients: Array<{ address: string; delay_reason?: string }>;
}

export interface DeliveredFile {
  /** Absolute path of the Maildir file. */
  path: string;
  raw: Buffer;
}

export interface PostfixInstance {
  readonly host: string;
  readonly port: number;
  readonly hostname: string;
  /** The temporary directory holding everything below. */
  readonly dir: string;
  /** The config directory (`postfix -c`, `postqueue -c`, `sendmail -C`). */
  readonly etc: string;
  readonly queueDir: string;
  /** virtual_mailbox_base: `mailDir/<domain>/<local part>/{new,cur,tmp}`. */
  readonly mailDir: string;
  readonly maillog: string;
  /** The master daemon's pid (its children are the instance's daemons), null when not running. */
  masterPid(): number | null;
  /** Messages in the queue files (maildrop, incoming, active, deferred, hold): cheap, no daemon involved. */
  queued(): number;
  /** The queue as `postqueue -c ETC -j` reports it (through showq). */
  queue(): Promise<QueuedMessage[]>;
  /** Waits until both the queue files and `postqueue -j` are empty, or `timeoutMs` passes; returns what is left. */
  waitQueueEmpty(timeoutMs?: number): Promise<number>;
  /** Asks the queue manager to retry deferred mail now (`postqueue -f`). */
  flush(): Promise<void>;
  /** Count of `status=sent` lines in the maillog, of one delivery agent (`smtp`, `virtual`, `discard`, ...) or of all. */
  delivered(agent?: string): number;
  /** The maillog's lines (empty if nothing was logged yet). */
  log(): string[];
  /** Files delivered to `address`'s Maildir (new/ and cur/), oldest first. */
  maildir(address: string): DeliveredFile[];
  /** Count of files in `address`'s Maildir new/ (cheap, for polling). */
  maildirCount(address: string): number;
  /** Injects a message with Postfix's sendmail(1) (postdrop -> pickup -> cleanup). */
  sendmail(raw: Buffer | string, envelope: { from: string; to: string[] }): Promise<void>;
  /** `postfix stop`, waits for the listener to go away, removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface Availability {
  ok: boolean;
  /** Why not, when `ok` is false. */
  reason?: string;
}

/** Can this process run a private Postfix instance? (installed, and root) */
export function postfixAvailability(): Availability {
  if (!existsSync(POSTFIX)) return { ok: false, reason: `Postfix is not installed (${INSTALL_HINT})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'a private Postfix instance needs root (the master daemon starts as root)' };
  return { ok: true };
}

export async function postfixVersion(): Promise<string> {
  try {
    return (await run('postconf', ['-d', '-h', 'mail_version'])).stdout.trim();
  } catch {
    return 'not installed';
  }
}

/** Masters started here and not stopped yet: pid file -> directory (for the exit hook). */
const running = new Map<string, string>();
let exitHook = false;

export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  const available = postfixAvailability();
  if (!available.ok) throw new Error(available.reason);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const [pidFile, dir] of running) {
        try {
          process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
        } catch {
          // already gone
        }
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  const host = options.host ?? '127.0.0.1';
  const hostname = options.hostname ?? 'postfix.local.test';
  const limit = Math.max(150, Math.ceil((options.maxSessions ?? 100) * 1.5));
  const dir = mkdtempSync(join(tmpdir(), `${options.name ?? 'twoway-postfix'}-`));
  // Postfix daemons run as `postfix` (and the virtual agent as the mailbox owner) and must traverse to their directories.
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  const queueDir = join(dir, 'queue');
  const mailDir = join(dir, 'mail');
  const maillog = join(dir, 'maillog');
  mkdirSync(etc, { mode: 0o755 });
  mkdirSync(queueDir, { mode: 0o755 });
  const port = options.port ?? (await freePort(host));

  const main: Record<string, string | number> = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: hostname,
    mydomain: hostname.split('.').slice(1).join('.') || hostname,
    myorigin: '$myhostname',
    // Only the addresses of real interfaces are allowed here (127.0.0.1 stands for all of 127/8 on
    // Linux's lo); master.cf binds smtpd to `host` explicitly. The smtp client's source is smtp_bind_address.
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    mynetworks: options.mynetworks ?? '127.0.0.0/8',
    mydestination: '',
    alias_maps: '',
    alias_database: '',
    local_recipient_maps: '',
    default_process_limit: limit,
    smtpd_client_connection_count_limit: limit,
    // No reverse lookups of clients (twoway skips them too); no DNS at all for bracketed next hops.
    smtpd_peername_lookup: 'no',
    smtputf8_enable: 'no',
    biff: 'no',
    maillog_file: maillog,
    maillog_file_prefixes: dir,
    // Tests want answers in seconds, not Postfix's production minutes.
    smtp_connect_timeout: '10s',
    minimal_backoff_time: '5s',
    maximal_backoff_time: '10s',
    queue_run_delay: '5s',
  };

  const relayDomains = [...Object.keys(options.transports ?? {}), ...(options.relayDomains ?? [])];
  main.relay_domains = relayDomains.join(', ');
  if (options.relayhost) main.relayhost = options.relayhost;
  if (options.transports && Object.keys(options.transports).length) {
    const file = join(etc, 'transport');
    writeFileSync(file, Object.entries(options.transports).map(([d, t]) => `${d}\t${t}\n`).join(''), { mode: 0o644 });
    main.transport_maps = `texthash:${file}`;
  }
  if (options.mailboxes && Object.keys(options.mailboxes).length) {
    const owner = systemUser(options.mailboxOwner ?? 'nobody');
    mkdirSync(mailDir, { mode: 0o755 });
    chownSync(mailDir, owner.uid, owner.gid);
    const file = join(etc, 'vmailbox');
    const lines: string[] = [];
    for (const [domain, users] of Object.entries(options.mailboxes)) {
      for (const user of users) lines.push(`${user}@${domain}\t${domain}/${user}/\n`); // trailing slash: Maildir
    }
    writeFileSync(file, lines.join(''), { mode: 0o644 });
    Object.assign(main, {
      virtual_mailbox_domains: Object.keys(options.mailboxes).join(', '),
      virtual_mailbox_maps: `texthash:${file}`,
      virtual_mailbox_base: mailDir,
      virtual_uid_maps: `static:${owner.uid}`,
      virtual_gid_maps: `static:${owner.gid}`,
      virtual_minimum_uid: Math.min(100, owner.uid),
    });
  }
  if (options.bindAddress) main.smtp_bind_address = options.bindAddress;
  if (options.defaultTransport) {
    main.default_transport = options.defaultTransport;
    main.relay_transport = options.defaultTransport;
    main.local_transport = options.defaultTransport;
  }
  if (options.tls !== false) {
    const { key, cert } = selfSignedPair(hostname);
    writeFileSync(join(etc, 'tls.key'), key, { mode: 0o600 });
    writeFileSync(join(etc, 'tls.crt'), cert, { mode: 0o644 });
    Object.assign(main, {
      smtpd_tls_security_level: 'may',
      smtpd_tls_chain_files: `${join(etc, 'tls.key')}, ${join(etc, 'tls.crt')}`,
      smtp_tls_security_level: 'may',
      smtpd_tls_session_cache_database: '',
      smtp_tls_session_cache_database: '',
    });
  } else {
    main.smtpd_tls_security_level = 'none';
    main.smtp_tls_security_level = 'none';
  }
  Object.assign(main, options.main ?? {});

  writeFileSync(
    join(etc, 'main.cf'),
    `# private instance (twoway test/helpers/postfix.ts)\n${Object.entries(main).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`,
  );
  writeFileSync(
    join(etc, 'master.cf'),
    `# service type private unpriv chroot wakeup maxproc command
${host}:${port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`,
  );

  const readLog = () => (existsSync(maillog) ? readFileSync(maillog, 'utf8').split('\n').filter(Boolean) : []);
  const logTail = () => readLog().slice(-15).join('\n') || '(nothing in the maillog)';
  const postfix = async (cmd: string) => {
    try {
      await run(POSTFIX, ['-c', etc, cmd], { timeout: 60_000 });
    } catch (err) {
      throw new Error(`postfix -c ${etc} ${cmd} failed: ${(err as Error).message.trim()}\n${await diagnose(etc, cmd)}\n${logTail()}`);
    }
  };
  const pidFile = join(queueDir, 'pid', 'master.pid');

  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      try {
        if (existsSync(pidFile)) {
          // SIGTERM to the master is what `postfix stop` sends, without its one-second polling loop.
          const pid = Number(readFileSync(pidFile, 'utf8').trim());
          if (pid > 1 && alive(pid)) {
            process.kill(pid, 'SIGTERM');
            if (!(await waitFor(() => !alive(pid), 10_000, 20))) await postfix('abort').catch(() => undefined);
          }
        }
        await waitFor(async () => !(await listening(host, port)), 15_000);
      } finally {
        running.delete(pidFile);
        rmSync(dir, { recursive: true, force: true });
      }
    })());

  try {
    // `start` runs the configuration check first, which creates the queue's subdirectories
    // with the owners and modes Postfix expects (a separate `check` would only repeat it).
    running.set(pidFile, dir);
    await postfix('start');
    if (!(await waitFor(() => listening(host, port), 15_000))) throw new Error(`Postfix did not listen on ${host}:${port}\n${logTail()}`);
  } catch (err) {
    await stop();
    throw err;
  }

  const queued = () => {
    let n = 0;
    for (const sub of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) n += countFiles(join(queueDir, sub));
    return n;
  };
  const queue = async (): Promise<QueuedMessage[]> => {
    const { stdout } = await run('postqueue', ['-c', etc, '-j'], { timeout: 30_000 });
    return stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as QueuedMessage);
  };
  const boxOf = (address: string) => {
    const at = address.lastIndexOf('@');
    return join(mailDir, address.slice(at + 1).toLowerCase(), address.slice(0, at));
  };

  return {
    host,
    port,
    hostname,
    dir,
    etc,
    queueDir,
    mailDir,
    maillog,
    masterPid() {
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        return pid > 1 && alive(pid) ? pid : null;
      } catch {
        return null;
      }
    },
    queued,
    queue,
    async waitQueueEmpty(timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        // The files first (cheap), then showq's view, which also sees what is between smtpd and cleanup.
        if (queued() === 0 && (await queue()).length === 0) return 0;
        if (Date.now() > end) return Math.max(queued(), (await queue().catch(() => [])).length);
        await sleep(50);
      }
    },
    async flush() {
      await run('postqueue', ['-c', etc, '-f'], { timeout: 30_000 });
    },
    delivered(agent?: string) {
      const tag = agent ? `postfix/${agent}[` : '';
      return readLog().filter((l) => l.includes('status=sent') && l.includes(tag)).length;
    },
    log: readLog,
    maildir(address: string) {
      const files: Array<DeliveredFile & { mtime: number }> = [];
      for (const sub of ['new', 'cur']) {
        const d = join(boxOf(address), sub);
        let names: string[] = [];
        try {
          names = readdirSync(d);
        } catch {
          continue;
        }
        for (const name of names) {
          const path = join(d, name);
          files.push({ path, raw: readFileSync(path), mtime: statSync(path).mtimeMs });
        }
      }
      return files.sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path)).map(({ path, raw }) => ({ path, raw }));
    },
    maildirCount(address: string) {
      try {
        return readdirSync(join(boxOf(address), 'new')).length;
      } catch {
        return 0;
      }
    },
    sendmail(raw: Buffer | string, envelope: { from: string; to: string[] }) {
      return new Promise<void>((resolve, reject) => {
        const child = execFile('/usr/sbin/sendmail', ['-C', etc, '-i', '-f', envelope.from, '--', ...envelope.to], { timeout: 30_000 }, (err, _stdout, stderr) => {
          if (err) reject(new Error(`sendmail -C ${etc} failed: ${err.message.trim()} ${stderr}`));
          else resolve();
        });
        child.stdin!.end(raw);
      });
    },
    stop,
  };
}

function run(cmd: string, args: string[], options: { timeout?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: options.timeout ?? 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { message: `${err.message} ${stderr}`.trim() }));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * Postfix writes its fatal errors to stderr only when stderr is a terminal
 * (else to syslog, which a container may not have): run the command again
 * under script(1) to see them.
 */
async function diagnose(etc: string, cmd: string): Promise<string> {
  if (cmd !== 'check' && cmd !== 'start') return '';
  try {
    const { stdout } = await run('script', ['-qec', `${POSTFIX} -c ${etc} check`, '/dev/null'], { timeout: 30_000 });
    return stdout.trim();
  } catch (err) {
    return String((err as { stdout?: unknown }).stdout ?? '').trim();
  }
}

/** A self-signed certificate for smtpd (node:crypto key, so node-forge does not generate RSA in JS). */
function selfSignedPair(hostname: string): { key: string; cert: string } {
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const pems = selfsigned.generate([{ name: 'commonName', value: hostname }], {
    days: 30,
    algorithm: 'sha256',
    // The typings of selfsigned 2 omit keyPair, which its code supports.
    ...({ keyPair: pair } as object),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }],
  });
  return { key: pair.privateKey, cert: pems.cert };
}

function systemUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`no system user ${JSON.stringify(name)} for the Maildirs (mailboxOwner)`);
}

/** A TCP port that was free on `host` a moment ago (Postfix cannot listen on port 0 and report it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function countFiles(path: string): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync(path);
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(path, e);
    try {
      n += statSync(p).isDirectory() ? countFiles(p) : 1;
    } catch {
      // Moved between readdir and stat (active -> removed): not queued any more.
    }
  }
  return n;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
}
