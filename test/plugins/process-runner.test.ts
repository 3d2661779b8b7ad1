// Real bash processes, run as `nobody` (these tests run as root, as the agent does in production).
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runPluginProcess, type PluginProcessOptions } from '../../src/plugins/process-runner.ts';
import { resolveRunAs, type RunAsIdentity } from '../../src/plugins/run-as.ts';
import { processGone, tempDir, waitFor } from './helpers.ts';

const fixtures = new URL('../fixtures/plugins/', import.meta.url).pathname;
let root: { dir: string; cleanup: () => void };
let nobody: RunAsIdentity;

before(async () => {
  root = tempDir('runner');
  const identity = await resolveRunAs({ runAsUser: 'nobody', agentUid: 0 });
  assert.ok(identity, 'nobody resolves');
  nobody = identity;
});
after(() => root.cleanup());

function pluginFolder(fixture: string): string {
  const dir = path.join(root.dir, `${fixture}-${Math.random().toString(36).slice(2)}`);
  cpSync(path.join(fixtures, fixture), dir, { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}

function scriptFolder(body: string): string {
  const dir = path.join(root.dir, `inline-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(path.join(dir, 'plugin.sh'), body, { mode: 0o644 });
  return dir;
}

function options(dir: string, over: Partial<PluginProcessOptions> = {}): PluginProcessOptions {
  return {
    dir,
    args: [],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NS: 'demo.web', PLUGIN_NAME: 'x', PLUGIN_TIMEOUT: '5' },
    timeoutMs: 5000,
    killGraceMs: 300,
    maxOutputBytes: 1024 * 1024,
    stderrRingBytes: 1024,
    uid: nobody.uid,
    gid: nobody.gid,
    ...over,
  };
}

/** SIGKILL is sent; the kernel takes a moment to finish the process off (no event to await). */
function gone(pid: number): Promise<void> {
  return waitFor(`pid ${pid} to be gone`, () => processGone(pid), 2000);
}

function grandchildPid(stderrTail: string): number {
  const m = /grandchild=(\d+)/.exec(stderrTail);
  assert.ok(m, `no grandchild pid in ${JSON.stringify(stderrTail)}`);
  return Number(m[1]);
}

describe('runPluginProcess', () => {
  test('runs plugin.sh with bash as nobody, in its folder, with params and environment', async () => {
    const dir = pluginFolder('env');
    const out = await runPluginProcess(options(dir, { args: ['a', 'b c'] }));
    assert.equal(out.failure, null);
    assert.equal(out.exitCode, 0);
    const [seen] = JSON.parse(out.stdout.toString()) as Array<{ fields: Record<string, unknown> }>;
    assert.deepEqual(seen?.fields, { uid: nobody.uid, cwd: dir, ns: 'demo.web', plugin: 'x', timeout: '5', args: 'a b c', home_set: false });
  });

  test('a hanging plugin is killed at the timeout with its grandchildren', async () => {
    const dir = pluginFolder('hang');
    const t0 = Date.now();
    const out = await runPluginProcess(options(dir, { timeoutMs: 800 }));
    const elapsed = Date.now() - t0;
    assert.equal(out.timedOut, true);
    assert.equal(out.signal, 'SIGTERM');
    assert.ok(elapsed >= 800 && elapsed < 3000, `took ${elapsed} ms`);
    const pid = grandchildPid(out.stderrTail);
    await gone(pid);
  });

  test('a plugin that ignores SIGTERM gets SIGKILL after killGraceMs', async () => {
    const dir = scriptFolder('trap "" TERM\nsleep 300 &\necho "grandchild=$!" >&2\nsleep 300\n');
    const t0 = Date.now();
    const out = await runPluginProcess(options(dir, { timeoutMs: 500, killGraceMs: 400 }));
    const elapsed = Date.now() - t0;
    assert.equal(out.timedOut, true);
    assert.equal(out.signal, 'SIGKILL');
    assert.ok(elapsed >= 900 && elapsed < 3500, `took ${elapsed} ms`);
    await gone(grandchildPid(out.stderrTail));
  });

  test('100 MB on stdout is capped: reading stops, the group is killed', async () => {
    const dir = pluginFolder('flood');
    const t0 = Date.now();
    const out = await runPluginProcess(options(dir, { maxOutputBytes: 1024 * 1024, timeoutMs: 30_000 }));
    assert.equal(out.outputCapped, true);
    assert.equal(out.timedOut, false);
    assert.equal(out.stdout.length, 1024 * 1024);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });

  test('exit code and the tail of stderr are kept', async () => {
    const dir = pluginFolder('fail');
    const out = await runPluginProcess(options(dir, { stderrRingBytes: 16 }));
    assert.equal(out.exitCode, 3);
    assert.equal(out.stderrTail, 'cannot reach the database\n'.slice(-16));
  });

  test('what a plugin leaves running is killed when it exits, and does not hold the run open', async () => {
    const dir = scriptFolder('sleep 300 &\necho "grandchild=$!" >&2\necho "[]"\n');
    const t0 = Date.now();
    const out = await runPluginProcess(options(dir));
    assert.equal(out.exitCode, 0);
    assert.equal(out.stdout.toString().trim(), '[]');
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms, as if waiting for the grandchild`);
    await gone(grandchildPid(out.stderrTail));
  });

  test('an abort signal ends the run as a timeout does', async () => {
    const dir = pluginFolder('hang');
    const ac = new AbortController();
    const running = runPluginProcess(options(dir, { signal: ac.signal, timeoutMs: 60_000 }));
    setTimeout(() => ac.abort(), 200);
    const out = await running;
    assert.match(out.failure ?? '', /shutting down/);
    await gone(grandchildPid(out.stderrTail));
  });

  test('a missing plugin folder fails with the reason, not a hang', async () => {
    const out = await runPluginProcess(options(path.join(root.dir, 'no-such-folder')));
    assert.match(out.failure ?? '', /cannot start the plugin: .*ENOENT/);
    assert.equal(out.exitCode, null);
  });

  test('the working directory is entered before privileges drop: a closed parent folder does not stop the run', async () => {
    const closed = path.join(root.dir, 'closed');
    mkdirSync(closed, { mode: 0o700 });
    const dir = path.join(closed, 'p');
    cpSync(path.join(fixtures, 'ok'), dir, { recursive: true });
    const out = await runPluginProcess(options(dir));
    assert.equal(out.failure, null);
    assert.equal(out.exitCode, 0, out.stderrTail);
  });
});
