// The shared retry and concurrency pieces: backoff, jitter, the interruptible sleep, mapLimited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { backoffMs, withJitter } from '../src/backoff.ts';
import { settledWithin, sleep, systemClock } from '../src/clock.ts';
import { mapLimited } from '../src/concurrency.ts';

test('backoff doubles from the minimum on each retry and stops at the maximum', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((r) => backoffMs(r, 100, 1000)), [100, 200, 400, 800, 1000]);
  assert.equal(backoffMs(-1, 100, 1000), 100);
  assert.equal(backoffMs(10_000, 1, 3_600_000), 3_600_000);
});

test('jitter keeps 50 to 100 % of the delay', () => {
  assert.equal(withJitter(1000, () => 0), 500);
  assert.equal(withJitter(1000, () => 0.999_999), 1000);
});

test('sleep ends early when its signal aborts, and leaves no listener behind', async () => {
  const stop = new AbortController();
  const slept = sleep(systemClock, 3_600_000, stop.signal);
  assert.equal(getEventListeners(stop.signal, 'abort').length, 1);
  stop.abort();
  await slept;
  assert.equal(getEventListeners(stop.signal, 'abort').length, 0);
  await sleep(systemClock, 1, stop.signal);
  const live = new AbortController();
  await sleep(systemClock, 1, live.signal);
  assert.equal(getEventListeners(live.signal, 'abort').length, 0, 'a sleep that ran out removes its listener');
});

test('settledWithin returns when the promise settles, rejected ones included', async () => {
  await settledWithin(systemClock, Promise.reject(new Error('closed badly')), 3_600_000);
  let timeUp = false;
  await settledWithin(systemClock, new Promise(() => undefined), 1).then(() => (timeUp = true));
  assert.equal(timeUp, true);
});

test('mapLimited keeps item order and never runs more than the limit at once', async () => {
  let running = 0;
  let most = 0;
  const out = await mapLimited([5, 1, 4, 2, 3], 2, async (n) => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setImmediate(resolve, n));
    running--;
    return n * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(most, 2);
  assert.deepEqual(await mapLimited([], 4, async () => 1), []);
});
