/**
 * A private rspamd for tests: Debian's package with a config written into a
 * temp dir (the stock modules through $CONFDIR/common.conf, our workers on
 * free loopback ports), Redis at 127.0.0.1:6379 in a database of the test's
 * own (flushed at start). Network checks (RBLs, fuzzy, ASN, hostname
 * checks) are off and DNS points at a closed port, so scans are fast and
 * deterministic without network. A multimap symbol, TWOWAY_TEST_JUNK
 * (score 7, above `add_header` = 6), fires for a Subject containing
 * "junk-me-please", so a test can ask for `add header` on purpose. With
 * `greylist` (a score), rspamd's greylist action is on at that score and
 * TWOWAY_TEST_GREY (score 4.5) fires for a Subject containing
 * "grey-me-please" (off by default: the corpus bench must not be greylisted).
 *
 * The hyperscan cache is shared between runs (tmpdir/twoway-rspamd-hs), so
 * only the first start on a machine compiles rspamd's regexps (~20 s).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commonFreePort } from '../../src/cli/demo-lab.ts';

export const RSPAMD_BIN = '/usr/bin/rspamd';
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
export const JUNK_SUBJECT = 'junk-me-please';
export const GREY_SUBJECT = 'grey-me-please';

export interface TestRspamd {
  url: string;
  controllerUrl: string;
  /** The proxy worker in milter mode (0 unless `milter`). */
  milterPort: number;
  password: string;
  redisDb: number;
  dir: string;
  /** `[spam]` TOML for a twoway config pointing at this rspamd. */
  toml(extra?: string): string;
  /** Counters of the Bayes statistics in this test's Redis database. */
  learns(): { spam: number; ham: number };
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function redis(db: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', '6379', '-n', String(db), ...args], { encoding: 'utf8' }).trim();
}

