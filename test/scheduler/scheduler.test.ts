// The scheduler on a fake clock: runs land on the wall-clock grid plus the host/job phase with an
// exact period, a run still going makes the next tick skip (counted, logged once per burst),
// reconcile keeps unchanged jobs' schedule and runs, and lateness is measured.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/log/logger.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { jobPhaseMs, nextAlignedRun } from '../../src/job-timing.ts';
import type { JobSpec } from '../../src/scheduler/types.ts';
import { captureLogger } from '../helpers/capture-log.ts';
import { FakeClock, settle } from '../helpers/clocks.ts';

const T0 = 1_700_000_003_217; // deliberately off any grid

function recorder(clock: FakeClock) {
  const runs: Array<{ plannedAt: number; startedAt: number }> = [];
  const run = async ({ plannedAt }: { plannedAt: number }) => {
    runs.push({ plannedAt, startedAt: clock.now() });
  };
  return { runs, run };
}

/** A run that stays in progress until the test releases it. */
function gate() {
  const releases: Array<() => void> = [];
  let started = 0;
  const run = () =>
    new Promise<void>((resolve) => {
      started++;
      releases.push(resolve);
    });
  return {
    run,
    started: () => started,
    releaseAll: () => releases.splice(0).forEach((r) => r()),
  };
}

describe('phase', () => {
  test('is stable, in range, and differs across hosts and jobs', () => {
    const a = jobPhaseMs('web-1', 'system', 10_000);
    assert.equal(jobPhaseMs('web-1', 'system', 10_000), a);
    assert.ok(a >= 0 && a < 10_000);
    const phases = new Set<number>();
    for (let h = 0; h < 50; h++) phases.add(jobPhaseMs(`host-${h}`, 'system', 10_000));
    assert.ok(phases.size >= 45, `50 hosts should rarely share a millisecond phase, got ${phases.size} distinct`);
  });

  test('spreads a fleet evenly over the interval', () => {
    const buckets = new Array<number>(10).fill(0);
    for (let h = 0; h < 2000; h++) {
      const p = jobPhaseMs(`host-${h}.dc1`, 'checks:ns', 10_000);
      buckets[Math.floor(p / 1000)]!++;
    }
    for (const [i, n] of buckets.entries()) assert.ok(n > 140 && n < 260, `second ${i} holds ${n} of 2000 hosts`);
  });

  test('nextAlignedRun is strictly after and on the grid', () => {
    assert.equal(nextAlignedRun(1000, 1000, 0), 2000);
    assert.equal(nextAlignedRun(1001, 1000, 250), 1250);
    assert.equal(nextAlignedRun(1250, 1000, 250), 2250);
    assert.equal(nextAlignedRun(1_700_000_003_217, 10_000, 4_321), 1_700_000_004_321);
  });
});

