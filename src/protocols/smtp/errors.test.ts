import assert from 'node:assert/strict';
import test from 'node:test';
import { conflict, type DomainError, type DomainErrorKind, forbidden, invalid, notFound, ReplyError, throttled, unauthorized } from '../../core/errors.ts';
import { smtpReplyOf } from './errors.ts';

test('SMTP edge: each domain error kind has its reply (the codes these errors always had over SMTP)', () => {
  const rows: Array<[DomainError, number, string]> = [
    [notFound('No such user: a@b.test'), 550, '5.1.1'],
    [conflict('User a@b.test already exists'), 550, '5.1.0'],
    [invalid('Bad mode'), 501, '5.5.4'],
    [forbidden('Not yours'), 550, '5.7.1'],
    [unauthorized('Invalid credentials'), 535, '5.7.8'],
    [throttled('Too many failed authentication attempts'), 454, '4.7.0'],
  ];
  const kinds = new Set<DomainErrorKind>();
  for (const [err, code, enhanced] of rows) {
    kinds.add(err.kind);
    assert.deepEqual(smtpReplyOf(err), { reply: { code, enhanced, text: err.text }, fault: false }, err.kind);
  }
  assert.equal(kinds.size, 6, 'every kind is in the table');
});

test('SMTP edge: a ReplyError is sent as it is; a full disk is 452 4.3.1; anything else 451 4.3.0 and logged', () => {
  const refusal = new ReplyError(550, '5.7.1', 'Message rejected', { status: 403 });
  assert.deepEqual(smtpReplyOf(refusal), { reply: { code: 550, enhanced: '5.7.1', text: 'Message rejected' }, fault: false });
  const full = Object.assign(new Error('disk full'), { code: 'SQLITE_FULL' });
  assert.deepEqual(smtpReplyOf(full), { reply: { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage, please try again later' }, fault: true });
  const bug = smtpReplyOf(new TypeError('x is undefined'));
  assert.deepEqual(bug, { reply: { code: 451, enhanced: '4.3.0', text: 'Internal error, please try again later' }, fault: true });
});

test('SMTP edge: an unreachable store (PostgreSQL down or restarting) is 451 4.3.0 saying so, and logged', () => {
  const rows: Error[] = [
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
    new Error('Connection terminated unexpectedly'),
    new Error('wrapped', { cause: new Error('timeout exceeded when trying to connect') }),
  ];
  for (const err of rows) {
    assert.deepEqual(smtpReplyOf(err), { reply: { code: 451, enhanced: '4.3.0', text: 'The mail store is unavailable, please try again later' }, fault: true }, err.message);
  }
  // A query the store refused is not an outage.
  assert.equal(smtpReplyOf(Object.assign(new Error('syntax error'), { code: '42601' })).reply.text, 'Internal error, please try again later');
});
