// Reconciliation on a fake clock: one system collection per tick copied to every namespace,
// one checks job per namespace with checks, plugin entries handed to the hook; a registry
// change starts what is new, stops what is gone, and leaves unchanged jobs (next run time,
// run in progress) untouched.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { collectSchema } from '../../src/config/schema.ts';
import type { Accumulator, Collector } from '../../src/collectors/types.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { PluginEntry, RegistrySnapshot } from '../../src/registry/types.ts';
import { CHECKS_OWNER, Reconciler, SYSTEM_OWNER } from '../../src/collectors/reconciler.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { FakeClock } from '../helpers/clocks.ts';
import { RecordingSink, type Push } from '../helpers/recording-sink.ts';
import { waitUntil } from '../helpers/wait.ts';

const T0 = 1_700_000_000_500;

const names = (p: Push): string[] => p.metrics.map((m) => m.name);

class CountingCollector implements Collector {
  readonly name = 'system';
  calls = 0;
  async collect(acc: Accumulator): Promise<void> {
    this.calls++;
    acc.add('cpu', { usage_idle: 50 }, { cpu: 'cpu-total' });
    acc.add('mem', { total: 1 });
  }
}

function snapshot(namespaces: string[], checks: RegistrySnapshot['checks'] = {}, plugins: Record<string, PluginEntry[]> = {}): RegistrySnapshot {
  const full: RegistrySnapshot = { namespaces, checks: {}, plugins: {} };
  for (const ns of namespaces) {
    full.checks[ns] = checks[ns] ?? { ports: [], processes: [] };
    full.plugins[ns] = plugins[ns] ?? [];
  }
  return full;
}

function setup() {
  const clock = new FakeClock(T0);
  const scheduler = new Scheduler({ hostname: 'web-1', logger: silentLogger(), timerSlackMs: 0, clock });
  const sink = new RecordingSink();
  const system = new CountingCollector();
  const hookCalls: Array<Record<string, PluginEntry[]>> = [];
  const collect = { ...collectSchema.parse({ systemIntervalSec: 10, checksIntervalSec: 30 }), hostRoot: '/' };
  const reconciler = new Reconciler({
    scheduler,
    sink,
    collect,
    clock,
    logger: silentLogger(),
    systemCollector: system,
    onPlugins: (p) => hookCalls.push(p),
  });
  return { clock, scheduler, sink, system, hookCalls, reconciler, collect };
}

// A port nobody should listen on in a test: the checks read the real socket tables.
const CLOSED_PORT = { port: 1 };

