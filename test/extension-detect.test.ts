/**
 * The extension's sign-up detection (extension/src/detect.js), a pure module:
 * forms described as the content script describes them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getDomain } from 'tldts';
import { baseAddress, classifyForm, readDeclaration } from '../extension/src/detect.js';

const ME = ['ann@example.test'];
const email = (value: string, name = 'email', type = 'email') => ({ type, name, value });
const password = (autocomplete = 'new-password') => ({ type: 'password', name: 'password', autocomplete, value: 'x' });

test('subaddresses and case: local+tag@domain is the user', () => {
  assert.equal(baseAddress('Ann+Shop@Example.TEST'), 'ann@example.test');
  assert.equal(baseAddress('not an address'), null);
  assert.deepEqual(classifyForm({ fields: [email('ann+shop@example.test'), password()], hints: 'Create account' }, ME), { kind: 'signup', address: 'ann+shop@example.test' });
  assert.equal(classifyForm({ fields: [email('bob@example.test'), password()], hints: 'Create account' }, ME), null, 'someone else');
  assert.equal(classifyForm({ fields: [email('ann@other.test'), password()] }, ME), null, 'another domain');
});

test('several email fields: the one that is the user; a text field named username; hidden fields ignored', () => {
  const refer = { fields: [email('friend@other.test', 'friend_email'), email('ann@example.test', 'your_email')], hints: 'Join' };
  assert.deepEqual(classifyForm(refer, ME), { kind: 'signup', address: 'ann@example.test' });
  const confirm = { fields: [email('ann@example.test'), email('ann@example.test', 'email_confirm'), password(), password()] };
  assert.equal(classifyForm(confirm, ME)?.kind, 'signup');
  assert.equal(classifyForm({ fields: [{ type: 'text', name: 'username', value: 'ann@example.test' }, password()] }, ME)?.kind, 'signup');
  assert.equal(classifyForm({ fields: [{ type: 'hidden', name: 'email', value: 'ann@example.test' }], hints: 'Sign up' }, ME), null);
});

test('a sign-in is not a sign-up; a password-reset form and an email-only form are', () => {
  assert.equal(classifyForm({ fields: [email('ann@example.test'), password('current-password')], hints: 'Sign in' }, ME), null);
  assert.equal(classifyForm({ fields: [email('ann@example.test')], hints: '/login Log in' }, ME), null);
  assert.deepEqual(classifyForm({ fields: [email('ann@example.test')], hints: '/password/reset Forgot your password? Send reset link' }, ME), { kind: 'reset', address: 'ann@example.test' });
  assert.equal(classifyForm({ fields: [email('ann@example.test')], hints: 'Subscribe to our newsletter' }, ME)?.kind, 'signup');
  assert.equal(classifyForm({ fields: [email('ann@example.test')], hints: '' }, ME)?.kind, 'email-only');
});

test('a form submitted by script is described the same way (detection does not depend on the event)', () => {
  // The content script describes the form on submit, requestSubmit() or a click on its button; the description is all that counts.
  const form = { fields: [email('ann+news@example.test', 'e-mail', 'text'), password()], hints: 'button Register' };
  assert.deepEqual(classifyForm(form, ME), { kind: 'signup', address: 'ann+news@example.test' });
});

test('the site declaration: one domain, not a public suffix, not a list; the site itself is no declaration', () => {
  const reg = (d: string) => getDomain(d, { allowPrivateDomains: true });
  assert.deepEqual(readDeclaration([], 'shop.test', reg), { ok: true, from: null });
  assert.deepEqual(readDeclaration(['Mailer.Test.'], 'shop.test', reg), { ok: true, from: 'mailer.test' });
  assert.deepEqual(readDeclaration(['mail.shop.test'], 'shop.test', reg), { ok: true, from: null });
  assert.deepEqual(readDeclaration(['mailer.test', 'mailer.test'], 'shop.test', reg), { ok: true, from: 'mailer.test' });
  for (const bad of [['gmail.com, mailer.test'], ['gmail.com mailer.test'], ['co.uk'], ['com'], [''], ['<script>'], ['a.test', 'b.test'], ['github.io']]) {
    const r = readDeclaration(bad, 'shop.test', reg);
    assert.equal(r.ok, false, JSON.stringify(bad));
  }
});
