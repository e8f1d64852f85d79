import assert from 'node:assert/strict';
import test from 'node:test';
import { SelectedMailbox } from './selected.ts';
import type { MessageMeta } from './hooks.ts';

// UIDs with gaps, as after expunges: sequence numbers 1..6.
const uids = [2, 3, 7, 8, 9, 20];
const box = () =>
  new SelectedMailbox(
    { id: 1, name: 'INBOX', specialUse: null, subscribed: true, uidValidity: 1, uidNext: 21, highestModseq: 1 },
    false,
    uids.map((uid): MessageMeta => ({ id: 100 + uid, uid, flags: [], modseq: 1, size: 1, internalDate: new Date(0) })),
  );
const seqUids = (r: Array<{ seq: number; m: MessageMeta }>) => r.map((x) => `${x.seq}:${x.m.uid}`).join(' ');

test('resolve: UID sets, in mailbox order, each message once, gaps and * handled', () => {
  const b = box();
  assert.equal(seqUids(b.resolve('7', true)), '3:7');
  assert.equal(seqUids(b.resolve('4', true)), '');
  assert.equal(seqUids(b.resolve('1:3', true)), '1:2 2:3');
  assert.equal(seqUids(b.resolve('9,2:8,8:7', true)), '1:2 2:3 3:7 4:8 5:9');
  assert.equal(seqUids(b.resolve('10:*', true)), '6:20');
  assert.equal(seqUids(b.resolve('*:10', true)), '6:20');
  assert.equal(seqUids(b.resolve('21:30', true)), '');
  // `n:*` with n above the largest UID still names the last message (RFC 9051 6.4.8).
  assert.equal(seqUids(b.resolve('100:*', true)), '6:20');
  assert.equal(seqUids(b.resolve('1:4294967295', true)).split(' ').length, 6);
});

test('resolve: sequence sets, in order and once; beyond the last message is refused', () => {
  const b = box();
  assert.equal(seqUids(b.resolve('2', false)), '2:3');
  assert.equal(seqUids(b.resolve('5:*,1,2:3,3', false)), '1:2 2:3 3:7 5:9 6:20');
  assert.throws(() => b.resolve('7', false), /beyond/);
  const empty = new SelectedMailbox(b.state, false, []);
  assert.equal(seqUids(empty.resolve('1:*', true)), '');
  assert.equal(seqUids(empty.resolve('*', false)), '');
});
