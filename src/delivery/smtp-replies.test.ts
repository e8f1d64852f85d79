import assert from 'node:assert/strict';
import test from 'node:test';
import { formatReply } from '../core/reply.ts';
import { describeFailure, type FailureInfo, outcomeOfReply } from './smtp-replies.ts';

const PEER = 'mx.b.test[192.0.2.1]:25';
const smtpError = (fields: Partial<FailureInfo>): FailureInfo => ({ message: 'x', ...fields });

test('a remote reply arrives once: a multi-line reply on one line, its codes taken apart, the status from the reply code', () => {
  const o = outcomeOfReply('550-5.7.1 first line\r\n550 5.7.1 second line', 550);
  assert.deepEqual(o, { status: 'failed', reply: { code: 550, enhanced: '5.7.1', text: 'first line second line' }, code: 550 });
  assert.deepEqual(outcomeOfReply('451 try later', 451), { status: 'deferred', reply: { code: 451, enhanced: null, text: 'try later' }, code: 451 });
  assert.deepEqual(outcomeOfReply(undefined, undefined), { status: 'deferred', reply: { code: null, enhanced: null, text: '' } });
});

test('a connection failure no server answered is a local reply (no server code); a greeting refusal is the server reply', () => {
  assert.deepEqual(describeFailure(smtpError({ code: 'ECONNREFUSED' }), PEER), { code: null, enhanced: '4.4.1', text: `connection refused by ${PEER}` });
  assert.equal(formatReply(describeFailure(smtpError({ code: 'ETIMEDOUT', timeoutType: 'GREETING_TIMEOUT' }), PEER)), `4.4.2 no greeting from ${PEER} in time`);
  assert.deepEqual(describeFailure(smtpError({ code: 'EPROTOCOL', responseCode: 421, response: '421 4.3.2 busy' }), PEER), { code: 421, enhanced: '4.3.2', text: 'busy' });
});
