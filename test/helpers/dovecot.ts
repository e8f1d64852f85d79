/**
 * A private Dovecot (Debian dovecot-imapd) started by a test: its own
 * configuration, base_dir and Maildir in a temporary directory, one
 * passwd-file user, plain IMAP on a free loopback port. It is the peer the
 * IMAP tests compare twoway with (differential tests, `twoway import` from
 * IMAP, the benchmarks). Runs in the foreground (`dovecot -F`), so it ends
 * with its process; nothing of the host's Dovecot setup is used.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface Dovecot {
  port: number;
  /** Implicit TLS (with `tls: true`), with a certificate for 127.0.0.1 made for this instance. */
  tlsPort: number | null;
  /** That certificate (self-signed: it is its own CA), PEM. */
  ca: string | null;
  user: string;
  password: string;
  /** The user's Maildir (INBOX is its root; other folders are `.Name`, Maildir++). */
  maildir: string;
  dir: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitForGreeting(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`dovecot exited (${proc.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('* OK'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`dovecot did not answer on ${port}: ${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts a private Dovecot; `extra` is appended to its configuration. */
/**
 * `nofile`: the descriptor limit (`ulimit -n`) Dovecot starts with; its master
 * and log processes hold a few descriptors per child process, so thousands of
 * sessions (bench/imap-idle.ts) need more than a shell's default.
 */
export async function startDovecot(o: { user?: string; password?: string; extra?: string; tls?: boolean; nofile?: number } = {}): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-dovecot-'));
  const user = o.user ?? 'peer@dovecot.test';
  const password = o.password ?? 'peer-password-1';
  // Dovecot's auth process (another user) reads the passwd-file inside.
  chmodSync(dir, 0o755);
  const me = userInfo();
  const root = me.uid === 0;
  const maildir = join(dir, 'mail', user);
  mkdirSync(join(dir, 'run'), { recursive: true });
  mkdirSync(maildir, { recursive: true });
  // Dovecot refuses mail as uid 0: as root, the mail belongs to the package's `dovecot` user.
  const uid = root ? Number(execFileSync('id', ['-u', 'dovecot'], { encoding: 'utf8' })) : me.uid;
  const gid = root ? Number(execFileSync('id', ['-g', 'dovecot'], { encoding: 'utf8' })) : me.gid;
  chownSync(join(dir, 'mail'), uid, gid);
  chownSync(maildir, uid, gid);
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${password}:${uid}:${gid}::${maildir}\n`);
  const port = await freePort();
  const tlsPort = o.tls ? await freePort() : null;
  if (o.tls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  }
  const conf = [
    'protocols = imap',
    `base_dir = ${join(dir, 'run')}`,
    `state_dir = ${join(dir, 'run')}`,
    'listen = 127.0.0.1',
    o.tls ? `ssl = yes\nssl_cert = <${join(dir, 'cert.pem')}\nssl_key = <${join(dir, 'key.pem')}` : 'ssl = no',
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    // Dovecot refuses to run its login processes as root: as root, the Debian package's users.
    `default_login_user = ${root ? 'dovenull' : me.username}`,
    `default_internal_user = ${root ? 'dovecot' : me.username}`,
    'first_valid_uid = 0',
    `log_path = ${join(dir, 'dovecot.log')}`,
    `mail_location = maildir:${maildir}`,
    'mail_max_userip_connections = 20000',
    'namespace inbox {',
    '  inbox = yes',
    '  separator = /',
    '  mailbox Sent {\n    special_use = \\Sent\n    auto = create\n  }',
    '  mailbox Junk {\n    special_use = \\Junk\n    auto = create\n  }',
    '  mailbox Trash {\n    special_use = \\Trash\n    auto = create\n  }',
    '}',
    `passdb {\n  driver = passwd-file\n  args = ${join(dir, 'passwd')}\n}`,
    `userdb {\n  driver = passwd-file\n  args = ${join(dir, 'passwd')}\n}`,
    `service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = ${port}\n  }\n  inet_listener imaps {\n    address = 127.0.0.1\n    port = ${tlsPort ?? 0}\n    ssl = yes\n  }\n}`,
    'service anvil {\n  chroot =\n}',
    'service imap-login {\n  chroot =\n}',
    'protocol imap {\n  mail_max_userip_connections = 20000\n  imap_capability = +MOVE\n}',
    o.extra ?? '',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'dovecot.conf'), conf);
  let log = '';
  const closeOnFail = async (err: unknown) => {
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  };
  const args = ['-F', '-c', join(dir, 'dovecot.conf')];
  // `exec` keeps the process ours (the master), so close() and master.pid still name it.
  const proc = o.nofile
    ? spawn('sh', ['-c', `ulimit -n ${Math.floor(o.nofile)} && exec dovecot "$@"`, 'dovecot', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('dovecot', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitForGreeting(port, proc, () => log).catch(closeOnFail);
  return {
    port,
    tlsPort,
    ca: o.tls ? readFileSync(join(dir, 'cert.pem'), 'utf8') : null,
    user,
    password,
    maildir,
    dir,
    async close() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
