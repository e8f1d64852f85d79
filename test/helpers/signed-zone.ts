/**
 * A DNSSEC-signed test zone and a tiny authoritative server for it.
 *
 * The zone is signed by the real tools (ldns-keygen, ldns-signzone: NSEC,
 * ECDSA P-256), then read back with `ldns-read-zone -u` for every type, so
 * each record arrives as RFC 3597 `\# len hex` rdata: the server hands the
 * signer's octets to the wire unchanged and never re-encodes what was signed.
 *
 * The server answers like an authoritative server of a signed zone: the
 * RRset and its RRSIGs; for NODATA the SOA and the owner's NSEC; for
 * NXDOMAIN the SOA and the NSECs that cover the name and the wildcard, all
 * with their RRSIGs. Tests then break it on purpose: `tamper` changes rdata
 * after signing (bogus), `strip` drops the RRSIGs of a name (stripped), and
 * `spoof` answers NXDOMAIN for a name with no proof at all.
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { FrameReader } from '../../src/dns/embedded-server.ts';

export interface ZoneKeys {
  origin: string;
  dir: string;
  /** Base names of the key files (KSK first). */
  files: string[];
  /** The KSK's DS record, for unbound's `trust-anchor:`. */
  ds: string;
}

/** Generates a KSK and a ZSK for `origin` in `dir` (before the zone's content is known). */
export function generateZoneKeys(dir: string, origin: string): ZoneKeys {
  const run = (args: string[]) => execFileSync('ldns-keygen', args, { cwd: dir, encoding: 'utf8' }).trim();
  const ksk = run(['-a', 'ECDSAP256SHA256', '-k', origin]);
  const zsk = run(['-a', 'ECDSAP256SHA256', origin]);
  const ds = readFileSync(join(dir, `${ksk}.ds`), 'utf8').trim().replace(/\s+/g, ' ');
  return { origin, dir, files: [ksk, zsk], ds };
}

export interface RawRecord {
  name: string;
  type: number;
  ttl: number;
  data: Buffer;
}

/** Signs zone text (origin-relative or absolute names) and returns its records, rdata as signed. */
export function signZone(keys: ZoneKeys, zoneText: string): RawRecord[] {
  const file = join(keys.dir, `${keys.origin}.zone`);
  writeFileSync(file, `$ORIGIN ${keys.origin}.\n$TTL 60\n${zoneText}\n`);
  execFileSync('ldns-signzone', [file, ...keys.files], { cwd: keys.dir });
  const types = ['SOA', 'NS', 'A', 'AAAA', 'MX', 'TXT', 'SRV', 'TLSA', 'CNAME', 'RRSIG', 'DNSKEY', 'NSEC', 'DS'];
  const text = execFileSync('ldns-read-zone', ['-c', ...types.flatMap((t) => ['-u', t]), `${file}.signed`], { encoding: 'utf8' });
  const records: RawRecord[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\d+)\s+IN\s+TYPE(\d+)\s+\\#\s+\d+\s*([0-9a-fA-F ]*)$/.exec(line.trim());
    if (!m) continue;
    records.push({ name: lower(m[1] ?? ''), ttl: Number(m[2]), type: Number(m[3]), data: Buffer.from((m[4] ?? '').replace(/ /g, ''), 'hex') });
  }
  return records;
}

const RRSIG = 46;
const NSEC = 47;
const SOA = 6;
const CNAME = 5;

export interface SignedZoneServer {
  readonly address: string;
  readonly port: number;
  /** Replaces the served records (a re-signed zone) and ends any spoofing. */
  load(records: RawRecord[]): void;
  /** Rewrites the rdata of `name`'s records of `type` after signing: their signatures no longer verify. */
  tamper(name: string, type: number, data: Buffer): void;
  /** Drops the RRSIGs of `name`. */
  strip(name: string): void;
  /** Answers NXDOMAIN, without any proof, for `name`. */
  spoof(name: string): void;
  close(): Promise<void>;
}

