import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cardHref, hrefPath, parseDavPath } from './paths.ts';

test('parseDavPath: the URL space', () => {
  assert.deepEqual(parseDavPath('/dav'), { ok: true, path: { kind: 'root' } });
  assert.deepEqual(parseDavPath('/dav/'), { ok: true, path: { kind: 'root' } });
  assert.deepEqual(parseDavPath('/dav/principals/Alice@Example.test/'), { ok: true, path: { kind: 'principal', user: 'alice@example.test' } });
  assert.deepEqual(parseDavPath('/dav/addressbooks/a%40b.test'), { ok: true, path: { kind: 'home', user: 'a@b.test' } });
  assert.deepEqual(parseDavPath('/dav/addressbooks/a@b.test/default'), { ok: true, path: { kind: 'book', user: 'a@b.test', book: 'default' } });
  assert.deepEqual(parseDavPath('/dav/addressbooks/a@b.test/default/Card%20One.vcf'), {
    ok: true,
    path: { kind: 'card', user: 'a@b.test', book: 'default', card: 'Card One.vcf' },
  });
  assert.equal(parseDavPath('/dav/addressbooks/a@b.test/default/x/y').ok, false);
  assert.equal(parseDavPath('/dav/other').ok, false);
  assert.equal(parseDavPath('/api/x').ok, false);
});

test('parseDavPath refuses traversal in every spelling with 400', () => {
  for (const p of [
    '/dav/addressbooks/a@b.test/../b@b.test/default/',
    '/dav/addressbooks/a@b.test/default/..',
    '/dav/addressbooks/a@b.test/%2e%2e/b@b.test/',
    '/dav/addressbooks/a@b.test/%2E%2E',
    '/dav/addressbooks/a@b.test/./default/',
    '/dav/addressbooks//default/',
    '/dav//addressbooks/a@b.test/',
    '/dav/addressbooks/a@b.test/default/x%2F..%2Fy.vcf',
    '/dav/addressbooks/a@b.test/default/x%5C..',
    '/dav/addressbooks/a@b.test/default/x%00.vcf',
    '/dav/addressbooks/a@b.test/default/%zz',
  ]) {
    const r = parseDavPath(p);
    assert.equal(r.ok, false, p);
    assert.equal(!r.ok && r.status, 400, p);
  }
});

test('hrefs are encoded on the way out and read back from paths or URLs', () => {
  const h = cardHref('a@b.test', 'default', 'Card One/ü.vcf');
  assert.equal(h, '/dav/addressbooks/a@b.test/default/Card%20One%2F%C3%BC.vcf');
  assert.equal(hrefPath(`https://mail.example:8443${h}?x=1`), h);
  assert.equal(hrefPath(h), h);
  assert.equal(hrefPath('mailto:x'), undefined);
  // A decoded "/" in a name is refused as a path, so such names round-trip only through the encoded form.
  assert.equal(parseDavPath(h).ok, false);
});
