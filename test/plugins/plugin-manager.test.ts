// The plugin subsystem end to end below its seams: real git repositories, real bash processes run
// as nobody, real files; a fake scheduler (jobs fired by hand), a recording metric sink and a
// fake clock above them.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { builtinPlugins } from '../../goplugins/index.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { simpleGitFactory, type GitFactory } from '../../src/plugins/git-cache.ts';
import { PluginManager } from '../../src/plugins/plugin-manager.ts';
import type { BuiltinPluginFn } from '../../src/plugins/types.ts';
import type { PluginEntry } from '../../src/registry/types.ts';
import { FakeScheduler, TestRepo, fixture } from './helpers.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { RecordingSink } from '../helpers/recording-sink.ts';
import { FakeClock } from '../helpers/clocks.ts';

let root: { dir: string; cleanup: () => void };
before(() => {
  root = tempDir('manager');
});
after(() => root.cleanup());

const testBuiltins: Record<string, BuiltinPluginFn> = {
  ...builtinPlugins,
  echo: Object.assign(async (params: Record<string, unknown>) => [{ name: 'echoed', value: Number(params.n ?? 1) }], {
    checkParams: (params: Record<string, unknown>) => {
      if (params.n !== undefined && typeof params.n !== 'number') throw new Error('param "n": expected a number');
    },
  }),
};

let seq = 0;
interface Setup {
  base: string;
  manager: PluginManager;
  scheduler: FakeScheduler;
  sink: RecordingSink;
  clock: FakeClock;
  stateFile: string;
  cacheDir: string;
  gitCalls: () => number;
  repo(name: string, files: Record<string, string | null>, group?: string): TestRepo;
  restart(): PluginManager;
}

async function setup(plugins: Record<string, unknown> = {}, maxConcurrentRuns = 4): Promise<Setup> {
  const base = path.join(root.dir, `case${++seq}`);
  const config = parseConfig(
    { dataDir: 'data', plugins: { cacheDir: 'cache', allowLocalRepos: true, killGraceMs: 300, maxOutputBytes: 1024 * 1024, ...plugins } },
    path.join(base, 'agent.json'),
  );
  const scheduler = new FakeScheduler();
  const sink = new RecordingSink();
  const clock = new FakeClock();
  const stateFile = path.join(config.dataDir, 'plugins-state.json');
  let gitCalls = 0;
  const gitFactory: GitFactory = (o) => {
    gitCalls++;
    return simpleGitFactory(o);
  };
  const make = () =>
    new PluginManager({
      config: config.plugins,
      stateFile,
      scheduler,
      sink,
      builtins: testBuiltins,
      logger: silentLogger(),
      clock,
      maxConcurrentRuns,
      gitFactory,
    });
  const s: Setup = {
    base,
    manager: make(),
    scheduler,
    sink,
    clock,
    stateFile,
    cacheDir: config.plugins.cacheDir,
    gitCalls: () => gitCalls,
    repo(name, files, group = 'remotes') {
      const repo = new TestRepo(path.join(base, group), name);
      repo.commit(files);
      return repo;
    },
    restart() {
      s.manager = make();
      return s.manager;
    },
  };
  await s.manager.start();
  return s;
}

function entry(repo: TestRepo | string, interval = 10, extra: Partial<PluginEntry> = {}): PluginEntry {
  return { repo: typeof repo === 'string' ? repo : repo.url, interval, ...extra };
}

