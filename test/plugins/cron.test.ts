// Clock-time schedules: a registry plugin entry with `cron` instead of `interval` runs on those
// times (node-schedule, real time: an every-second expression), with the guarantees of interval
// runs: no overlap (skips counted), the timeout, the result point; a registry change that does
// not touch it leaves its schedule and counters alone; /plugins/list shows the next run; an
// invalid expression is refused with its registry path.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { PluginManager, PLUGIN_JOB_OWNER } from '../../src/plugins/plugin-manager.ts';
import type { BuiltinPluginFn } from '../../src/plugins/types.ts';
import { validateAnswer } from '../../src/registry/validate.ts';
import { cronProblem } from '../../src/job-timing.ts';
import { ClockScheduler } from '../../src/scheduler/clock-schedule.ts';
import { FakeScheduler } from './helpers.ts';
import { RecordingSink } from '../helpers/recording-sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';

let root: { dir: string; cleanup: () => void };
before(() => {
  root = tempDir('cron');
});
after(() => root.cleanup());

describe('cron entries in the registry', () => {
  test('valid expressions and time zones pass; invalid ones are refused with the registry path', () => {
    const check = (entry: unknown) => validateAnswer('plugins', { plugins: { 'demo.web': [entry] } }, { keyRequired: true });
    const ok = check({ builtin: 'x', cron: '0 3 * * *', timezone: 'Europe/Paris' });
    assert.ok(ok.ok);
    assert.deepEqual(ok.value['demo.web']?.[0], { builtin: 'x', cron: '0 3 * * *', timezone: 'Europe/Paris', interval: 0 });
    const problems = (entry: unknown) => {
      const v = check(entry);
      assert.equal(v.ok, false, JSON.stringify(entry));
      return v.ok ? [] : v.problems;
    };
    assert.match(problems({ builtin: 'x', cron: '61 3 * * *' })[0]!, /^\$\.plugins\["demo\.web"\]\[0\]\.cron: "61 3 \* \* \*" is not a valid cron expression/);
    assert.match(problems({ builtin: 'x', cron: 'nightly' })[0]!, /^\$\.plugins\["demo\.web"\]\[0\]\.cron: .*expected 5 fields/);
    assert.match(problems({ builtin: 'x', cron: '0 3 * * *', timezone: 'Mars/Olympus' })[0]!, /^\$\.plugins\["demo\.web"\]\[0\]\.timezone: unknown time zone/);
    assert.match(problems({ builtin: 'x', cron: '0 3 * * *', interval: 60 })[0]!, /give "interval" or "cron", not both/);
    assert.match(problems({ builtin: 'x' })[0]!, /^\$\.plugins\["demo\.web"\]\[0\]\.interval: required/);
    assert.equal(cronProblem('*/5 * * * * *'), null, 'six fields: seconds first');
  });
});

