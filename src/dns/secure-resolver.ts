/**
 * DNS queries that report whether the answer was DNSSEC-validated: the AD
 * bit of a validating resolver (RFC 4035 3.2.3, RFC 6840 5.7).
 *
 * Why our own queries: node:dns (c-ares) returns records but never the
 * header, so it cannot tell a validated answer from a forged one. Here each
 * query is built with dns-packet, sent with RD, AD and EDNS DO set to the
 * configured resolvers over UDP, and retried over TCP when truncated.
 *
 * The AD bit is only as trustworthy as the path to the resolver: the
 * resolvers named in `[dns] servers` must be validating resolvers the
 * operator trusts on a trusted path (loopback or the local network), as
 * RFC 6698 4.1 and RFC 7672 2.1.1 assume. docs/protocol.md 3.4 says so.
 *
 * Outcomes are values, not exceptions: NOERROR (records, possibly none),
 * NXDOMAIN, and SERVFAIL (what a validating resolver answers for a bogus
 * answer, so "bogus" and "resolver broken" look the same and both mean
 * "retry later"). Only a failure to get any answer at all (timeouts on
 * every server, garbage) throws. A small cache keeps answers for their TTL
 * (capped); SERVFAIL is never cached.
 */
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { connect, isIPv6 } from 'node:net';
import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import type { SecureAnswer, SecureRcode, SecureResolver } from './types.ts';
import { TtlCache } from './ttl-cache.ts';
import { canonicalName } from './names.ts';

export type { SecureAnswer, SecureRcode, SecureResolver } from './types.ts';

export interface SecureResolverOptions {
  /** As `[dns] servers`; empty: the system's resolvers. */
  servers?: string[];
  timeoutMs?: number;
  /** Upper bound on caching (seconds; 0 disables). */
  cacheTtlCapSeconds?: number;
}

const RCODE_NAMES: Record<number, SecureRcode | undefined> = { 0: 'NOERROR', 2: 'SERVFAIL', 3: 'NXDOMAIN' };
const NEGATIVE_TTL_SECONDS = 30;
const UDP_SIZE = 1232;

