/**
 * Debian's unbound as a private validating resolver on a loopback port: the
 * real thing that sets (or withholds) the AD bit, so the DNSSEC tests check
 * twoway against a validator rather than against our idea of one.
 *
 * The generated unbound.conf: no chroot, no daemon, no user switch, no root
 * trust anchor (so every zone without an anchor here is insecure), one
 * `trust-anchor:` (a DS) per signed test zone served by its stub, and a forward
 * for the root pointing at the embedded DNS server for everything else.
 * `test.` and `invalid.` are unbound's built-in local zones (RFC 6761);
 * `nodefault` hands them to the stubs. Caching is kept short so tests that
 * change a zone see the change.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';

export interface SignedStub {
  zone: string;
  /** `127.0.0.1:port` of the server for the zone. */
  address: string;
  /** The DS record text (`zone. IN DS ...`) used as the trust anchor. */
  ds: string;
}

export interface UnboundOptions {
  signed: SignedStub[];
  /** Everything else (insecure): the embedded DNS server's `127.0.0.1:port`. */
  fallback: string;
  /** Zones declared insecure with `domain-insecure:` (beyond the ones that simply have no anchor). */
  insecure?: string[];
}

export interface Unbound {
  readonly address: string;
  readonly port: number;
  /** Unbound's stderr so far (validation failures at val-log-level 2). */
  log(): string;
  close(): Promise<void>;
}

const at = (address: string) => address.replace(':', '@');

export async function startUnbound(options: UnboundOptions): Promise<Unbound> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-unbound-'));
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const conf = [
      'server:',
      '  interface: 127.0.0.1',
      `  port: ${port}`,
      '  do-ip6: no',
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  logfile: ""',
      '  use-syslog: no',
      `  verbosity: ${process.env.UNBOUND_VERBOSITY ?? 1}`,
      '  val-log-level: 2',
      '  num-threads: 1',
      '  so-reuseport: no',
      '  access-control: 127.0.0.0/8 allow',
      '  do-not-query-localhost: no',
      '  module-config: "validator iterator"',
      '  val-permissive-mode: no',
      '  qname-minimisation: no',
      '  harden-referral-path: no',
      '  cache-max-ttl: 2',
      '  cache-max-negative-ttl: 1',
      '  val-bogus-ttl: 1',
      '  infra-host-ttl: 5',
      '  local-zone: "test." nodefault',
      '  local-zone: "invalid." nodefault',
      ...options.signed.map((s) => `  trust-anchor: "${s.ds}"`),
      ...(options.insecure ?? []).map((z) => `  domain-insecure: "${z}"`),
      ...options.signed.flatMap((s) => ['stub-zone:', `  name: "${s.zone}."`, `  stub-addr: ${at(s.address)}`]),
      // A forward, not a stub: a stub for the root would be primed (". NS"), which the embedded server does not serve.
      'forward-zone:',
      '  name: "."',
      `  forward-addr: ${at(options.fallback)}`,
      '',
    ].join('\n');
    const file = join(dir, 'unbound.conf');
    writeFileSync(file, conf);
    const child = spawn('/usr/sbin/unbound', ['-d', '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const ready = await waitReady(port, exited);
    if (ready) {
      return {
        address: `127.0.0.1:${port}`,
        port,
        log: () => stderr,
        close: async () => {
          await stop(child, exited);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await stop(child, exited);
    // A port in use makes unbound exit; another random port then.
    if (attempt >= 5) throw new Error(`unbound did not start: ${stderr}`);
  }
}

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await exited;
}

/** Ready when it answers a query (any rcode); false if it exits first. */
async function waitReady(port: number, exited: Promise<number | null>): Promise<boolean> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  for (let i = 0; i < 100 && !gone; i++) {
    if (await probe(port)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(false);
    }, 300);
    socket.on('message', () => {
      clearTimeout(timer);
      socket.close();
      resolve(true);
    });
    socket.on('error', () => undefined);
    socket.send(packet.encode({ id: 1, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name: 'localhost', type: 'A' }] }), port, '127.0.0.1');
  });
}
