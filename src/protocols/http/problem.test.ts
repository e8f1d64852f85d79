import assert from 'node:assert/strict';
import test from 'node:test';
import { conflict, forbidden, invalid, notFound, ReplyError, throttled, unauthorized } from '../../core/errors.ts';
import { classify } from './problem.ts';

const LIMIT = 1024;

test('HTTP edge: a domain error kind decides the status', () => {
  const rows: Array<[Error, number]> = [
    [notFound('No message 7'), 404],
    [conflict('User a@b.test already exists'), 409],
    [invalid('Bad duration "soon"'), 400],
    [forbidden('Not yours'), 403],
    [unauthorized('Authentication required'), 401],
    [throttled('Too many failed authentication attempts'), 429],
  ];
  for (const [err, status] of rows) assert.deepEqual(classify(err, LIMIT), { status, detail: err.message }, err.message);
});

test('HTTP edge: a ReplyError has the status its thrower chose, else 400 or 503 by permanence, never one read from the enhanced code', () => {
  assert.equal(classify(new ReplyError(553, '5.7.1', 'From: address rejected', { status: 403 }), LIMIT)?.status, 403);
  assert.equal(classify(new ReplyError(552, '5.3.4', 'Message too big', { status: 413 }), LIMIT)?.status, 413);
  // Before, 5.1.1 became 404, 5.7.x 403 and 5.3.4 413 by guessing; a thrower that means those says so.
  assert.equal(classify(new ReplyError(550, '5.1.1', 'No such user here'), LIMIT)?.status, 400);
  assert.equal(classify(new ReplyError(550, '5.7.1', 'Refused'), LIMIT)?.status, 400);
  assert.equal(classify(new ReplyError(451, '4.3.0', 'try later'), LIMIT)?.status, 503);
  assert.deepEqual(classify(Object.assign(new Error('full'), { code: 'ENOSPC' }), LIMIT), {
    status: 507,
    detail: 'Insufficient system storage, please try again later',
    fault: true,
  });
  assert.equal(classify(new TypeError('bug'), LIMIT), undefined);
});

test('HTTP edge: an unreachable store is 503, whatever layer wrapped the driver error', () => {
  const down = new Error('query failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) });
  assert.deepEqual(classify(down, LIMIT), { status: 503, detail: 'The mail store is unavailable, please try again later', fault: true });
  assert.equal(classify(Object.assign(new Error('the database system is starting up'), { code: '57P03' }), LIMIT)?.status, 503);
  assert.equal(classify(Object.assign(new Error('duplicate key'), { code: '23505' }), LIMIT), undefined);
});
