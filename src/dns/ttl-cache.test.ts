import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TtlCache } from './ttl-cache.ts';

describe('TtlCache', () => {
  it('expires entries after their TTL', () => {
    let now = 1_000;
    const cache = new TtlCache<string>(10, () => now);
    cache.set('k', 'v', 5);
    now += 4_999;
    assert.equal(cache.get('k'), 'v');
    now += 1;
    assert.equal(cache.get('k'), undefined);
    assert.equal(cache.size, 0);
  });

  it('stores nothing for a TTL of zero', () => {
    const cache = new TtlCache<string>(10);
    cache.set('k', 'v', 0);
    assert.equal(cache.get('k'), undefined);
  });

  it('evicts the least recently used entry when full', () => {
    const cache = new TtlCache<number>(2);
    cache.set('a', 1, 60);
    cache.set('b', 2, 60);
    cache.get('a'); // a is now more recent than b
    cache.set('c', 3, 60);
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a'), 1);
    assert.equal(cache.get('c'), 3);
    assert.equal(cache.size, 2);
  });
});