export function createSecureResolver(options: SecureResolverOptions = {}): SecureResolver {
  const configured = (options.servers ?? []).map((s) => s.trim()).filter((s) => s !== '');
  const servers = (configured.length > 0 ? configured : getServers()).map(parseServer);
  const timeoutMs = options.timeoutMs ?? 5000;
  const cap = Math.max(0, options.cacheTtlCapSeconds ?? 300);
  const cache = new TtlCache<SecureAnswer>(10_000);
  const inFlight = new Map<string, Promise<SecureAnswer>>();

  async function fromNetwork(name: string, type: string): Promise<SecureAnswer> {
    const problems: string[] = [];
    for (const server of servers) {
      try {
        let reply = await udpQuery(server, name, type, timeoutMs);
        if (reply.flags !== undefined && reply.flags & packet.TRUNCATED_RESPONSE) reply = await tcpQuery(server, name, type, timeoutMs);
        const rcode = RCODE_NAMES[(reply.flags ?? 0) & 0x0f];
        // REFUSED, NOTIMP, FORMERR: this server is no use; ask the next.
        if (!rcode) throw new Error(`rcode ${(reply.flags ?? 0) & 0x0f}`);
        if (rcode === 'SERVFAIL' && server !== servers[servers.length - 1]) {
          problems.push(`${server.host}: SERVFAIL`);
          continue;
        }
        return toAnswer(reply, name, type, rcode);
      } catch (err) {
        problems.push(`${server.host}:${server.port}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (problems.every((p) => p.endsWith('SERVFAIL'))) return { rcode: 'SERVFAIL', authenticated: false, records: [] };
    const err = new Error(`DNS query ${name} ${type} failed: ${problems.join('; ')}`) as NodeJS.ErrnoException;
    err.code = 'ETIMEOUT';
    throw err;
  }

  return {
    async query(name, type) {
      const key = `${type} ${canonicalName(name)}`;
      const hit = cache.get(key);
      if (hit) return copy(hit);
      let pending = inFlight.get(key);
      if (!pending) {
        pending = fromNetwork(canonicalName(name), type).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      const answer = await pending;
      if (answer.rcode !== 'SERVFAIL') {
        const ttl = answer.records.length > 0 ? Math.min(...answer.records.map((r) => r.ttl)) : NEGATIVE_TTL_SECONDS;
        cache.set(key, answer, Math.min(ttl, cap));
      }
      return copy(answer);
    },
    clearCache: () => cache.clear(),
  };
}

/**
 * A copy the caller may change without touching the cache. Not
 * structuredClone: it turns Buffers (TXT strings, TLSA data) into plain
 * Uint8Arrays; nobody mutates `data`, so it is shared.
 */
function copy(answer: SecureAnswer): SecureAnswer {
  return { ...answer, records: answer.records.map((r) => ({ ...r })) };
}

/** The records that answer the question: the type asked for, at the name or along its CNAME chain. */
function toAnswer(reply: DecodedPacket, name: string, type: string, rcode: SecureRcode): SecureAnswer {
  const authenticated = ((reply.flags ?? 0) & packet.AUTHENTIC_DATA) !== 0;
  const answers = reply.answers ?? [];
  const owners = new Set([canonicalName(name)]);
  // Follow CNAMEs in order (a resolver puts the chain first); a loop ends when no new owner appears.
  for (let changed = true; changed; ) {
    changed = false;
    for (const a of answers) {
      if (a.type === 'CNAME' && owners.has(canonicalName(a.name)) && !owners.has(canonicalName(a.data))) {
        owners.add(canonicalName(a.data));
        changed = true;
      }
    }
  }
  const records = answers
    .filter((a) => a.type === type && owners.has(canonicalName(a.name)))
    .map((a) => ({ name: a.name, type: a.type, ttl: 'ttl' in a ? (a.ttl ?? 0) : 0, data: 'data' in a ? a.data : undefined }));
  return { rcode, authenticated, records };
}

interface Server {
  host: string;
  port: number;
}

function parseServer(text: string): Server {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) return { host: v6[1] ?? '', port: Number(v6[2] ?? 53) };
  if (isIPv6(text)) return { host: text, port: 53 };
  const [host = '', port] = text.split(':');
  return { host, port: Number(port ?? 53) };
}

function question(id: number, name: string, type: string): packet.Packet {
  return {
    id,
    type: 'query',
    // RD, and AD: "I understand AD" (RFC 6840 5.7), so a validating resolver sets it without DO semantics too.
    flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: packet.DNSSEC_OK, flag_do: true, options: [] }],
  };
}

/** A reply counts only if it is a response to this id and this question (no blind spoofing by a stray datagram). */
function matches(reply: DecodedPacket, id: number, name: string, type: string): boolean {
  const q = reply.questions?.[0];
  return reply.type === 'response' && reply.id === id && q !== undefined && canonicalName(q.name) === canonicalName(name) && q.type === type;
}

function udpQuery(server: Server, name: string, type: string, timeoutMs: number): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const id = randomInt(0x10000);
    const socket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const done = (err: Error | null, reply?: DecodedPacket): void => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(reply as DecodedPacket);
    };
    socket.on('error', (err) => done(err));
    socket.on('message', (msg, from) => {
      if (from.port !== server.port) return;
      let reply: DecodedPacket;
      try {
        reply = packet.decode(msg);
      } catch {
        return; // garbage: keep waiting for the real answer until the timer
      }
      if (matches(reply, id, name, type)) done(null, reply);
    });
    socket.send(packet.encode(question(id, name, type)), server.port, server.host, (err) => {
      if (err) done(err);
    });
  });
}

function tcpQuery(server: Server, name: string, type: string, timeoutMs: number): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const id = randomInt(0x10000);
    const socket = connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms (TCP)`)), timeoutMs);
    const done = (err: Error | null, reply?: DecodedPacket): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply as DecodedPacket);
    };
    socket.on('error', (err) => done(err));
    socket.on('connect', () => socket.write(packet.streamEncode(question(id, name, type))));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      try {
        const reply = packet.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        if (matches(reply, id, name, type)) done(null, reply);
        else done(new Error('TCP answer does not match the question'));
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}
