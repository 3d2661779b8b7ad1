// Real bash processes, run as `nobody` (these tests run as root, as the agent does in production).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { runPluginProcess } from '../../src/plugins/process-runner.ts';
import { runnerKit } from './runner-kit.ts';

const { rootDir, nobody, fixtureDir, pluginFolder, scriptFolder, options, gone, grandchildPid } = runnerKit('runner');

describe('runPluginProcess', () => {
  test('runs plugin.sh with bash as nobody, in its folder, with params and environment', async () => {
    const dir = pluginFolder('env');
    const out = await runPluginProcess(options(dir, { args: ['a', 'b c'] }));
    assert.equal(out.failure, null);
    assert.equal(out.exitCode, 0);
    const [seen] = JSON.parse(out.stdout.toString()) as Array<{ fields: Record<string, unknown> }>;
    assert.deepEqual(seen?.fields, { uid: nobody().uid, cwd: dir, ns: 'demo.web', plugin: 'x', timeout: '5', args: 'a b c', home_set: false });
  });

  test('a hanging plugin is killed at the timeout with its grandchildren', async () => {
    const dir = pluginFolder('hang');
    const out = await runPluginProcess(options(dir, { timeoutMs: 800 }));
    // Ended by the deadline's SIGTERM, not by its own exit (it sleeps for 300 s).
    assert.equal(out.timedOut, true);
    assert.equal(out.signal, 'SIGTERM');
    assert.equal(out.exitCode, null);
    const pid = grandchildPid(out.stderrTail);
    await gone(pid);
  });

  test('a plugin that ignores SIGTERM gets SIGKILL after killGraceMs', async () => {
    const dir = scriptFolder('trap "" TERM\nsleep 300 &\necho "grandchild=$!" >&2\nsleep 300\n');
    const out = await runPluginProcess(options(dir, { timeoutMs: 500, killGraceMs: 400 }));
    // SIGTERM was ignored: only the escalation to SIGKILL can have ended it.
    assert.equal(out.timedOut, true);
    assert.equal(out.signal, 'SIGKILL');
    await gone(grandchildPid(out.stderrTail));
  });

  test('100 MB on stdout is capped: reading stops, the group is killed', async () => {
    const dir = pluginFolder('flood');
    const out = await runPluginProcess(options(dir, { maxOutputBytes: 1024 * 1024, timeoutMs: 30_000 }));
    // The cap ended the run (killed, not timed out, before its 100 MB were written).
    assert.equal(out.outputCapped, true);
    assert.equal(out.timedOut, false);
    assert.notEqual(out.signal, null);
    assert.equal(out.stdout.length, 1024 * 1024);
  });

  test('exit code and the tail of stderr are kept', async () => {
    const dir = pluginFolder('fail');
    const out = await runPluginProcess(options(dir, { stderrRingBytes: 16 }));
    assert.equal(out.exitCode, 3);
    assert.equal(out.stderrTail, 'cannot reach the database\n'.slice(-16));
  });

  test('what a plugin leaves running is killed when it exits, and does not hold the run open', async () => {
    const dir = scriptFolder('sleep 300 &\necho "grandchild=$!" >&2\necho "[]"\n');
    const out = await runPluginProcess(options(dir));
    assert.equal(out.exitCode, 0);
    assert.equal(out.stdout.toString().trim(), '[]');
    // A run held open by the grandchild's pipes would have ended at its 5 s timeout instead.
    assert.equal(out.timedOut, false, 'the run waited for the grandchild');
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
    const out = await runPluginProcess(options(path.join(rootDir(), 'no-such-folder')));
    assert.match(out.failure ?? '', /cannot start the plugin: .*ENOENT/);
    assert.equal(out.exitCode, null);
  });

  test('the working directory is entered before privileges drop: a closed parent folder does not stop the run', async () => {
    const closed = path.join(rootDir(), 'closed');
    mkdirSync(closed, { mode: 0o700 });
    const dir = path.join(closed, 'p');
    cpSync(fixtureDir('ok'), dir, { recursive: true });
    const out = await runPluginProcess(options(dir));
    assert.equal(out.failure, null);
    assert.equal(out.exitCode, 0, out.stderrTail);
  });
});
