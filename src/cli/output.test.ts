import assert from 'node:assert/strict';
import test from 'node:test';
import { conflict, forbidden, invalid, notFound, ReplyError, throttled, unauthorized } from '../core/errors.ts';
import { describeError, EXIT } from './output.ts';

test('CLI edge: a domain error kind decides the exit code', () => {
  const rows: Array<[Error, number]> = [
    [notFound('No such user: a@b.test'), EXIT.notFound],
    [conflict('User a@b.test already exists'), EXIT.conflict],
    [invalid('Unknown mode "x"'), EXIT.usage],
    [forbidden('Not yours'), EXIT.auth],
    [unauthorized('Invalid credentials'), EXIT.auth],
    [throttled('Too many failed authentication attempts'), EXIT.auth],
  ];
  for (const [err, code] of rows) assert.deepEqual(describeError(err), { message: err.message, code }, err.message);
});

test('CLI edge: a refusal of the input as given is exit 2, a temporary one exit 1', () => {
  assert.deepEqual(describeError(new ReplyError(553, '5.7.1', 'From: address rejected', { status: 403 })), { message: 'From: address rejected', code: EXIT.usage });
  assert.deepEqual(describeError(new ReplyError(501, '5.1.3', 'Bad address syntax')), { message: 'Bad address syntax', code: EXIT.usage });
  assert.deepEqual(describeError(new ReplyError(452, '4.3.1', 'Insufficient system storage')), { message: 'Insufficient system storage', code: EXIT.failure });
});