describe('PluginManager', () => {
  test('clones new plugins, schedules them, runs them as nobody and publishes renamed metrics and a result point', async () => {
    const s = await setup();
    try {
      const ok = s.repo('ok', { 'plugin.sh': fixture('ok') });
      await s.manager.reconcile({ 'demo.web': [entry(ok, 30, { params: ['first'] })], 'demo.infra': [entry(ok, 60)] });
      assert.deepEqual([...s.scheduler.jobs.keys()].sort(), ['plugin:demo.infra/ok', 'plugin:demo.web/ok']);
      assert.equal(s.scheduler.jobs.get('plugin:demo.web/ok')?.intervalSec, 30);
      assert.ok(existsSync(path.join(s.cacheDir, 'demo.web', 'ok', 'plugin.sh')));

      await s.scheduler.fire('plugin:demo.web/ok');
      const pushed = s.sink.pushes.filter((p) => p.namespace === 'demo.web');
      assert.equal(pushed[0]?.opts?.plugin, 'ok', 'metrics are pushed for renaming as PLUGIN.ok.<metric>');
      assert.deepEqual(
        s.sink.metrics('demo.web').filter((m) => m.name !== 'PLUGIN.ok').map((m) => [m.name, m.value, m.tags]),
        [
          ['PLUGIN.ok.answer', 42, { arg: 'first' }],
          ['PLUGIN.ok.uid', 65534, undefined],
        ],
      );
      const [result] = s.sink.resultPoints('ok');
      assert.equal(result?.fields?.success, true);
      assert.equal(result?.fields?.exit_code, 0);
      assert.equal(result?.fields?.metric_count, 2);
      assert.equal(result?.fields?.timed_out, false);
      assert.equal(result?.fields?.error, '');
      assert.equal(typeof result?.fields?.duration_ms, 'number');
      assert.equal(s.sink.metrics('demo.infra').length, 0, 'the other namespace has not run yet');

      const info = s.manager.list().find((p) => p.namespace === 'demo.web');
      assert.equal(info?.lastRun?.success, true);
      assert.equal(info?.commit?.length, 40);
      assert.equal(info?.running, false);
    } finally {
      await s.manager.stop();
    }
  });

  test('a second plugin of the same name in a namespace is refused, and /plugins/list says why', async () => {
    const s = await setup();
    try {
      const a = s.repo('ok', { 'plugin.sh': fixture('ok') }, 'team-a');
      const b = s.repo('ok', { 'plugin.sh': fixture('garbage') }, 'team-b');
      await s.manager.reconcile({ ns: [entry(a), entry(b)], other: [entry(b)] });
      const list = s.manager.list();
      const refused = list.find((p) => p.repo === b.url && p.namespace === 'ns');
      assert.match(refused?.problem ?? '', /namespace "ns" already has a plugin named "ok" \(from file:\/\/.*team-a.*\)/);
      assert.equal(list.find((p) => p.repo === a.url)?.problem, null);
      assert.equal(list.find((p) => p.namespace === 'other')?.problem, null, 'the same name in another namespace is fine');
      assert.deepEqual([...s.scheduler.jobs.keys()].sort(), ['plugin:ns/ok', 'plugin:other/ok']);
      const run = await s.manager.run('ns', b.url, {});
      assert.deepEqual(run.ok ? 'ran' : [run.kind, /refused/.test(run.message)], ['bad-request', true]);
    } finally {
      await s.manager.stop();
    }
  });

  test('a hostile repo URL in the registry is refused before git runs and never reaches the cache', async () => {
    const s = await setup();
    try {
      await s.manager.reconcile({
        ns: [entry('--upload-pack=touch /tmp/pwned'), entry('ext::sh -c touch% /tmp/pwned'), entry(`file://${s.base}/../escape.git`)],
      });
      const list = s.manager.list();
      assert.equal(list.length, 3);
      for (const p of list) assert.match(p.problem ?? '', /starts with "-"|spaces|transport::address|"\.\."/);
      assert.equal(s.gitCalls(), 0);
      assert.deepEqual(existsSync(s.cacheDir) ? readdirSync(s.cacheDir) : [], []);
      assert.equal(s.scheduler.jobs.size, 0);
    } finally {
      await s.manager.stop();
    }
  });

  test('garbage output, a non-zero exit, a missing plugin.sh and 100 MB of output each give a failed result point with the reason', async () => {
    const s = await setup();
    try {
      const garbage = s.repo('garbage', { 'plugin.sh': fixture('garbage') });
      const fail = s.repo('fail', { 'plugin.sh': fixture('fail') });
      const missing = s.repo('missing', { 'run.sh': 'echo "[]"\n' });
      const flood = s.repo('flood', { 'plugin.sh': fixture('flood') });
      await s.manager.reconcile({ ns: [entry(garbage), entry(fail), entry(missing), entry(flood)] });
      for (const name of ['garbage', 'fail', 'missing', 'flood']) await s.scheduler.fire(`plugin:ns/${name}`);
      const reason = (name: string) => {
        const [point] = s.sink.resultPoints(name);
        assert.equal(point?.fields?.success, false, name);
        return String(point?.fields?.error);
      };
      assert.match(reason('garbage'), /^stdout is not JSON .*"this is not JSON"/);
      assert.match(reason('fail'), /^exit code 3; stderr: "cannot reach the database"/);
      assert.equal(s.sink.resultPoints('fail')[0]?.fields?.exit_code, 3);
      assert.match(reason('missing'), /the repo has no plugin.sh at its root/);
      assert.match(reason('flood'), /stdout went past plugins.maxOutputBytes \(1048576 bytes\); the plugin was killed/);
      assert.deepEqual(
        [s.sink.resultPoints('flood')[0]?.fields?.output_capped, s.sink.resultPoints('flood')[0]?.fields?.output_bytes],
        [true, 1024 * 1024],
      );
      assert.equal(s.sink.metrics().filter((m) => m.name === 'PLUGIN.fail.never').length, 0, 'a failed run publishes no metrics');
      assert.match(s.manager.list().find((p) => p.name === 'missing')?.problem ?? '', /no plugin.sh/);
    } finally {
      await s.manager.stop();
    }
  });

  test('a tick while the plugin runs is skipped and counted; run-now while it runs is refused as busy', async () => {
    const s = await setup();
    try {
      const slow = s.repo('slow', { 'plugin.sh': fixture('slow') });
      await s.manager.reconcile({ ns: [entry(slow, 10, { params: ['1'] })] });
      const first = s.scheduler.fire('plugin:ns/slow');
      assert.equal(s.manager.list()[0]?.running, true);
      await s.scheduler.fire('plugin:ns/slow'); // returns at once: skipped
      const refused = await s.manager.run('ns', slow.url, {});
      assert.ok(!refused.ok);
      assert.equal(refused.kind, 'busy');
      assert.match(refused.message, /already running/);
      await first;
      assert.equal(s.manager.list()[0]?.skippedTicks, 1);
      assert.equal(s.manager.status().skippedTicks, 1);
      assert.equal(s.sink.resultPoints('slow').length, 1, 'one run, not two');
    } finally {
      await s.manager.stop();
    }
  });

  test('a registry change leaves unchanged plugins untouched: no re-clone, the run in progress goes on', async () => {
    const s = await setup();
    try {
      const slow = s.repo('slow', { 'plugin.sh': fixture('slow') });
      const ok = s.repo('ok', { 'plugin.sh': fixture('ok') });
      await s.manager.reconcile({ ns: [entry(slow, 10, { params: ['1'] })] });
      const calls = s.gitCalls();
      const running = s.scheduler.fire('plugin:ns/slow');
      await s.manager.reconcile({ ns: [entry(slow, 10, { params: ['1'] }), entry(ok)] });
      assert.equal(s.manager.list().find((p) => p.name === 'slow')?.running, true);
      assert.ok(s.gitCalls() > calls, 'the new plugin was cloned');
      const afterAdd = s.gitCalls();
      await s.manager.reconcile({ ns: [entry(slow, 10, { params: ['1'] }), entry(ok)] });
      assert.equal(s.gitCalls(), afterAdd, 'nothing new, nothing cloned');
      await running;
      assert.equal(s.sink.resultPoints('slow')[0]?.fields?.success, true);
      await s.manager.reconcile({ ns: [entry(ok)] });
      assert.deepEqual([...s.scheduler.jobs.keys()], ['plugin:ns/ok'], 'a removed plugin loses its job');
    } finally {
      await s.manager.stop();
    }
  });

  test('run now: interval 0 is never scheduled; params and timeout of the request apply; the result comes back', async () => {
    const s = await setup();
    try {
      const env = s.repo('env', { 'plugin.sh': fixture('env') });
      const hang = s.repo('hang', { 'plugin.sh': fixture('hang') });
      await s.manager.reconcile({ ns: [entry(env, 0, { params: ['registry'] }), entry(hang, 0)] });
      assert.equal(s.scheduler.jobs.size, 0);
      const reply = await s.manager.run('ns', env.url, { params: ['from', 'request'], timeoutSec: 7 });
      assert.ok(reply.ok);
      assert.equal(reply.result.success, true);
      assert.equal(reply.result.metricCount, 1);
      assert.deepEqual(reply.result.lines, ['PLUGIN.env.seen', 'PLUGIN.env']);
      const seen = s.sink.metrics('ns').find((m) => m.name === 'PLUGIN.env.seen');
      assert.equal(seen?.fields?.args, 'from request');
      assert.equal(seen?.fields?.timeout, '7');

      const hung = await s.manager.run('ns', `${hang.url}/`, { timeoutSec: 1 });
      assert.ok(hung.ok, 'a URL differing by a trailing slash names the same plugin');
      assert.equal(hung.result.timedOut, true);
      assert.match(hung.result.error ?? '', /timed out after 1 s; the process group was killed/);
      assert.equal(s.sink.resultPoints('hang')[0]?.fields?.timed_out, true);

      const bad = await s.manager.run('ns', env.url, { timeoutSec: -1 });
      assert.deepEqual(bad.ok ? null : bad.kind, 'bad-request');
      const unknown = await s.manager.run('ns', 'https://example.com/nope.git', {});
      assert.deepEqual(unknown.ok ? null : unknown.kind, 'not-found');
    } finally {
      await s.manager.stop();
    }
  });

  test('disable survives a restart; a day later the plugin is enabled again by itself', async () => {
    const s = await setup({ autoEnableAfterSec: 86_400 });
    const ok = s.repo('ok', { 'plugin.sh': fixture('ok') });
    const registry = { ns: [entry(ok)] };
    await s.manager.reconcile(registry);
    const off = await s.manager.disable('ns', ok.url);
    assert.ok(off.ok, off.message);
    assert.equal(s.scheduler.jobs.size, 0, 'a disabled plugin has no job');
    assert.equal(s.manager.list()[0]?.enabled, false);
    assert.equal(s.manager.list()[0]?.disabledUntil, s.clock.now() + 86_400_000);
    await s.manager.stop();

    const saved = JSON.parse(readFileSync(s.stateFile, 'utf8')) as { disabled: Array<{ namespace: string; repo: string }> };
    assert.deepEqual(saved.disabled.map((d) => [d.namespace, d.repo]), [['ns', ok.url]]);

    const again = s.restart();
    await again.start();
    try {
      await again.reconcile(registry);
      assert.equal(again.list()[0]?.enabled, false, 'still disabled after the restart');
      assert.equal(s.scheduler.jobs.size, 0);
      s.clock.advance(86_400_000 - 1000);
      assert.equal(again.list()[0]?.enabled, false);
      s.clock.advance(1000);
      // The auto-enable timer persists the state, then re-adds the job: no event to await.
      await waitUntil('the job to come back', () => s.scheduler.jobs.size === 1);
      assert.equal(again.list()[0]?.enabled, true);
      assert.equal(again.status().autoEnabled, 1);
      const state = JSON.parse(readFileSync(s.stateFile, 'utf8')) as { disabled: unknown[] };
      assert.deepEqual(state.disabled, []);

      const off2 = await again.disable('ns', ok.url);
      assert.ok(off2.ok);
      const on = await again.enable('ns', ok.url);
      assert.deepEqual(on, { ok: true, message: 'enabled ok in namespace ns' });
      assert.equal(s.scheduler.jobs.size, 1);
      assert.deepEqual(await again.enable('ns', 'ok'), { ok: true, message: 'ok in namespace ns was already enabled' });
      assert.equal((await again.disable('nope', ok.url)).ok, false);
    } finally {
      await again.stop();
    }
  });

  test('update moves to the new commit; an unreachable remote answers 502 and the old tree keeps running', async () => {
    const s = await setup();
    try {
      const repo = s.repo('ver', { 'plugin.sh': 'echo \'[{"name":"version","value":1}]\'\n' });
      await s.manager.reconcile({ ns: [entry(repo)] });
      repo.commit({ 'plugin.sh': 'echo \'[{"name":"version","value":2}]\'\n' });
      await s.scheduler.fire('plugin:ns/ver');
      const updated = await s.manager.update('ns', repo.url);
      assert.ok(updated.ok, updated.message);
      assert.match(updated.message, /^updated from [0-9a-f]{12} to [0-9a-f]{12}$/);
      await s.scheduler.fire('plugin:ns/ver');
      assert.deepEqual(s.sink.metrics('ns').filter((m) => m.name === 'PLUGIN.ver.version').map((m) => m.value), [1, 2]);

      const { renameSync } = await import('node:fs');
      renameSync(repo.bare, `${repo.bare}.moved`);
      const failed = await s.manager.update('ns', repo.url);
      assert.ok(!failed.ok);
      assert.equal(failed.kind, 'git-failed');
      assert.match(failed.message, /^update failed, still running [0-9a-f]{12}: git fetch failed/);
      assert.match(s.manager.list()[0]?.updateError ?? '', /update failed/);
      await s.scheduler.fire('plugin:ns/ver');
      assert.deepEqual(s.sink.metrics('ns').filter((m) => m.name === 'PLUGIN.ver.version').map((m) => m.value), [1, 2, 2]);
      const builtin = await s.manager.reconcile({ ns: [entry(repo), { builtin: 'echo', interval: 10 }] }).then(() => s.manager.update('ns', 'echo'));
      assert.deepEqual(builtin.ok ? null : builtin.kind, 'bad-request');
    } finally {
      await s.manager.stop();
    }
  });

  test('a run in progress during an update finishes in the old tree; the next run uses the new one', async () => {
    const s = await setup();
    try {
      const script = 'sleep 1\nprintf \'[{"name":"version","value":%s}]\' "$(cat version.txt)"\n';
      const repo = s.repo('swap', { 'plugin.sh': script, 'version.txt': '1' });
      await s.manager.reconcile({ ns: [entry(repo)] });
      repo.commit({ 'version.txt': '2' });
      const running = s.scheduler.fire('plugin:ns/swap');
      const updated = await s.manager.update('ns', repo.url);
      assert.ok(updated.ok, updated.message);
      await running;
      await s.scheduler.fire('plugin:ns/swap');
      assert.deepEqual(s.sink.metrics('ns').filter((m) => m.name === 'PLUGIN.swap.version').map((m) => m.value), [1, 2]);
      assert.deepEqual(readdirSync(path.join(s.cacheDir, 'ns')), ['swap'], 'the old tree is gone once the run ended');
    } finally {
      await s.manager.stop();
    }
  });

  test('built-in plugins: run like git plugins, bad names and params refused with a reason', async () => {
    const s = await setup();
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
    try {
      await s.manager.reconcile({
        web: [{ builtin: 'http_probe', interval: 30, params: { url } }, { builtin: 'echo', interval: 10, params: { n: 'x' } }],
        other: [{ builtin: 'no_such_thing', interval: 10 }, { builtin: 'http_probe', interval: 30, params: { url: 'ftp://x' } }],
      });
      await s.scheduler.fire('plugin:web/http_probe');
      const names = s.sink.metrics('web').map((m) => m.name);
      assert.deepEqual(names, ['PLUGIN.http_probe.up', 'PLUGIN.http_probe.status_code', 'PLUGIN.http_probe.response_ms', 'PLUGIN.http_probe']);
      assert.equal(s.sink.resultPoints('http_probe')[0]?.fields?.success, true);

      const list = s.manager.list();
      assert.match(list.find((p) => p.builtin === 'no_such_thing')?.problem ?? '', /no built-in plugin "no_such_thing"; there are: echo, http_probe, prom_scrape, tcp_probe/);
      assert.match(list.find((p) => p.namespace === 'other' && p.builtin === 'http_probe')?.problem ?? '', /bad params: param "url": must be an http/);
      assert.match(list.find((p) => p.builtin === 'echo')?.problem ?? '', /bad params: param "n": expected a number/);
      await s.scheduler.fire('plugin:web/echo');
      assert.match(String(s.sink.resultPoints('echo')[0]?.fields?.error), /bad params/);

      const now = await s.manager.run('web', 'http_probe', { params: [`url=${url}`, 'expectStatus=500'] });
      assert.ok(now.ok);
      assert.equal(s.sink.metrics('web').filter((m) => m.name === 'PLUGIN.http_probe.up').at(-1)?.value, 0, 'status 200 is not the 500 asked for');
      const bad = await s.manager.run('web', 'http_probe', { params: ['nonsense'] });
      assert.deepEqual(bad.ok ? null : [bad.kind, bad.message], ['bad-request', 'bad params: param "nonsense" must be key=value for a built-in plugin']);
    } finally {
      server.close();
      await s.manager.stop();
    }
  });

  test('scheduler.maxConcurrentRuns caps runs across plugins; stop ends the runs in progress', async () => {
    // No grace: stop kills at once (the grace is the fault suite's "shutdown under plugin load").
    const s = await setup({ stopGraceMs: 0 }, 1);
    try {
      const a = s.repo('hang', { 'plugin.sh': fixture('hang') });
      const b = s.repo('ok', { 'plugin.sh': fixture('ok') });
      await s.manager.reconcile({ ns: [entry(a, 60), entry(b, 60)] });
      const first = s.scheduler.fire('plugin:ns/hang');
      const second = s.scheduler.fire('plugin:ns/ok');
      await waitUntil('the second run to wait for the one slot', () => (s.manager.status().slots as { waiting: number }).waiting === 1);
      assert.deepEqual(
        { active: s.manager.status().slots, okRan: s.sink.resultPoints('ok').length },
        { active: { capacity: 1, active: 1, waiting: 1, waitedTotal: 1, refusedTotal: 0 }, okRan: 0 },
      );
      const t0 = Date.now();
      await s.manager.stop();
      await Promise.all([first, second]);
      assert.ok(Date.now() - t0 < 3000, `stop took ${Date.now() - t0} ms`);
      assert.match(String(s.sink.resultPoints('hang')[0]?.fields?.error), /shutting down/);
      assert.equal(s.sink.resultPoints('ok').length, 0, 'the waiting run never started');
    } finally {
      await s.manager.stop();
    }
  });
});
