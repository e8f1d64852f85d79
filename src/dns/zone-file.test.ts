import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import { loadZoneFile, parseZoneFile, ZoneFileError } from './zone-file.ts';
import { startDnsServer } from './embedded-server.ts';
import type { DnsRecord } from './types.ts';

const KEY_A = 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'.repeat(4);
const KEY_B = 'IDAQAB';

const SAMPLE = `; example zone
$ORIGIN example.test.
$TTL 1h
@   IN  SOA ns1 hostmaster (
        2024010101 ; serial
        3600       ; refresh
        15m        ; retry
        1w         ; expire
        300 )      ; minimum
    IN  NS  ns1
    IN  MX  10 mx1
    IN  MX  20 mx2.example.test.
        TXT "v=spf1 mx -all"
ns1     A   192.0.2.1
mx1 600 IN A 192.0.2.2
mx1 IN 700 AAAA 2001:db8::2
www     CNAME @
sel._domainkey  TXT ( "v=DKIM1; k=rsa; "
                      "p=${KEY_A}"
                      "${KEY_B}" )
quoted  TXT "say \\"hi\\"; not a comment" \\065\\066 plain
_twm._tcp SRV 0 5 8443 mx1
`;

describe('parseZoneFile', () => {
  const zone = parseZoneFile(SAMPLE);
  const find = (name: string, type: string): DnsRecord[] => zone.records.filter((r) => r.name === name && r.type === type);

  it('takes the origin from $ORIGIN', () => {
    assert.equal(zone.origin, 'example.test');
  });

  it('parses a multi-line SOA with comments and TTL units', () => {
    assert.deepEqual(find('example.test', 'SOA'), [
      {
        name: 'example.test',
        type: 'SOA',
        ttl: 3600,
        data: {
          mname: 'ns1.example.test',
          rname: 'hostmaster.example.test',
          serial: 2024010101,
          refresh: 3600,
          retry: 900,
          expire: 604800,
          minimum: 300,
        },
      },
    ]);
  });

  it('inherits the owner on lines that begin with a blank', () => {
    assert.equal(find('example.test', 'NS').length, 1);
    assert.deepEqual(
      find('example.test', 'MX').map((r) => r.data),
      [
        { preference: 10, exchange: 'mx1.example.test' },
        { preference: 20, exchange: 'mx2.example.test' },
      ],
    );
    assert.deepEqual(find('example.test', 'TXT')[0]?.data, ['v=spf1 mx -all']);
  });

  it('accepts TTL and class in either order, and applies $TTL otherwise', () => {
    assert.equal(find('mx1.example.test', 'A')[0]?.ttl, 600);
    assert.equal(find('mx1.example.test', 'AAAA')[0]?.ttl, 700);
    assert.equal(find('ns1.example.test', 'A')[0]?.ttl, 3600);
  });

  it('resolves @ and relative names in data', () => {
    assert.equal(find('www.example.test', 'CNAME')[0]?.data, 'example.test');
    assert.deepEqual(find('_twm._tcp.example.test', 'SRV')[0]?.data, {
      priority: 0,
      weight: 5,
      port: 8443,
      target: 'mx1.example.test',
    });
    const nested = parseZoneFile('$ORIGIN a.test.\n$ORIGIN sub\nx PTR y\n@ PTR z.other.\n');
    assert.equal(nested.origin, 'a.test');
    assert.deepEqual(
      nested.records.map((r) => [r.name, r.data]),
      [
        ['x.sub.a.test', 'y.sub.a.test'],
        ['sub.a.test', 'z.other'],
      ],
    );
  });

  it('keeps parenthesised TXT strings and decodes escapes', () => {
    assert.deepEqual(find('sel._domainkey.example.test', 'TXT')[0]?.data, ['v=DKIM1; k=rsa; ', `p=${KEY_A}`, KEY_B]);
    assert.deepEqual(find('quoted.example.test', 'TXT')[0]?.data, ['say "hi"; not a comment', 'AB', 'plain']);
  });

  it('uses the last explicit TTL when there is no $TTL (RFC 1035)', () => {
    const z = parseZoneFile('a 120 A 192.0.2.1\nb A 192.0.2.2\n', { origin: 'x.test.' });
    assert.deepEqual(z.records.map((r) => r.ttl), [120, 120]);
    assert.equal(z.origin, 'x.test');
    const none = parseZoneFile('a A 192.0.2.1', { origin: 'x.test' });
    assert.equal(none.records[0]?.ttl, undefined);
  });

  it('takes the origin from the SOA owner when nothing else gives it', () => {
    const z = parseZoneFile('other.test. 60 SOA ns.other.test. h.other.test. 1 2 3 4 5\n');
    assert.equal(z.origin, 'other.test');
  });
});