describe('Scheduler on a fake clock', () => {
  test('runs on the wall-clock grid plus the job phase, with an exact period', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'web-1', logger: silentLogger(), timerSlackMs: 0, clock });
    const r = recorder(clock);
    s.reconcile('collectors', [{ key: 'system', namespace: '*', intervalSec: 10, run: r.run }]);
    await s.start();
    const phase = jobPhaseMs('web-1', 'collectors\0system', 10_000);
    assert.equal(s.describeJob('collectors', 'system')?.phaseMs, phase);
    await clock.advanceSettled(60_000);
    assert.equal(r.runs.length, 6);
    assert.equal(r.runs[0]!.plannedAt, nextAlignedRun(T0, 10_000, phase));
    for (const [i, run] of r.runs.entries()) {
      assert.equal(((run.plannedAt % 10_000) + 10_000) % 10_000, phase, 'on the grid');
      assert.equal(run.startedAt, run.plannedAt, 'started when planned');
      if (i > 0) assert.equal(run.plannedAt - r.runs[i - 1]!.plannedAt, 10_000, 'exact period');
    }
    await s.stop();
  });

  test('timer slack: runs due within the slack share one wake-up, late by at most the slack', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), clock, timerSlackMs: 5 });
    const runs: Array<{ key: string; plannedAt: number; startedAt: number }> = [];
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    s.reconcile(
      'o',
      keys.map((key) => ({ key, namespace: 'n', intervalSec: 1, run: async ({ plannedAt }) => void runs.push({ key, plannedAt, startedAt: clock.now() }) })),
    );
    await s.start();
    let wakes = 0;
    const setTimeout = clock.setTimeout.bind(clock);
    clock.setTimeout = (fn, ms) => setTimeout(() => (wakes++, fn()), ms);
    await clock.advanceSettled(5_000);
    for (const key of keys) {
      const mine = runs.filter((r) => r.key === key);
      const phase = s.describeJob('o', key)!.phaseMs;
      assert.ok(mine.length >= 4 && mine.length <= 5, `${key} ran ${mine.length} times in 5 s`);
      for (const [i, r] of mine.entries()) {
        assert.equal(((r.plannedAt % 1000) + 1000) % 1000, phase, 'on its grid');
        if (i > 0) assert.equal(r.plannedAt - mine[i - 1]!.plannedAt, 1000, 'exact period');
        const late = r.startedAt - r.plannedAt;
        assert.ok(late >= 0 && late <= 5, `late by ${late} ms`);
      }
    }
    // 200 phases over 1000 ms share wake-ups: far fewer than one per run.
    assert.ok(wakes < runs.length / 2, `${wakes} wake-ups for ${runs.length} runs`);
    await s.stop();
  });

  test('two hosts run the same job at different, stable moments', async () => {
    const planned: Record<string, number[]> = {};
    for (const host of ['web-1', 'web-2']) {
      const clock = new FakeClock(T0);
      const s = new Scheduler({ hostname: host, logger: silentLogger(), timerSlackMs: 0, clock });
      const r = recorder(clock);
      s.reconcile('collectors', [{ key: 'system', namespace: '*', intervalSec: 10, run: r.run }]);
      await s.start();
      await clock.advanceSettled(30_000);
      await s.stop();
      planned[host] = r.runs.map((x) => x.plannedAt % 10_000);
    }
    assert.equal(new Set(planned['web-1']).size, 1);
    assert.equal(new Set(planned['web-2']).size, 1);
    assert.notEqual(planned['web-1']![0], planned['web-2']![0]);
  });

  test('a run still going skips the next ticks, counts them, and logs once per burst', async () => {
    const clock = new FakeClock(T0);
    const cap = captureLogger();
    const s = new Scheduler({ hostname: 'h', logger: cap.logger, timerSlackMs: 0, clock });
    const g = gate();
    s.reconcile('plugins', [{ key: 'slow', namespace: 'ns1', intervalSec: 1, run: g.run }]);
    await s.start();
    await clock.advanceSettled(4_000); // ticks at ~+0.x, +1.x, +2.x, +3.x: the first runs, three skip
    assert.equal(g.started(), 1, 'never two runs at once');
    let d = s.describeJob('plugins', 'slow')!;
    assert.equal(d.skipped, 3);
    assert.equal(d.running, true);
    assert.equal(cap.count('tick skipped: the previous run is still going'), 1);

    g.releaseAll();
    await settle();
    await clock.advanceSettled(1_000);
    assert.equal(g.started(), 2, 'runs again at its next slot');
    assert.equal(cap.count('job runs again after skipped ticks'), 1);

    await clock.advanceSettled(2_000); // second burst: two more skips, one more log line
    d = s.describeJob('plugins', 'slow')!;
    assert.equal(d.skipped, 5);
    assert.equal(cap.count('tick skipped: the previous run is still going'), 2);
    assert.equal((s.status() as { skipped: number }).skipped, 5);
    g.releaseAll();
    await s.stop();
  });

  test('reconcile keeps unchanged jobs (next run, phase, run in progress) and replaces the rest', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock });
    const g = gate();
    const other = recorder(clock);
    const spec = (key: string, intervalSec: number, run: JobSpec['run']): JobSpec => ({ key, namespace: 'ns1', intervalSec, run });
    s.reconcile('checks', [spec('a', 10, g.run), spec('b', 10, other.run), spec('c', 30, other.run)]);
    await s.start();
    await clock.advanceSettled(10_000); // a has started (and is still running)
    const a1 = s.describeJob('checks', 'a')!;
    const c1 = s.describeJob('checks', 'c')!;
    assert.equal(a1.running, true);

    const replaced = recorder(clock);
    s.reconcile('checks', [spec('a', 10, replaced.run), spec('c', 60, other.run), spec('d', 10, other.run)]);
    const a2 = s.describeJob('checks', 'a')!;
    assert.equal(a2.nextRunAt, a1.nextRunAt, 'unchanged job keeps its next run time');
    assert.equal(a2.phaseMs, a1.phaseMs);
    assert.equal(a2.running, true, 'its run in progress survives');
    assert.equal(s.describeJob('checks', 'b'), null, 'gone job removed');
    const c2 = s.describeJob('checks', 'c')!;
    assert.equal(c2.intervalSec, 60, 'changed interval = a new job');
    assert.notEqual(c2.nextRunAt, c1.nextRunAt);
    assert.ok(s.describeJob('checks', 'd'));

    // The kept job's next tick still finds its old run going: skipped, not doubled.
    await clock.advanceSettled(a2.nextRunAt - clock.now());
    assert.equal(g.started(), 1);
    assert.equal(replaced.runs.length, 0);
    assert.equal(s.describeJob('checks', 'a')!.skipped, 1);
    g.releaseAll();
    await settle();
    await clock.advanceSettled(10_000);
    assert.equal(replaced.runs.length, 1, 'the swapped run function is used from then on');
    assert.equal(replaced.runs[0]!.plannedAt, a1.nextRunAt + 10_000);
    await s.stop();
  });

  test('a removed job whose run is going is not overlapped by its re-added twin', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock });
    const g = gate();
    s.reconcile('o', [{ key: 'k', namespace: 'n', intervalSec: 1, run: g.run }]);
    await s.start();
    await clock.advanceSettled(1_000);
    assert.equal(g.started(), 1);
    s.reconcile('o', []);
    s.reconcile('o', [{ key: 'k', namespace: 'n', intervalSec: 1, run: g.run }]);
    await clock.advanceSettled(2_000);
    assert.equal(g.started(), 1);
    g.releaseAll();
    await settle();
    await clock.advanceSettled(1_000);
    assert.equal(g.started(), 2);
    g.releaseAll();
    await s.stop();
  });

  test('failures are counted and logged once until the job recovers', async () => {
    const clock = new FakeClock(T0);
    const cap = captureLogger();
    const s = new Scheduler({ hostname: 'h', logger: cap.logger, timerSlackMs: 0, clock });
    let fail = true;
    let calls = 0;
    s.reconcile('o', [
      {
        key: 'flaky',
        namespace: 'n',
        intervalSec: 1,
        run: () => {
          calls++;
          if (fail) throw new Error('boom'); // a synchronous throw must be caught too
          return Promise.resolve();
        },
      },
      { key: 'rejects', namespace: 'n', intervalSec: 1, run: () => Promise.reject(new Error('no')) },
    ]);
    await s.start();
    await clock.advanceSettled(3_000);
    assert.equal(calls, 3);
    assert.equal(s.describeJob('o', 'flaky')!.failed, 3);
    assert.equal(s.describeJob('o', 'rejects')!.failed, 3);
    assert.equal(cap.count('job run failed'), 2);
    fail = false;
    await clock.advanceSettled(1_000);
    assert.equal(cap.count('job runs successfully again'), 1);
    assert.equal((s.status() as { failed: number }).failed, 7);
    await s.stop();
  });

  test('records lateness (status p50/p99 and the prom-client histogram)', async () => {
    const clock = new FakeClock(T0);
    const metrics = new Registry();
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock, metrics });
    const r = recorder(clock);
    s.reconcile('o', [{ key: 'k', namespace: 'ns1', intervalSec: 1, run: r.run }]);
    await s.start();
    const d = s.describeJob('o', 'k')!;
    await clock.advanceSettled(d.nextRunAt - clock.now() - 1); // just before the tick …
    clock.jumpWall(30); // … the wall clock is 30 ms ahead of the timer when it fires
    await clock.advanceSettled(1);
    assert.equal(r.runs.length, 1);
    assert.equal(r.runs[0]!.startedAt - r.runs[0]!.plannedAt, 30);
    const l = s.latenessSummary();
    assert.equal(l.samples, 1);
    assert.equal(l.p50Ms, 30);
    assert.equal(l.p99Ms, 30);
    const ns = (s.status() as { namespaces: Record<string, { latenessP99Ms: number }> }).namespaces.ns1!;
    assert.equal(ns.latenessP99Ms, 30);
    const text = await metrics.metrics();
    assert.match(text, /nsagent_scheduler_lateness_seconds_bucket\{le="0\.05",owner="o"\} 1/);
    assert.match(text, /nsagent_scheduler_lateness_seconds_bucket\{le="0\.02",owner="o"\} 0/);
    assert.match(text, /nsagent_scheduler_runs_total\{owner="o",outcome="ok"\} 1/);
    assert.match(text, /nsagent_scheduler_jobs 1/);
    await s.stop();
  });

  test('every tick due is accounted for: ran + skipped by reason + refused + running = due', async () => {
    const clock = new FakeClock(T0);
    const metrics = new Registry();
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock, metrics });
    const ok = recorder(clock);
    const g = gate();
    let n = 0;
    // A job that runs, declines (skips), is refused a slot and fails, in turn.
    const moody: JobSpec['run'] = async () => {
      const k = n++ % 4;
      if (k === 1) return { declined: 'skipped', reason: 'cloning' };
      if (k === 2) return { declined: 'refused', reason: 'no_run_slot' };
      if (k === 3) throw new Error('boom');
      return undefined;
    };
    s.reconcile('plugins', [
      { key: 'ok', namespace: 'n', intervalSec: 1, run: ok.run },
      { key: 'slow', namespace: 'n', intervalSec: 1, run: g.run },
      { key: 'moody', namespace: 'n', intervalSec: 1, run: moody },
    ]);
    await s.start();
    await clock.advanceSettled(10_000);
    const first = s.describeJob('plugins', 'ok')!.nextRunAt;
    clock.jumpWall(3_500); // a suspended host: lost periods count as missed
    await clock.advanceSettled(first - (clock.now() - 3_500));
    await clock.advanceSettled(5_000);
    await settle();

    const t = (s.status() as { ticksByOwner: Record<string, { due: number; ran: number; failed: number; skipped: Record<string, number>; refused: Record<string, number>; running: number }> }).ticksByOwner.plugins!;
    const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    assert.equal(t.ran + sum(t.skipped) + sum(t.refused) + t.running, t.due, JSON.stringify(t));
    assert.ok(t.due >= 3 * 15, `ticks came due: ${t.due}`);
    assert.equal(t.running, 1, 'the gated run is still going');
    assert.ok(t.skipped.overlap! > 0 && t.skipped.missed! > 0 && t.skipped.cloning! > 0, JSON.stringify(t.skipped));
    assert.ok(t.refused.no_run_slot! > 0 && t.failed > 0);
    assert.equal(ok.runs.length + n - t.skipped.cloning! - t.refused.no_run_slot! + g.started() - 1, t.ran, 'ran counts only real runs');
    const text = await metrics.metrics();
    assert.match(text, new RegExp(`nsagent_scheduler_due_total\\{owner="plugins"\\} ${t.due}`));
    assert.match(text, /nsagent_scheduler_skipped_total\{owner="plugins",reason="cloning"\} \d+/);
    assert.match(text, /nsagent_scheduler_refused_runs_total\{owner="plugins",reason="no_run_slot"\} \d+/);
    g.releaseAll();
    await s.stop();
  });

  test('a lost period is skipped and counted as missed, not run late in a bunch', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock });
    const r = recorder(clock);
    s.reconcile('o', [{ key: 'k', namespace: 'n', intervalSec: 10, run: r.run }]);
    await s.start();
    const first = s.describeJob('o', 'k')!.nextRunAt;
    clock.jumpWall(25_000); // the host was suspended: the wall clock leapt ahead
    await clock.advanceSettled(first - (clock.now() - 25_000));
    assert.equal(r.runs.length, 0);
    const d = s.describeJob('o', 'k')!;
    assert.equal(d.missed, 3, 'the slots at +0, +10 and +20 s were lost');
    assert.equal(d.nextRunAt, first + 30_000, 'back on the grid');
    await clock.advanceSettled(d.nextRunAt - clock.now());
    assert.equal(r.runs.length, 1);
    assert.equal(r.runs[0]!.plannedAt, first + 30_000);
    await s.stop();
  });

  test('a backwards wall-clock step re-aligns jobs to the grid', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock, maxTimerMs: 5_000 });
    const r = recorder(clock);
    s.reconcile('o', [{ key: 'k', namespace: 'n', intervalSec: 60, run: r.run }]);
    await s.start();
    const phase = s.describeJob('o', 'k')!.phaseMs;
    clock.jumpWall(-3_600_000);
    await clock.advanceSettled(70_000); // noticed within maxTimerMs, then runs within one interval
    assert.ok(r.runs.length >= 1, 'did not wait an hour');
    assert.equal(((r.runs[0]!.plannedAt % 60_000) + 60_000) % 60_000, phase);
    await s.stop();
  });

  test('refuses invalid, duplicate and over-cap jobs, and counts them', async () => {
    const clock = new FakeClock(T0);
    const cap = captureLogger();
    const s = new Scheduler({ hostname: 'h', logger: cap.logger, timerSlackMs: 0, clock, maxJobs: 2 });
    const run = () => Promise.resolve();
    s.reconcile('o', [
      { key: 'a', namespace: 'n', intervalSec: 1, run },
      { key: 'a', namespace: 'n', intervalSec: 1, run },
      { key: 'z', namespace: 'n', intervalSec: 0, run },
      { key: 'b', namespace: 'n', intervalSec: 1, run },
      { key: 'c', namespace: 'n', intervalSec: 1, run },
    ]);
    const st = s.status() as { jobs: number; refused: number };
    assert.equal(st.jobs, 2);
    assert.equal(st.refused, 3);
    assert.equal(cap.count('scheduler refused jobs'), 1);
    // Room freed by a removal in the same reconcile is usable at once.
    s.reconcile('o', [
      { key: 'b', namespace: 'n', intervalSec: 1, run },
      { key: 'c', namespace: 'n', intervalSec: 1, run },
    ]);
    assert.equal((s.status() as { jobs: number }).jobs, 2);
    assert.ok(s.describeJob('o', 'c'));
    await s.stop();
  });

  test('stop() waits for runs in progress, is idempotent, and nothing runs after it', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock });
    const g = gate();
    s.reconcile('o', [{ key: 'k', namespace: 'n', intervalSec: 1, run: g.run }]);
    await s.start();
    await clock.advanceSettled(1_000);
    let stopped = false;
    const p = s.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false);
    g.releaseAll();
    await p;
    assert.equal(stopped, true);
    assert.equal(s.stop(), s.stop());
    await clock.advanceSettled(5_000);
    assert.equal(g.started(), 1);
    assert.equal(clock.pending(), 0);
  });

  test('one timer serves many jobs across namespaces', async () => {
    const clock = new FakeClock(T0);
    const s = new Scheduler({ hostname: 'h', logger: silentLogger(), timerSlackMs: 0, clock });
    let runs = 0;
    const run = async () => {
      runs++;
    };
    for (let n = 0; n < 20; n++) {
      s.reconcile(`owner${n}`, Array.from({ length: 50 }, (_, i) => ({ key: `j${i}`, namespace: `ns${n}`, intervalSec: 10, run })));
    }
    await s.start();
    assert.equal(clock.pending(), 1);
    await clock.advanceSettled(10_000);
    assert.equal(runs, 1000, 'each job exactly once per period');
    const st = s.status() as { namespaces: Record<string, { jobs: number; runs: number }> };
    assert.equal(Object.keys(st.namespaces).length, 20);
    assert.equal(st.namespaces.ns7!.runs, 50);
    await s.stop();
  });
});
