import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { createPrivateCa, issueCertificate } from './private-ca.ts';

const ca = createPrivateCa('twoway test CA');
const server = issueCertificate(ca, ['twm.b.test', 'b.test'], ['127.0.0.1', '::1']);

test('the CA is a CA: self-issued, basicConstraints cA, valid now', () => {
  const x = new X509Certificate(ca.cert);
  assert.equal(x.ca, true);
  assert.ok(x.checkIssued(x));
  assert.ok(x.verify(x.publicKey));
  assert.match(x.subject, /CN=twoway test CA/);
  assert.ok(new Date(x.validFrom) <= new Date() && new Date() < new Date(x.validTo));
  assert.equal(createPrivateKey(ca.key).asymmetricKeyType, 'rsa');
});

test('a server certificate verifies against the CA and names its hosts and addresses', () => {
  const caX = new X509Certificate(ca.cert);
  const x = new X509Certificate(server.cert);
  assert.equal(x.ca, false);
  assert.ok(x.checkIssued(caX));
  assert.ok(x.verify(caX.publicKey));
  assert.equal(x.checkHost('twm.b.test'), 'twm.b.test');
  assert.equal(x.checkHost('b.test'), 'b.test');
  assert.equal(x.checkHost('other.b.test'), undefined);
  assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(x.checkIP('::1'), '::1');
  assert.equal(x.checkIP('127.0.0.2'), undefined);
  assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  assert.ok(x.checkPrivateKey(createPrivateKey(server.key)));
  // Usable as a TLS server identity as-is.
  assert.doesNotThrow(() => createSecureContext({ cert: server.cert, key: server.key }));
});

test('a certificate from another CA does not verify', () => {
  const other = createPrivateCa('someone else');
  const x = new X509Certificate(issueCertificate(other, ['twm.b.test']).cert);
  const caX = new X509Certificate(ca.cert);
  assert.equal(x.checkIssued(caX), false);
  assert.equal(x.verify(caX.publicKey), false);
});

test('issuing without names or addresses is refused', () => {
  assert.throws(() => issueCertificate(ca, []), /no names/);
});
