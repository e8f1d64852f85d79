/**
 * Embedded authoritative DNS server, for tests and the demo: several mail
 * domains on one machine need MX, SPF, DKIM, DMARC and TWM SRV/TXT records
 * that resolve, without touching the system's DNS.
 *
 * Design note
 * - UDP and TCP listen on the same port, because a resolver configured with
 *   `127.0.0.1:PORT` retries truncated answers over TCP on that same port.
 *   With port 0 the UDP port is chosen first and TCP is bound to the same
 *   number; if another process holds that TCP port we start over (a few
 *   times) with a fresh UDP port.
 * - All DNS semantics live in ZoneStore (what to answer) and `respond`
 *   (wire format, FORMERR/NOTIMP, truncation); this file is only sockets.
 * - UDP answers larger than 512 bytes (or the EDNS size, capped at 1232)
 *   are replaced by an empty answer with TC set; clients then ask over TCP.
 * - TCP frames are a 2-byte length and the message; a connection may carry
 *   many queries and a frame may arrive in pieces, so bytes are buffered
 *   until a whole frame is present. Answers go out in query order because
 *   each is computed synchronously.
 * - Nothing a client sends can crash the process: bad messages are dropped
 *   or answered FORMERR, and socket errors close only that socket.
 * - `add`/`remove` change the data while running, so tests can flip a DKIM
 *   key or an SPF policy between messages.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { DnsRecord, Zone } from './types.ts';
import { ZoneStore } from './zone-store.ts';
import { respond } from './responder.ts';

export interface DnsServerOptions {
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** 0 or absent picks a free port for UDP and TCP alike. */
  port?: number;
  /** Zones served authoritatively; unknown names outside them are REFUSED. */
  zones?: Zone[];
  /** Records outside (or inside) the zones; with no zones, unknown names are NXDOMAIN. */
  records?: DnsRecord[];
}

export interface EmbeddedDnsServer {
  readonly host: string;
  readonly port: number;
  /** `host:port` (`[v6]:port` for IPv6), ready for Resolver#setServers and the config file. */
  readonly address: string;
  /** DNS messages answered so far over UDP and TCP (tests use it to observe resolver caching). */
  readonly queries: number;
  add(records: DnsRecord[]): void;
  addZone(zone: Zone): void;
  /** Removes all records of `name`, or only those of `type`. */
  remove(name: string, type?: string): void;
  close(): Promise<void>;
}

const BIND_ATTEMPTS = 8;
/** Idle TCP connections are closed after this long (RFC 7766 suggests seconds, not minutes). */
const TCP_IDLE_MS = 10_000;

export async function startDnsServer(options: DnsServerOptions = {}): Promise<EmbeddedDnsServer> {
  const host = options.host ?? '127.0.0.1';
  const store = new ZoneStore();
  for (const zone of options.zones ?? []) store.addZone(zone);
  store.add(options.records ?? []);

  let queries = 0;
  const onUdp = (udp: UdpSocket) => (msg: Buffer, from: RemoteInfo) => {
    const reply = respond(store, msg, 'udp');
    if (!reply) return;
    queries++;
    // A send failure (client gone, ICMP unreachable) concerns only that client.
    udp.send(reply, from.port, from.address, () => undefined);
  };
  const connections = new Set<Socket>();
  const onTcp = (socket: Socket): void => {
    connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => connections.delete(socket));
    const frames = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      for (const message of frames.push(chunk)) {
        const reply = respond(store, message, 'tcp');
        if (!reply) continue;
        queries++;
        const length = Buffer.alloc(2);
        length.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([length, reply]));
      }
    });
  };

  const { udp, tcp, port } = await bindPair(host, options.port ?? 0, onUdp, onTcp);
  return {
    host,
    port,
    address: isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`,
    get queries() {
      return queries;
    },
    add: (records) => store.add(records),
    addZone: (zone) => store.addZone(zone),
    remove: (name, type) => store.remove(name, type),
    close: async () => {
      for (const socket of connections) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

/** Splits a TCP byte stream into DNS messages (2-byte big-endian length prefix). */
export class FrameReader {
  #buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const out: Buffer[] = [];
    while (this.#buffered.length >= 2) {
      const length = this.#buffered.readUInt16BE(0);
      if (this.#buffered.length < 2 + length) break;
      out.push(this.#buffered.subarray(2, 2 + length));
      this.#buffered = this.#buffered.subarray(2 + length);
    }
    return out;
  }
}

async function bindPair(
  host: string,
  requestedPort: number,
  onUdp: (udp: UdpSocket) => (msg: Buffer, from: RemoteInfo) => void,
  onTcp: (socket: Socket) => void,
): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const udp = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(requestedPort, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    // After binding, errors are per-datagram (e.g. ICMP port unreachable) and must not crash us.
    udp.on('error', () => undefined);
    udp.on('message', onUdp(udp));
    const port = udp.address().port;

    const tcp = createServer(onTcp);
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      tcp.on('error', () => undefined);
      return { udp, tcp, port };
    } catch (err) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!inUse || requestedPort !== 0 || attempt >= BIND_ATTEMPTS) throw err;
    }
  }
}