export async function startRspamd(options: { redisDb: number; password?: string; milter?: boolean; normalWorkers?: number; greylist?: number }): Promise<TestRspamd> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-rspamd-'));
  const hsCache = join(tmpdir(), 'twoway-rspamd-hs');
  mkdirSync(hsCache, { recursive: true });
  mkdirSync(join(dir, 'local.d'));
  const password = options.password ?? 'test-controller-pw';
  // Free ports are chosen before rspamd binds them, and tests run several files at once: another
  // process can take one in between. The first start then picks again (below); a restart keeps them.
  let normal = 0;
  let controller = 0;
  // The proxy worker in milter mode, for Postfix's smtpd_milters (bench/spam-accept.ts).
  let milterPort = 0;
  const pickPorts = async () => {
    const taken = new Set<number>();
    const free = async () => {
      let port: number;
      do port = await commonFreePort(['127.0.0.1']);
      while (taken.has(port));
      taken.add(port);
      return port;
    };
    normal = await free();
    controller = await free();
    milterPort = options.milter ? await free() : 0;
  };
  await pickPorts();
  redis(options.redisDb, 'FLUSHDB');

  const writeMainConfig = () =>
    writeFileSync(
      join(dir, 'rspamd.conf'),
      `.include "$CONFDIR/common.conf"
options {
  pidfile = "${dir}/rspamd.pid";
  .include "$CONFDIR/options.inc"
  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging { type = "file"; filename = "${dir}/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "127.0.0.1:${normal}"; mime = true; count = ${options.normalWorkers ?? 1}; }
${milterPort ? `worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:${milterPort}";
  milter = yes;
  timeout = 120s;
  count = 1;
  upstream "local" { default = yes; self_scan = no; hosts = "127.0.0.1:${normal}"; }
}` : ''}
worker "controller" {
  bind_socket = "127.0.0.1:${controller}";
  count = 1;
  password = "${password}";
  enable_password = "${password}";
}
`,
    );
  writeMainConfig();
  const local = (name: string, text: string) => writeFileSync(join(dir, 'local.d', name), text);
  local('options.inc', `hs_cache_dir = "${hsCache}/";\ndns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 1; }\n`);
  local('redis.conf', `servers = "127.0.0.1:6379";\ndb = "${options.redisDb}";\n`);
  for (const m of ['rbl', 'fuzzy_check', 'asn', 'hfilter', 'greylist', 'replies', 'neural', 'url_redirector', 'reputation']) local(`${m}.conf`, 'enabled = false;\n');
  local('actions.conf', `reject = 15;\nadd_header = 6;\ngreylist = ${options.greylist ?? 'null'};\n`);
  local('classifier-bayes.conf', 'min_learns = 1;\nautolearn = false;\n');
  writeFileSync(join(dir, 'junk-subjects.map'), `/${JUNK_SUBJECT}/i\n`);
  writeFileSync(join(dir, 'grey-subjects.map'), `/${GREY_SUBJECT}/i\n`);
  const subjectSymbol = (name: string, map: string, score: number, what: string) =>
    `${name} {\n  type = "header";\n  header = "Subject";\n  regexp = true;\n  map = "${dir}/${map}";\n  score = ${score.toFixed(1)};\n  description = "test: ${what}";\n}\n`;
  local(
    'multimap.conf',
    subjectSymbol('TWOWAY_TEST_JUNK', 'junk-subjects.map', 7, 'asks for add header') +
      (options.greylist === undefined ? '' : subjectSymbol('TWOWAY_TEST_GREY', 'grey-subjects.map', 4.5, 'asks for greylist')),
  );

  let child: ChildProcess | null = null;
  let url = `http://127.0.0.1:${normal}`;
  let controllerUrl = `http://127.0.0.1:${controller}`;
  const logTail = () => (existsSync(join(dir, 'rspamd.log')) ? readFileSync(join(dir, 'rspamd.log'), 'utf8').slice(-2000) : '');

  async function start(): Promise<void> {
    child = spawn(
      RSPAMD_BIN,
      ['-f', '-i', '-c', join(dir, 'rspamd.conf'), '--var', `LOCAL_CONFDIR=${dir}`, '--var', `DBDIR=${dir}`, '--var', `RUNDIR=${dir}`, '--var', `LOGDIR=${dir}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const started = child;
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (started.exitCode !== null) throw new Error(`rspamd exited (${started.exitCode}): ${stderr.slice(-2000)} ${logTail()}`);
      try {
        const [a, b] = await Promise.all([fetch(`${url}/ping`), fetch(`${controllerUrl}/ping`)]);
        await Promise.all([a.text(), b.text()]);
        if (a.ok && b.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`rspamd did not start: ${stderr.slice(-2000)} ${logTail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function stop(): Promise<void> {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    // The workers are gone once the ports refuse connections.
    for (let i = 0; i < 50; i++) {
      try {
        await fetch(`${url}/ping`, { signal: AbortSignal.timeout(200) });
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (err) {
      if (attempt === 3 || !/Address already in use/.test(logTail())) throw err;
      await pickPorts();
      writeMainConfig();
      url = `http://127.0.0.1:${normal}`;
      controllerUrl = `http://127.0.0.1:${controller}`;
      rmSync(join(dir, 'rspamd.log'), { force: true });
    }
  }
  const num = (v: string) => (v === '' ? 0 : Number(v));
  return {
    get url() {
      return url;
    },
    get controllerUrl() {
      return controllerUrl;
    },
    get milterPort() {
      return milterPort;
    },
    password,
    redisDb: options.redisDb,
    dir,
    toml: (extra = '') => `\n[spam]\nurl = "${url}"\ncontroller_url = "${controllerUrl}"\npassword = "${password}"\ntimeout_ms = 5000\n${extra}`,
    learns: () => ({ spam: num(redis(options.redisDb, 'HGET', 'RS', 'learns_spam')), ham: num(redis(options.redisDb, 'HGET', 'RS', 'learns_ham')) }),
    stop,
    start,
    async close() {
      await stop();
      redis(options.redisDb, 'FLUSHDB');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