describe('Reconciler', () => {
  test('collects system stats once per tick and pushes the same batch to every namespace', async () => {
    const { clock, scheduler, sink, system, reconciler } = setup();
    reconciler.apply(snapshot(['a', 'b', 'c']));
    await scheduler.start();
    const next = scheduler.describeJob(SYSTEM_OWNER, 'system')!.nextRunAt;
    await clock.advanceSettled(next - clock.now());
    assert.equal(system.calls, 1);
    assert.deepEqual(sink.pushes.map((p) => p.namespace).sort(), ['a', 'b', 'c']);
    for (const p of sink.pushes) {
      assert.deepEqual(names(p), ['cpu', 'mem']);
      assert.deepEqual(p.metrics.map((m) => m.timestamp), [Math.floor(next / 1000), Math.floor(next / 1000)], 'stamped with the planned time');
    }
    await scheduler.stop();
  });

  test('no namespace, no system job; checks jobs only for namespaces with checks', async () => {
    const { scheduler, reconciler } = setup();
    reconciler.apply(snapshot([]));
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system'), null);
    reconciler.apply(snapshot(['a', 'b'], { a: { ports: [CLOSED_PORT], processes: [] } }));
    assert.ok(scheduler.describeJob(SYSTEM_OWNER, 'system'));
    assert.ok(scheduler.describeJob(CHECKS_OWNER, 'checks:a'));
    assert.equal(scheduler.describeJob(CHECKS_OWNER, 'checks:b'), null);
    assert.equal(scheduler.describeJob(CHECKS_OWNER, 'checks:a')!.namespace, 'a');
    await scheduler.stop();
  });

  test('a change starts the new, stops the gone, and keeps unchanged jobs exactly as they were', async () => {
    const { clock, scheduler, sink, reconciler } = setup();
    const checks = { ports: [CLOSED_PORT], processes: [] };
    reconciler.apply(snapshot(['a', 'b'], { a: checks, b: checks }));
    await scheduler.start();
    await clock.advanceSettled(12_000); // the system job has run once
    const sys1 = scheduler.describeJob(SYSTEM_OWNER, 'system')!;
    const a1 = scheduler.describeJob(CHECKS_OWNER, 'checks:a')!;
    assert.equal(sys1.runs, 1);

    // b leaves, c arrives (with checks), a's checks list changes but not its job.
    reconciler.apply(snapshot(['a', 'c'], { a: { ports: [CLOSED_PORT, { port: 2 }], processes: [] }, c: checks }));
    const sys2 = scheduler.describeJob(SYSTEM_OWNER, 'system')!;
    const a2 = scheduler.describeJob(CHECKS_OWNER, 'checks:a')!;
    assert.equal(sys2.nextRunAt, sys1.nextRunAt, 'system job keeps its next run');
    assert.equal(sys2.runs, 1, 'and its history: it is the same job');
    assert.equal(a2.nextRunAt, a1.nextRunAt, 'checks of a keep their next run');
    assert.equal(scheduler.describeJob(CHECKS_OWNER, 'checks:b'), null);
    assert.ok(scheduler.describeJob(CHECKS_OWNER, 'checks:c'));

    sink.pushes.length = 0;
    await clock.advanceSettled(sys2.nextRunAt - clock.now());
    assert.deepEqual(sink.pushes.filter((p) => names(p).includes('cpu')).map((p) => p.namespace).sort(), ['a', 'c'], 'gone namespace gets no copy');

    // a's checks run with the new list: two port_check points.
    await clock.advanceSettled(a2.nextRunAt - clock.now());
    // The port checks dial a real (closed) port: no fake-clock event tells when they answered.
    const aChecks = await waitUntil("a's port checks", () => sink.pushes.find((p) => p.namespace === 'a' && names(p).includes('port_check')));
    assert.deepEqual(names(aChecks), ['port_check', 'port_check']);
    await scheduler.stop();
  });

  test('an unchanged system job keeps its run in progress across a change', async () => {
    const { clock, scheduler, reconciler, system } = setup();
    let release: () => void = () => undefined;
    system.collect = async (acc) => {
      system.calls++;
      await new Promise<void>((r) => (release = r));
      acc.add('cpu', { usage_idle: 1 });
    };
    reconciler.apply(snapshot(['a']));
    await scheduler.start();
    const next = scheduler.describeJob(SYSTEM_OWNER, 'system')!.nextRunAt;
    await clock.advanceSettled(next - clock.now());
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system')!.running, true);
    reconciler.apply(snapshot(['a', 'b']));
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system')!.running, true);
    await clock.advanceSettled(10_000);
    assert.equal(system.calls, 1, 'not started twice');
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system')!.skipped, 1);
    release();
    await scheduler.stop();
  });

  test('the plugin hook gets every namespace’s entries when they change, and only then', async () => {
    const { reconciler, hookCalls } = setup();
    const probe: PluginEntry = { builtin: 'http_probe', interval: 30 };
    reconciler.apply(snapshot(['a', 'b'], {}, { a: [probe] }));
    assert.deepEqual(hookCalls, [{ a: [probe], b: [] }]);
    reconciler.apply(snapshot(['a', 'b'], { a: { ports: [CLOSED_PORT], processes: [] } }, { a: [probe] }));
    assert.equal(hookCalls.length, 1, 'checks changed, plugins did not');
    reconciler.apply(snapshot(['a'], {}, { a: [probe, { repo: 'https://git/x.git', interval: 60 }] }));
    assert.equal(hookCalls.length, 2);
    assert.deepEqual(Object.keys(hookCalls[1]!), ['a']);
    const late: Array<Record<string, PluginEntry[]>> = [];
    reconciler.setPluginsHook((p) => late.push(p));
    assert.equal(late.length, 1, 'a hook set later hears of the plugins in force at once');
  });

  test('a new system interval (config reload) replaces the job; the same one keeps it', async () => {
    const { scheduler, reconciler, collect } = setup();
    reconciler.apply(snapshot(['a']));
    await scheduler.start();
    const before = scheduler.describeJob(SYSTEM_OWNER, 'system')!;
    reconciler.reconfigure({ ...collect });
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system')!.nextRunAt, before.nextRunAt);
    reconciler.reconfigure({ ...collect, systemIntervalSec: 60 });
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system')!.intervalSec, 60);
    await scheduler.stop();
  });

  test('a sink that fails is counted and does not break the job', async () => {
    const { clock, scheduler } = setup();
    const failing = new Reconciler({
      scheduler,
      sink: { push: () => Promise.reject(new Error('spool full')) },
      collect: { ...collectSchema.parse({}), hostRoot: '/' },
      clock,
      logger: silentLogger(),
      systemCollector: new CountingCollector(),
    });
    failing.apply(snapshot(['a', 'b']));
    await scheduler.start();
    await clock.advanceSettled(10_000);
    assert.equal((failing.status() as { pushFailures: number }).pushFailures, 2);
    assert.equal(scheduler.describeJob(SYSTEM_OWNER, 'system')!.failed, 0);
    await scheduler.stop();
  });
});
