// Open-Falcon / go-metrics meters on a fake clock: sums, and 1/5/15-minute EWMA rates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/clock.ts';
import { Meter } from '../../src/sender/meter.ts';

function fakeClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    setTimeout: () => ({}),
    clearTimeout: () => undefined,
    advance(ms: number) {
      t += ms;
    },
  };
}

void test('a steady 100 events/s converges on rate 100 for all windows once ticked', () => {
  const clock = fakeClock();
  const m = new Meter(clock);
  for (let s = 0; s < 15 * 60; s++) {
    m.mark(100);
    clock.advance(1000);
  }
  const snap = m.snapshot();
  assert.equal(snap.count, 90_000);
  assert.ok(Math.abs(snap.rate1 - 100) < 1, `rate1 ${snap.rate1}`);
  assert.ok(Math.abs(snap.rate5 - 100) < 1, `rate5 ${snap.rate5}`);
  assert.ok(Math.abs(snap.rate15 - 100) < 1, `rate15 ${snap.rate15}`);
  assert.equal(snap.rateMean, 100);
});

void test('the first tick sets the rate; after a minute idle rate1 decays to e^-1 of it', () => {
  const clock = fakeClock();
  const m = new Meter(clock);
  m.mark(500);
  clock.advance(5000);
  assert.equal(m.snapshot().rate1, 100);
  clock.advance(60_000);
  const snap = m.snapshot();
  // go-metrics: 12 ticks of (1 - alpha) with alpha = 1 - e^(-5/60).
  assert.ok(Math.abs(snap.rate1 - 100 * Math.exp(-1)) < 0.01, `rate1 ${snap.rate1}`);
  assert.ok(snap.rate5 > snap.rate1 && snap.rate15 > snap.rate5);
  assert.equal(snap.count, 500);
});

void test('nothing marked: all zero', () => {
  const clock = fakeClock();
  const m = new Meter(clock);
  clock.advance(3_600_000);
  assert.deepEqual(m.snapshot(), { count: 0, rate1: 0, rate5: 0, rate15: 0, rateMean: 0 });
});