export async function startSignedZoneServer(origin: string, initial: RawRecord[]): Promise<SignedZoneServer> {
  let records = initial;
  const spoofed = new Set<string>();
  const zone = lower(origin);

  const answer = (query: Buffer): Buffer | null => {
    let q: packet.DecodedPacket;
    try {
      q = packet.decode(query);
    } catch {
      return null;
    }
    const question = q.questions?.[0];
    if (q.type !== 'query' || !question) return null;
    const qname = lower(question.name);
    const qtypeNumber = typeNumber(question.type);
    const rr = (r: RawRecord): packet.Answer => ({ name: r.name, type: `UNKNOWN_${r.type}` as 'A', ttl: r.ttl, class: 'IN', data: r.data as unknown as string });
    const sigsOf = (name: string, covered: number) => records.filter((r) => r.name === name && r.type === RRSIG && r.data.readUInt16BE(0) === covered);
    const withSigs = (set: RawRecord[]) => set.flatMap((r, i) => (i === set.length - 1 ? [r, ...sigsOf(r.name, r.type)] : [r]));
    const reply = (rcode: number, answers: RawRecord[], authorities: RawRecord[]) =>
      packet.encode({
        id: q.id,
        type: 'response',
        flags: packet.AUTHORITATIVE_ANSWER | rcode,
        questions: [question],
        answers: answers.map(rr),
        authorities: authorities.map(rr),
        additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: packet.DNSSEC_OK, flag_do: true, options: [] }],
      });
    if (qname !== zone && !qname.endsWith(`.${zone}`)) return reply(5, [], []);
    const soa = withSigs(records.filter((r) => r.name === zone && r.type === SOA));
    if (spoofed.has(qname)) return reply(3, [], []);
    const owned = records.filter((r) => r.name === qname);
    const exact = owned.filter((r) => r.type === qtypeNumber);
    if (exact.length > 0) return reply(0, withSigs(exact), []);
    const cname = owned.filter((r) => r.type === CNAME);
    if (cname.length > 0) return reply(0, withSigs(cname), []);
    if (owned.length > 0 || records.some((r) => r.name.endsWith(`.${qname}`))) {
      return reply(0, [], [...soa, ...withSigs(owned.filter((r) => r.type === NSEC))]);
    }
    const nsecs = records.filter((r) => r.type === NSEC);
    const covering = (name: string) => nsecs.filter((n) => covers(n, name));
    const wildcard = `*.${zone}`;
    const proof = [...new Set([...covering(qname), ...covering(wildcard)])];
    return reply(3, [], [...soa, ...proof.flatMap((n) => withSigs([n]))]);
  };

  const { udp, tcp, port } = await listen(answer);
  return {
    address: `127.0.0.1:${port}`,
    port,
    load: (next) => {
      records = next;
      spoofed.clear();
    },
    tamper: (name, type, data) => {
      records = records.map((r) => (r.name === lower(name) && r.type === type ? { ...r, data } : r));
    },
    strip: (name) => {
      records = records.filter((r) => !(r.name === lower(name) && r.type === RRSIG));
    },
    spoof: (name) => spoofed.add(lower(name)),
    close: async () => {
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}

/** True when the NSEC record's span (owner, next) strictly covers `name` in canonical order. */
function covers(nsec: RawRecord, name: string): boolean {
  const next = lower(readName(nsec.data));
  const after = canonicalCompare(nsec.name, name) < 0;
  const before = canonicalCompare(name, next) < 0;
  // The last NSEC wraps around to the apex: it covers everything after its owner.
  const wraps = canonicalCompare(next, nsec.name) <= 0;
  return wraps ? after : after && before;
}

/** An uncompressed domain name at the start of rdata. */
function readName(data: Buffer): string {
  const labels: string[] = [];
  for (let i = 0; i < data.length && data[i] !== 0; i += (data[i] ?? 0) + 1) labels.push(data.subarray(i + 1, i + 1 + (data[i] ?? 0)).toString('latin1'));
  return labels.join('.');
}

/** RFC 4034 6.1: labels compared right to left, as lower-case octets. */
function canonicalCompare(a: string, b: string): number {
  const la = a.split('.').filter(Boolean).reverse();
  const lb = b.split('.').filter(Boolean).reverse();
  for (let i = 0; i < Math.min(la.length, lb.length); i++) {
    const c = Buffer.compare(Buffer.from(la[i] ?? '', 'latin1'), Buffer.from(lb[i] ?? '', 'latin1'));
    if (c !== 0) return c;
  }
  return la.length - lb.length;
}

function typeNumber(type: string): number {
  const probe = packet.encode({ questions: [{ name: '.', type: type as 'A' }] });
  return probe.readUInt16BE(probe.length - 4);
}

function lower(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

async function listen(answer: (q: Buffer) => Buffer | null): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  for (;;) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    udp.on('message', (msg, from) => {
      const out = answer(msg);
      if (!out) return;
      // Big answers (NSEC proofs with signatures) are truncated so the resolver asks over TCP.
      const reply = out.length > 1232 ? truncate(out) : out;
      udp.send(reply, from.port, from.address, () => undefined);
    });
    const port = udp.address().port;
    const tcp = createServer((socket: Socket) => {
      const frames = new FrameReader();
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        for (const msg of frames.push(chunk)) {
          const out = answer(msg);
          if (!out) continue;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          socket.write(Buffer.concat([len, out]));
        }
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => resolve());
      });
      return { udp, tcp, port };
    } catch {
      udp.close();
    }
  }
}

/** Header and question only, with TC set. */
function truncate(full: Buffer): Buffer {
  const decoded = packet.decode(full);
  return packet.encode({ id: decoded.id, type: 'response', flags: (decoded.flags ?? 0) | packet.TRUNCATED_RESPONSE, questions: decoded.questions ?? [] });
}
