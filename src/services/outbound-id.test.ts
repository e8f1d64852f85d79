import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queueMessageId } from './outbound.ts';

test('queue message ids: 28 hex digits, the time first, so that later ids sort after earlier ones', () => {
  const at = new Date('2026-12-05T08:00:00.123Z');
  const a = queueMessageId(at);
  const b = queueMessageId(at);
  assert.match(a, /^[0-9a-f]{28}$/, 'no leading "-" a command line would take for an option');
  assert.notEqual(a, b);
  assert.equal(a.slice(0, 12), b.slice(0, 12));
  assert.ok(queueMessageId(new Date(at.getTime() + 1)) > a);
  assert.ok(queueMessageId(new Date(at.getTime() + 86_400_000)) > queueMessageId(new Date(at.getTime() + 1)));
});
