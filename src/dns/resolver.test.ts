import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';
import { spf, type DNSResolver } from 'mailauth';
import { startDnsServer, type EmbeddedDnsServer } from './embedded-server.ts';
import { createResolver, toResolveFunction } from './resolver.ts';

let server: EmbeddedDnsServer;

before(async () => {
  server = await startDnsServer({
    zones: [
      {
        origin: 'cache.test',
        records: [
          { name: 'cache.test', type: 'A', ttl: 300, data: '192.0.2.1' },
          { name: 'cache.test', type: 'MX', data: { preference: 10, exchange: 'mx.cache.test' } },
          { name: 'cache.test', type: 'TXT', data: 'v=spf1 ip4:192.0.2.0/24 -all' },
          { name: 'short.cache.test', type: 'A', ttl: 1, data: '192.0.2.2' },
          { name: 'mx.cache.test', type: 'A', data: '192.0.2.3' },
        ],
      },
    ],
  });
});
after(() => server.close());

describe('createResolver', () => {
  it('answers from the cache on repeat lookups, case-insensitively', async () => {
    const r = createResolver({ servers: [server.address] });
    const before = server.queries;
    assert.deepEqual(await r.resolve('cache.test', 'A'), ['192.0.2.1']);
    assert.deepEqual(await r.resolve('CACHE.test.', 'A'), ['192.0.2.1']);
    assert.deepEqual(await r.resolve('cache.test', 'MX'), [{ exchange: 'mx.cache.test', priority: 10 }]);
    assert.deepEqual(await r.resolve('cache.test', 'MX'), [{ exchange: 'mx.cache.test', priority: 10 }]);
    assert.equal(server.queries - before, 2);
    assert.deepEqual(r.stats(), { hits: 2, misses: 2 });
  });

  it('hands out copies, so callers cannot corrupt the cache', async () => {
    const r = createResolver({ servers: [server.address] });
    const first = await r.resolve('cache.test', 'TXT');
    first[0]?.push('tampered');
    assert.deepEqual(await r.resolve('cache.test', 'TXT'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
  });

  it('shares one frozen TXT answer through resolveShared, and resolve still hands out mutable copies', async () => {
    const r = createResolver({ servers: [server.address] });
    const shared = await r.resolveShared('cache.test', 'TXT');
    assert.deepEqual(shared, [['v=spf1 ip4:192.0.2.0/24 -all']]);
    assert.equal(await r.resolveShared('cache.test', 'TXT'), shared, 'the same cached answer, not a copy');
    assert.ok(Object.isFrozen(shared) && Object.isFrozen(shared[0]));
    assert.throws(() => (shared[0] as string[]).push('tampered'), TypeError);
    const copy = await r.resolve('cache.test', 'TXT');
    copy[0]?.push('mine');
    assert.deepEqual(await r.resolveShared('cache.test', 'TXT'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
    await assert.rejects(r.resolveShared('missing.cache.test', 'TXT'), (err: NodeJS.ErrnoException) => err.code === 'ENOTFOUND');
  });

  it('answer: the frozen cached records, or a negative code without a throw; other failures still throw', async () => {
    const r = createResolver({ servers: [server.address] });
    const before = server.queries;
    const a = await r.answer('cache.test', 'A');
    assert.deepEqual(a, { records: ['192.0.2.1'] });
    const again = await r.answer('CACHE.test', 'A');
    assert.ok('records' in a && 'records' in again && again.records === a.records, 'the same cached answer, not a copy');
    assert.ok('records' in a && Object.isFrozen(a.records));
    assert.deepEqual(await r.resolve('cache.test', 'A'), ['192.0.2.1'], 'resolve shares the cache entry');
    // NODATA (the name exists, no AAAA) and NXDOMAIN: codes, cached like resolve's errors.
    assert.deepEqual(await r.answer('cache.test', 'AAAA'), { negative: 'ENODATA' });
    assert.deepEqual(await r.answer('missing.cache.test', 'CNAME'), { negative: 'ENOTFOUND' });
    assert.deepEqual(await r.answer('missing.cache.test', 'CNAME'), { negative: 'ENOTFOUND' });
    await assert.rejects(r.resolve('missing.cache.test', 'CNAME'), { code: 'ENOTFOUND' });
    assert.equal(server.queries - before, 3);
    // A failure to get any answer is no answer: thrown, as by resolve.
    const dead = createResolver({ servers: ['127.0.0.1:9'], tries: 1, timeoutMs: 200 });
    await assert.rejects(dead.answer('cache.test', 'SRV'), (err: NodeJS.ErrnoException) => typeof err.code === 'string' && err.code !== 'ENOTFOUND' && err.code !== 'ENODATA');
  });

  it('shares one network query among concurrent identical lookups', async () => {
    const r = createResolver({ servers: [server.address] });
    const before = server.queries;
    const all = await Promise.all(Array.from({ length: 5 }, () => r.resolve('mx.cache.test', 'A')));
    assert.equal(all.length, 5);
    assert.equal(server.queries - before, 1);
  });

  it('caches NXDOMAIN and NODATA briefly and rethrows node:dns error codes', async () => {
    const r = createResolver({ servers: [server.address] });
    const before = server.queries;
    for (let i = 0; i < 3; i++) {
      await assert.rejects(r.resolve('missing.cache.test', 'TXT'), (err: NodeJS.ErrnoException) => {
        assert.ok(err instanceof Error);
        assert.equal(err.code, 'ENOTFOUND');
        assert.equal((err as { hostname?: string }).hostname, 'missing.cache.test');
        return true;
      });
      await assert.rejects(r.resolve('mx.cache.test', 'MX'), { code: 'ENODATA' });
    }
    assert.equal(server.queries - before, 2);
  });

  it('respects record TTLs below the cap', async () => {
    const r = createResolver({ servers: [server.address] });
    const before = server.queries;
    await r.resolve('short.cache.test', 'A');
    await r.resolve('short.cache.test', 'A');
    assert.equal(server.queries - before, 1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await r.resolve('short.cache.test', 'A');
    assert.equal(server.queries - before, 2);
  });

  it('does not cache at all with cacheTtlCapSeconds 0', async () => {
    const r = createResolver({ servers: [server.address], cacheTtlCapSeconds: 0 });
    const before = server.queries;
    await r.resolve('cache.test', 'A');
    await r.resolve('cache.test', 'A');
    await assert.rejects(r.resolve('missing.cache.test', 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(r.resolve('missing.cache.test', 'A'), { code: 'ENOTFOUND' });
    assert.equal(server.queries - before, 4);
  });

  it('never caches SERVFAIL', async () => {
    // A stub server that fails every query, counting them.
    const stub = createSocket('udp4');
    let served = 0;
    stub.on('message', (msg, from) => {
      served++;
      const q = packet.decode(msg);
      const reply = packet.encode({ id: q.id, type: 'response', flags: 2 /* SERVFAIL */, questions: q.questions });
      stub.send(reply, from.port, from.address);
    });
    await new Promise<void>((resolve) => stub.bind(0, '127.0.0.1', resolve));
    try {
      const r = createResolver({ servers: [`127.0.0.1:${stub.address().port}`], tries: 1, timeoutMs: 500 });
      await assert.rejects(r.resolve('x.test', 'A'), { code: 'ESERVFAIL' });
      const afterFirst = served;
      await assert.rejects(r.resolve('x.test', 'A'), { code: 'ESERVFAIL' });
      assert.ok(served > afterFirst, 'second lookup went to the network');
    } finally {
      stub.close();
    }
  });

  it('accepts host, host:port and [v6]:port servers and rejects nonsense', () => {
    assert.doesNotThrow(() => createResolver({ servers: ['127.0.0.1', '127.0.0.1:5353', '[::1]:5353', '::1'] }));
    assert.doesNotThrow(() => createResolver({}));
    assert.throws(() => createResolver({ servers: ['not an address'] }));
  });

  it('works as mailauth resolver: SPF passes, void lookups are recognised', async () => {
    // mailauth declares its resolver as returning string[] | string[][]; MX really gives
    // objects, so the honest `Promise<unknown>` needs this one cast at the call site.
    const r = createResolver({ servers: [server.address] });
    const pass = await spf({ sender: 'a@cache.test', ip: '192.0.2.55', helo: 'mx.cache.test', resolver: toResolveFunction(r) as DNSResolver });
    assert.equal(pass.status.result, 'pass');
    // mailauth tells "no SPF record" from a DNS failure by err.code: this must be 'none', not 'temperror'.
    const none = await spf({ sender: 'a@nothing.cache.test', ip: '192.0.2.55', helo: 'x', resolver: r.resolveFunction as DNSResolver });
    assert.equal(none.status.result, 'none');
  });
});
