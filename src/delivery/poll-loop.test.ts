/**
 * The poll loop's kicks: a kick while a step runs makes one more step, even
 * when it lands after the loop's last check of it (between the last step's
 * end and the loop letting go). The interval is a minute, so any step in the
 * test was started by a kick.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPollLoop } from './poll-loop.ts';

test('a kick in the moment after the last step ends is not lost', async () => {
  // The kick lands that many microtasks after the step's end: one of them falls between the
  // loop's last look at its flag and the loop letting go (a delivery's end kicking the worker).
  for (let depth = 0; depth < 8; depth++) {
    let steps = 0;
    let kickAfterStep = false;
    const loop = startPollLoop(
      async () => {
        steps++;
        if (kickAfterStep) {
          kickAfterStep = false;
          let later = Promise.resolve();
          for (let i = 0; i < depth; i++) later = later.then(() => undefined);
          void later.then(() => loop.kick());
        }
        return false;
      },
      { intervalMs: 60_000 },
    );
    await loop.idle();
    assert.equal(steps, 1, 'the first step, at start');
    kickAfterStep = true;
    loop.kick();
    for (let i = 0; i < 50 && steps < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(steps, 3, `the kicked step, then the step for the kick made ${depth} microtasks after it ended`);
    await loop.stop();
  }
});

test('kicks during a step make one more step, not one each', async () => {
  let steps = 0;
  let release: () => void = () => {};
  const loop = startPollLoop(
    async () => {
      steps++;
      if (steps === 2) await new Promise<void>((r) => (release = r));
      return false;
    },
    { intervalMs: 60_000 },
  );
  await loop.idle();
  loop.kick();
  loop.kick();
  loop.kick();
  release();
  await loop.idle();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await loop.idle();
  assert.equal(steps, 3);
  await loop.stop();
});
