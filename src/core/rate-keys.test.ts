import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clientRateKey, signerRateKey } from './rate-keys.ts';

describe('rate-limit keys (docs/protocol.md 12.7)', () => {
  it('counts IPv4 by address, IPv4-mapped IPv6 as IPv4', () => {
    assert.equal(clientRateKey('192.0.2.1'), '192.0.2.1');
    assert.equal(clientRateKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.notEqual(clientRateKey('192.0.2.1'), clientRateKey('192.0.2.2'));
  });

  it('counts IPv6 by /64, whatever the spelling', () => {
    const k = clientRateKey('2001:db8:1:2::1');
    assert.equal(k, '2001:db8:1:2::/64');
    for (const same of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:1', '2001:DB8:1:2::abcd', '2001:db8:1:2::1%eth0']) {
      assert.equal(clientRateKey(same), k, same);
    }
    assert.notEqual(clientRateKey('2001:db8:1:3::1'), k);
    assert.equal(clientRateKey('::1'), '0:0:0:0::/64');
    assert.equal(clientRateKey('fe80::1:2:3:4'), 'fe80:0:0:0::/64');
  });

  it('counts signer domains by organizational domain (Public Suffix List)', () => {
    assert.equal(signerRateKey('a.b.example.com'), 'example.com');
    assert.equal(signerRateKey('x1.evil.example.co.uk'), 'example.co.uk');
    assert.equal(signerRateKey('EXAMPLE.org.'), 'example.org');
    // A private suffix (PSL private section): each customer is its own organization.
    assert.notEqual(signerRateKey('alice.github.io'), signerRateKey('bob.github.io'));
  });
});