describe('parseZoneFile errors name the line and what was expected', () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ['bad IPv4', '$ORIGIN a.test.\nok A 192.0.2.1\nbad A 300.1.1.1\n', 3, /expected an IPv4 address, got '300\.1\.1\.1'/],
    ['unknown type', '$ORIGIN a.test.\n\nx 60 IN HINFO a b\n', 3, /expected a record type .*got 'HINFO'/],
    ['missing MX exchange', '$ORIGIN a.test.\n@ MX 10\n', 2, /expected an MX exchange name, got end of record/],
    ['bad MX preference', '$ORIGIN a.test.\n@ MX ten mx\n', 2, /expected an integer from 0 to 65535, got 'ten'/],
    ['trailing junk', '$ORIGIN a.test.\n@ CNAME b c\n', 2, /expected end of record, got 'c'/],
    ['unclosed paren', '$ORIGIN a.test.\n@ SOA ns h (\n 1 2 3 4 5\n', 2, /'\(' is never closed/],
    ['unterminated quote', '$ORIGIN a.test.\n\n@ TXT "abc\n', 3, /unterminated quoted string/],
    ['relative name without origin', 'www A 192.0.2.1\n', 1, /expected \$ORIGIN before the relative name 'www'/],
    ['blank owner first', '  A 192.0.2.1\n', 1, /expected an owner name/],
    ['class CH', '$ORIGIN a.test.\n@ CH A 192.0.2.1\n', 2, /only class IN is supported/],
    ['bad TTL', '$ORIGIN a.test.\n$TTL 1y\n', 2, /expected a TTL .*got '1y'/],
    ['$INCLUDE', '$INCLUDE other.zone\n', 1, /unsupported directive '\$INCLUDE'/],
    ['outside the zone', '$ORIGIN a.test.\n@ A 192.0.2.1\nb.other. A 192.0.2.1\n', 3, /expected a name inside 'a\.test', got 'b\.other'/],
  ];
  for (const [label, text, line, message] of cases) {
    it(label, () => {
      assert.throws(
        () => parseZoneFile(text),
        (err: unknown) => {
          assert.ok(err instanceof ZoneFileError, String(err));
          assert.equal(err.line, line, err.message);
          assert.match(err.message, new RegExp(`^line ${line}: `));
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe('loadZoneFile', () => {
  let dir: string | undefined;
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads a file that the embedded server then serves', async () => {
    dir = await mkdtemp(join(tmpdir(), 'twoway-zone-'));
    const path = join(dir, 'example.test.zone');
    await writeFile(path, SAMPLE);
    const zone = await loadZoneFile(path);
    const server = await startDnsServer({ zones: [zone] });
    try {
      const r = new Resolver({ timeout: 2000, tries: 1 });
      r.setServers([server.address]);
      const [dkim] = await r.resolveTxt('sel._domainkey.example.test');
      assert.equal(dkim?.join(''), `v=DKIM1; k=rsa; p=${KEY_A}${KEY_B}`);
      assert.deepEqual(await r.resolveCname('www.example.test'), ['example.test']);
      assert.deepEqual(await r.resolve6('mx1.example.test', { ttl: true }), [{ address: '2001:db8::2', ttl: 700 }]);
    } finally {
      await server.close();
    }
  });

  it('names the file and line in errors', async () => {
    dir ??= await mkdtemp(join(tmpdir(), 'twoway-zone-'));
    const path = join(dir, 'broken.zone');
    await writeFile(path, '$ORIGIN b.test.\n@ A nope\n');
    await assert.rejects(loadZoneFile(path), (err: unknown) => {
      assert.ok(err instanceof ZoneFileError);
      assert.equal(err.line, 2);
      assert.ok(err.message.includes(path), err.message);
      return true;
    });
  });
});
