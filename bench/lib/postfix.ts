/**
 * A private Postfix instance for benchmarks: its own main.cf/master.cf, queue
 * and data directories under a temporary directory, smtpd on 127.0.0.1 at a
 * free high port, every transport `discard`. Mail is accepted into the
 * durable queue (cleanup fsyncs the queue file before smtpd answers 250) and
 * thrown away at delivery: the configuration DESIGN.md section 7 measured.
 * The system's Postfix (port 25, /etc/postfix) is never started or changed.
 *
 * Needs root: the master daemon starts as root and its children drop to
 * `mail_owner`. As root, `postfix -c DIR` needs no alternate_config_directories
 * entry in /etc/postfix/main.cf.
 *
 * Postfix reports fatal errors on stderr only when stderr is a terminal, and
 * to its log otherwise; failures here therefore quote the instance's maillog.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.ts';

const run = promisify(execFile);

export interface PostfixInstance {
  readonly port: number;
  readonly dir: string;
  readonly maillog: string;
  /** Messages still in the queue (incoming, active, deferred, hold, maildrop). */
  queued(): number;
  /** Waits until the queue is empty (everything discarded) or `timeoutMs` passes; returns what is left. */
  waitQueueEmpty(timeoutMs?: number): Promise<number>;
  /** Count of `status=sent` delivery lines in the maillog (discarded = delivered). */
  delivered(): number;
  /** `postfix stop`, waits for the listener to go away, removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface PostfixOptions {
  /** Parallel SMTP sessions to allow (process limit and per-client connection limit). */
  maxSessions?: number;
  /** The domain whose mail is accepted (relayed to the discard transport). */
  domain?: string;
}

export async function postfixVersion(): Promise<string> {
  try {
    const { stdout } = await run('postconf', ['-d', '-h', 'mail_version']);
    return stdout.trim();
  } catch {
    return 'not installed';
  }
}

export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  if (process.getuid?.() !== 0) throw new Error('a private Postfix instance needs root (the master daemon starts as root)');
  if (!existsSync('/usr/sbin/postfix')) {
    throw new Error(
      'Postfix is not installed: echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && ' +
        'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix',
    );
  }
  const limit = Math.max(150, Math.ceil((options.maxSessions ?? 100) * 1.5));
  const domain = options.domain ?? 'bench.test';
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-postfix-'));
  // Postfix daemons run as `postfix` and must traverse to their directories.
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  const queue = join(dir, 'queue');
  const maillog = join(dir, 'maillog');
  mkdirSync(etc, { mode: 0o755 });
  mkdirSync(queue, { mode: 0o755 });
  const port = await freePort();

  writeFileSync(
    join(etc, 'main.cf'),
    `# private benchmark instance (twoway bench/lib/postfix.ts)
compatibility_level = 3.6
queue_directory = ${queue}
data_directory = ${join(dir, 'data')}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.${domain}
mydomain = ${domain}
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Mail for the bench domain is relayed (accepted for any local part) and discarded at delivery.
mydestination =
relay_domains = ${domain}
default_transport = discard
local_transport = discard
relay_transport = discard
alias_maps =
alias_database =
default_process_limit = ${limit}
smtpd_client_connection_count_limit = ${limit}
# twoway skips the client's reverse lookup too (disableReverseLookup).
smtpd_peername_lookup = no
smtputf8_enable = no
biff = no
maillog_file = ${maillog}
maillog_file_prefixes = ${dir}
`,
  );
  writeFileSync(
    join(etc, 'master.cf'),
    `# service type private unpriv chroot wakeup maxproc command
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
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
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`,
  );

  const logTail = () => (existsSync(maillog) ? readFileSync(maillog, 'utf8').split('\n').slice(-15).join('\n') : '(no maillog)');
  const postfix = async (cmd: string) => {
    try {
      await run('postfix', ['-c', etc, cmd], { timeout: 60_000 });
    } catch (err) {
      throw new Error(`postfix -c ${etc} ${cmd} failed: ${(err as Error).message.trim()}\n${logTail()}`);
    }
  };

  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      try {
        if (existsSync(join(queue, 'pid', 'master.pid'))) await postfix('stop').catch(() => undefined);
        await waitFor(async () => !(await listening(port)), 15_000);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    })());

  try {
    // `check` creates the queue's subdirectories with the owners and modes Postfix expects.
    await postfix('check');
    await postfix('start');
    if (!(await waitFor(() => listening(port), 15_000))) throw new Error(`Postfix did not listen on 127.0.0.1:${port}\n${logTail()}`);
  } catch (err) {
    await stop();
    throw err;
  }

  const queued = () => {
    let n = 0;
    for (const sub of ['incoming', 'active', 'deferred', 'hold', 'maildrop']) n += countFiles(join(queue, sub));
    return n;
  };

  return {
    port,
    dir,
    maillog,
    queued,
    async waitQueueEmpty(timeoutMs = 60_000) {
      await waitFor(async () => queued() === 0, timeoutMs, 50);
      return queued();
    },
    delivered() {
      if (!existsSync(maillog)) return 0;
      let n = 0;
      for (const line of readFileSync(maillog, 'utf8').split('\n')) if (line.includes('postfix/discard[') && line.includes('status=sent')) n++;
      return n;
    },
    stop,
  };
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
      // The file was moved between readdir and stat (active -> removed): not queued any more.
    }
  }
  return n;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
