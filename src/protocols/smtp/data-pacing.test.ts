/**
 * dataPacer: a message of a few KB flows through without a pause (its end of
 * data is handled in the turn it arrived), a burst pauses the stream after
 * each DATA_BYTES_PER_TURN and resumes it in the next turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DATA_BYTES_PER_TURN, dataPacer } from './data-pacing.ts';

test('a 10 KB message is read without a pause: its end comes before the next turn', async () => {
  const stream = new PassThrough();
  const pace = dataPacer(stream);
  const events: string[] = [];
  stream.on('data', (chunk: Buffer) => {
    pace(chunk.length);
    events.push(`data paused=${stream.isPaused()}`);
  });
  stream.on('end', () => events.push('end'));
  stream.end(Buffer.alloc(10 * 1024, 'x'));
  // Before any immediate runs: the end is emitted from process.nextTick, not after a resume in a later turn.
  await new Promise((resolve) => process.nextTick(resolve));
  await new Promise((resolve) => process.nextTick(resolve));
  assert.deepEqual(events, ['data paused=false', 'end']);
});

test('a burst pauses after each DATA_BYTES_PER_TURN and resumes in the next turn', async () => {
  const calls: string[] = [];
  const stream = { pause: () => calls.push('pause'), resume: () => calls.push('resume') };
  const pace = dataPacer(stream);
  const half = DATA_BYTES_PER_TURN / 2;
  pace(half);
  assert.deepEqual(calls, []);
  pace(half);
  assert.deepEqual(calls, ['pause'], 'paused once DATA_BYTES_PER_TURN were read');
  await nextTurn();
  assert.deepEqual(calls, ['pause', 'resume'], 'resumed in the next turn');
  // The count starts again after a pause: one 64 KiB read pauses at once.
  pace(DATA_BYTES_PER_TURN);
  assert.deepEqual(calls, ['pause', 'resume', 'pause']);
  await nextTurn();
  assert.deepEqual(calls, ['pause', 'resume', 'pause', 'resume']);
});