describe('PluginManager with clock-time schedules', () => {
  test('runs on the clock, never overlaps (skips counted), times out, publishes a result point, survives unrelated registry changes', async () => {
    const base = path.join(root.dir, 'case');
    const config = parseConfig({ dataDir: 'data', plugins: { cacheDir: 'cache', allowLocalRepos: true } }, path.join(base, 'agent.json'));
    const sink = new RecordingSink();
    const clockScheduler = new ClockScheduler({ logger: silentLogger() });
    let started = 0;
    // Never answers: only the run's timeout ends it.
    const hang: BuiltinPluginFn = async (_params, ctx) => {
      started++;
      return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    };
    const quick: BuiltinPluginFn = async () => [{ name: 'q', value: 1 }];
    const manager = new PluginManager({
      config: config.plugins,
      stateFile: path.join(config.dataDir, 'plugins-state.json'),
      scheduler: new FakeScheduler(),
      clockScheduler,
      sink,
      builtins: { hang, quick },
      logger: silentLogger(),
      clock: systemClock,
    });
    await manager.start();
    try {
      const cronEntry = { builtin: 'hang', interval: 0, cron: '* * * * * *', timeout: 2 };
      await manager.reconcile({ nightly: [cronEntry] });
      const listed = manager.list().find((p) => p.name === 'hang')!;
      assert.equal(listed.cron, '* * * * * *');
      assert.ok(typeof listed.nextRunAt === 'number' && listed.nextRunAt > Date.now() - 1000, `nextRunAt ${listed.nextRunAt}`);

      // Every second a tick; the run takes 2 s (its timeout): the ticks in between are skipped.
      await waitUntil('a timed-out run and a skipped tick', () => {
        const d = clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/hang');
        return (d?.runs ?? 0) >= 1 && (d?.skipped ?? 0) >= 1;
      }, { timeoutMs: 15_000 });
      const d = clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/hang')!;
      assert.equal(started, d.runs + (d.running ? 1 : 0), 'never two runs at once');
      const result = sink.metrics('nightly').find((m) => m.name === 'PLUGIN.hang')!;
      assert.ok(result, 'a result point in the plugin namespace');
      assert.equal(result.fields!.timed_out, true);
      assert.equal(result.fields!.success, false);
      assert.ok(manager.list().find((p) => p.name === 'hang')!.skippedTicks! >= 1, '/plugins/list counts the skips');

      // An unrelated change: the cron job keeps its timer and counters.
      const before = clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/hang')!;
      await manager.reconcile({ nightly: [cronEntry, { builtin: 'quick', interval: 60 }], other: [{ builtin: 'quick', interval: 30 }] });
      const afterChange = clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/hang')!;
      assert.ok(afterChange.runs >= before.runs && afterChange.skipped >= before.skipped, 'counters kept, not reset');

      // Disabled: no clock job; enabled again: back.
      await manager.disable('nightly', 'hang');
      assert.equal(clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/hang'), null);
      await manager.enable('nightly', 'hang');
      assert.ok(clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/hang'));
    } finally {
      await manager.stop();
      await clockScheduler.stop();
    }
  });

  test('a clock time that finds an on-demand run still going is counted once in /plugins/list', async () => {
    const base = path.join(root.dir, 'once');
    const config = parseConfig({ dataDir: 'data', plugins: { cacheDir: 'cache', allowLocalRepos: true } }, path.join(base, 'agent.json'));
    const clockScheduler = new ClockScheduler({ logger: silentLogger() });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Holds every run until released; runs after that return at once.
    const held: BuiltinPluginFn = async () => {
      await released;
      return [{ name: 'h', value: 1 }];
    };
    const manager = new PluginManager({
      config: config.plugins,
      stateFile: path.join(config.dataDir, 'plugins-state.json'),
      scheduler: new FakeScheduler(),
      clockScheduler,
      sink: new RecordingSink(),
      builtins: { held },
      logger: silentLogger(),
      clock: systemClock,
    });
    await manager.start();
    try {
      // On demand first (no clock job yet), then the entry gains its clock times while the run goes on.
      await manager.reconcile({ nightly: [{ builtin: 'held', interval: 0 }] });
      const onDemand = manager.run('nightly', 'held', { timeoutSec: 60 });
      await manager.reconcile({ nightly: [{ builtin: 'held', interval: 0, cron: '* * * * * *' }] });
      await waitUntil('two clock times declined while the on-demand run goes on', () => (clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/held')?.skipped ?? 0) >= 2, { timeoutMs: 15_000 });
      release();
      const reply = await onDemand;
      assert.ok(reply.ok && reply.result.success);
      const skipped = clockScheduler.describeJob(PLUGIN_JOB_OWNER, 'plugin:nightly/held')!.skipped;
      assert.equal(manager.list().find((p) => p.name === 'held')!.skippedTicks, skipped, 'each declined time once, not once per counter');
      assert.equal(manager.status().skippedTicks, skipped);
    } finally {
      await manager.stop();
      await clockScheduler.stop();
    }
  });
});
