import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { Resolver } from 'node:dns/promises';
import * as packet from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { FrameReader, startDnsServer, type EmbeddedDnsServer } from './embedded-server.ts';
import type { DnsRecord } from './types.ts';

const LONG_TXT = `v=DKIM1; k=rsa; p=${'A'.repeat(600 - 18)}`;
const MANY_TXT: DnsRecord[] = Array.from({ length: 40 }, (_, i) => ({
  name: 'big.example.test',
  type: 'TXT',
  data: `record ${String(i).padStart(2, '0')} ${'x'.repeat(60)}`,
}));

const zone = {
  origin: 'example.test',
  records: [
    { name: 'example.test', type: 'SOA', data: { mname: 'ns1.example.test', rname: 'hostmaster.example.test', serial: 7, minimum: 30 } },
    { name: 'example.test', type: 'A', ttl: 120, data: '192.0.2.10' },
    { name: 'example.test', type: 'AAAA', data: '2001:db8::10' },
    { name: 'example.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' } },
    { name: 'example.test', type: 'MX', data: { preference: 20, exchange: 'mx2.example.test' } },
    { name: 'example.test', type: 'TXT', data: 'v=spf1 a mx -all' },
    { name: 'sel._domainkey.example.test', type: 'TXT', data: LONG_TXT },
    { name: '_twm._tcp.example.test', type: 'SRV', data: { priority: 0, weight: 5, port: 8443, target: 'mx1.example.test' } },
    { name: 'www.example.test', type: 'CNAME', data: 'example.test' },
    { name: 'mx1.example.test', type: 'A', data: '192.0.2.11' },
    ...MANY_TXT,
  ] satisfies DnsRecord[],
};

let server: EmbeddedDnsServer;
let resolver: Resolver;

before(async () => {
  server = await startDnsServer({ zones: [zone], records: [{ name: 'loose.other', type: 'A', data: '198.51.100.1' }] });
  resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server.address]);
});
after(() => server.close());

describe('embedded DNS server via node:dns', () => {
  it('listens on UDP and TCP on one port and reports its address', () => {
    assert.equal(server.host, '127.0.0.1');
    assert.ok(server.port > 0);
    assert.equal(server.address, `127.0.0.1:${server.port}`);
  });

  it('answers A and AAAA with TTLs', async () => {
    assert.deepEqual(await resolver.resolve4('example.test', { ttl: true }), [{ address: '192.0.2.10', ttl: 120 }]);
    assert.deepEqual(await resolver.resolve6('example.test'), ['2001:db8::10']);
  });

  it('matches names case-insensitively', async () => {
    assert.deepEqual(await resolver.resolve4('ExAmPle.TEST.'), ['192.0.2.10']);
  });

  it('answers MX and SRV', async () => {
    const mx = await resolver.resolveMx('example.test');
    assert.deepEqual(
      mx.sort((a, b) => a.priority - b.priority),
      [
        { exchange: 'mx1.example.test', priority: 10 },
        { exchange: 'mx2.example.test', priority: 20 },
      ],
    );
    assert.deepEqual(await resolver.resolveSrv('_twm._tcp.example.test'), [
      { name: 'mx1.example.test', port: 8443, priority: 0, weight: 5 },
    ]);
  });

  it('splits a 600-byte TXT into 255-byte strings that join back', async () => {
    const [chunks] = await resolver.resolveTxt('sel._domainkey.example.test');
    assert.ok(chunks);
    assert.equal(LONG_TXT.length, 600);
    assert.deepEqual(chunks.map((c) => c.length), [255, 255, 90]);
    assert.equal(chunks.join(''), LONG_TXT);
    assert.deepEqual(await resolver.resolveTxt('example.test'), [['v=spf1 a mx -all']]);
  });

  it('answers CNAME queries and chases CNAMEs for other types', async () => {
    assert.deepEqual(await resolver.resolveCname('www.example.test'), ['example.test']);
    assert.deepEqual(await resolver.resolve4('www.example.test'), ['192.0.2.10']);
  });

  it('maps NXDOMAIN to ENOTFOUND and NODATA to ENODATA', async () => {
    await assert.rejects(resolver.resolve4('nope.example.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolveMx('mx1.example.test'), { code: 'ENODATA' });
    // An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
    await assert.rejects(resolver.resolveTxt('_domainkey.example.test'), { code: 'ENODATA' });
  });

  it('retries a truncated UDP answer over TCP transparently', async () => {
    const raw = await udpQuery(server.port, query('big.example.test', 'TXT'));
    assert.ok(raw);
    assert.ok(raw.flag_tc, 'TC set');
    assert.equal(raw.answers?.length, 0);

    const before = server.queries;
    const txt = await resolver.resolveTxt('big.example.test');
    assert.equal(txt.length, MANY_TXT.length);
    assert.equal(server.queries - before, 2, 'one UDP query, then one TCP query');
  });

  it('serves records added and removed while running', async () => {
    server.add([{ name: 'new.example.test', type: 'TXT', data: ['a', 'b'] }]);
    assert.deepEqual(await resolver.resolveTxt('new.example.test'), [['a', 'b']]);
    server.remove('NEW.example.test', 'TXT');
    await assert.rejects(resolver.resolveTxt('new.example.test'), { code: 'ENOTFOUND' });
  });
});

describe('embedded DNS server on the wire', () => {
  it('sets AA and puts the SOA in the authority section of negative answers', async () => {
    const nx = await udpQuery(server.port, query('nope.example.test', 'A'));
    assert.ok(nx?.flag_aa);
    assert.equal(rcodeOf(nx), 3);
    assert.equal(nx?.authorities?.[0]?.type, 'SOA');

    const nodata = await udpQuery(server.port, query('mx1.example.test', 'MX'));
    assert.equal(rcodeOf(nodata), 0);
    assert.equal(nodata?.answers?.length, 0);
    assert.equal(nodata?.authorities?.[0]?.type, 'SOA');
  });

  it('refuses names outside the configured zones but serves loose records', async () => {
    assert.equal(rcodeOf(await udpQuery(server.port, query('elsewhere.invalid', 'A'))), 5);
    const loose = await udpQuery(server.port, query('loose.other', 'A'));
    assert.equal(rcodeOf(loose), 0);
    assert.equal(addressOf(loose?.answers?.[0]), '198.51.100.1');
  });

  it('answers NXDOMAIN for unknown names when only loose records are served', async () => {
    const loose = await startDnsServer({ records: [{ name: 'a.test', type: 'A', data: '192.0.2.1' }] });
    try {
      const res = await udpQuery(loose.port, query('b.test', 'A'));
      assert.equal(rcodeOf(res), 3);
      assert.equal(res?.authorities?.length, 0);
    } finally {
      await loose.close();
    }
  });

  it('honours the EDNS payload size instead of truncating at 512', async () => {
    const q = query('sel._domainkey.example.test', 'TXT');
    const plain = await udpQuery(server.port, q);
    assert.ok(plain?.flag_tc, 'over 512 bytes without EDNS');
    const edns = await udpQuery(server.port, {
      ...q,
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    });
    assert.ok(edns && !edns.flag_tc);
    assert.equal(edns.answers?.length, 1);
    assert.equal(edns.additionals?.[0]?.type, 'OPT');
  });

  it('answers several TCP queries on one connection, sent in fragments', async () => {
    const wire = Buffer.concat([
      packet.streamEncode(query('example.test', 'A', 101)),
      packet.streamEncode(query('example.test', 'MX', 102)),
    ]);
    const socket = connect(server.port, '127.0.0.1');
    const frames = new FrameReader();
    const replies: DecodedPacket[] = [];
    const done = new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        for (const f of frames.push(chunk)) replies.push(packet.decode(f));
        if (replies.length === 2) resolve();
      });
    });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    for (let i = 0; i < wire.length; i += 7) {
      socket.write(wire.subarray(i, i + 7));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await done;
    socket.destroy();
    assert.deepEqual(replies.map((r) => r.id), [101, 102]);
    assert.equal(addressOf(replies[0]?.answers?.[0]), '192.0.2.10');
    assert.equal(replies[1]?.answers?.length, 2);
  });

  it('survives garbage: short datagrams and responses are dropped, undecodable queries get FORMERR', async () => {
    assert.equal(await udpQuery(server.port, Buffer.from('hello'), 200), null);
    const asResponse = packet.encode({ ...query('example.test', 'A'), type: 'response' });
    assert.equal(await udpQuery(server.port, asResponse, 200), null);

    const garbage = Buffer.from('0102000100ff00000000000009deadbeefcafe', 'hex');
    const formerr = await udpQuery(server.port, garbage);
    assert.equal(formerr?.id, 0x0102);
    assert.equal(rcodeOf(formerr), 1);

    // Garbage over TCP too, then a well-formed query on a new connection.
    await new Promise<void>((resolve) => {
      const s = connect(server.port, '127.0.0.1', () => s.end(Buffer.from([0, 3, 1, 2, 3, 0xff])));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.resume();
    });
    assert.deepEqual(await resolver.resolve4('example.test'), ['192.0.2.10']);
  });

  it('rejects bad records at add time', () => {
    assert.throws(() => server.add([{ name: 'x.example.test', type: 'A', data: 'not-an-ip' }]), /IPv4/);
    assert.throws(() => server.add([{ name: `${'a'.repeat(64)}.example.test`, type: 'A', data: '192.0.2.1' }]), /label/);
  });
});

function query(name: string, type: 'A' | 'MX' | 'TXT', id = 4242): Packet {
  return { id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] };
}

function addressOf(answer: Answer | undefined): string | undefined {
  return answer?.type === 'A' ? answer.data : undefined;
}

function rcodeOf(p: DecodedPacket | null): number | undefined {
  return p ? (p.flags ?? 0) & 0x0f : undefined;
}

/** Sends one datagram; resolves with the decoded reply, or null if none came within `waitMs`. */
function udpQuery(port: number, message: Packet | Buffer, waitMs = 2000): Promise<DecodedPacket | null> {
  const buf = Buffer.isBuffer(message) ? message : packet.encode(message);
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(null), waitMs);
    const finish = (value: DecodedPacket | null): void => {
      clearTimeout(timer);
      socket.close();
      resolve(value);
    };
    socket.on('error', reject);
    socket.on('message', (reply) => finish(packet.decode(reply)));
    socket.send(buf, port, '127.0.0.1');
  });
}
