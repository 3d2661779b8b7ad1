// The plugin launcher: real bash processes as `nobody`, started by the long-lived launcher
// process (started with execa), with every guarantee of a run: own group, deadline, caps; and a launcher
// that dies mid-run fails that run, kills its group, and is replaced on the next run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { createInterface } from 'node:readline';
import { PluginLauncher } from '../../src/plugins/launcher.ts';
import { runnerKit } from './runner-kit.ts';
import { waitUntil } from '../helpers/wait.ts';

const launcher = new PluginLauncher();
const { rootDir, nobody, fixtureDir, pluginFolder: folder, scriptFolder, options, gone, grandchildPid } = runnerKit('launcher');

/** The launcher processes whose parent is this test process. */
function launcherPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('launcher-child.mjs')) pids.push(Number(entry));
    } catch {
      // ended while read
    }
  }
  return pids;
}

describe('plugin launcher', () => {
  test('runs plugin.sh with bash as nobody, in its folder, with params and environment', async () => {
    const dir = folder('env');
    const out = await launcher.run(options(dir, { args: ['a', 'b c'] }));
    assert.equal(out.failure, null);
    assert.equal(out.exitCode, 0);
    const [seen] = JSON.parse(out.stdout.toString()) as Array<{ fields: Record<string, unknown> }>;
    assert.deepEqual(seen?.fields, { uid: nobody().uid, cwd: dir, ns: 'demo.web', plugin: 'x', timeout: '5', args: 'a b c', home_set: false });
    assert.ok(out.pid !== null && out.pid > 0);
  });

  test('a hanging plugin is killed at the timeout with its grandchildren', async () => {
    const out = await launcher.run(options(folder('hang'), { timeoutMs: 800 }));
    // Ended by the deadline's SIGTERM, not by its own exit (it sleeps for 300 s).
    assert.equal(out.timedOut, true);
    assert.equal(out.signal, 'SIGTERM');
    assert.equal(out.exitCode, null);
    await gone(grandchildPid(out.stderrTail));
  });

  test('the working directory is entered before privileges drop: a closed parent folder does not stop the run', async () => {
    const closed = path.join(rootDir(), 'closed');
    mkdirSync(closed, { mode: 0o700 });
    const dir = path.join(closed, 'p');
    cpSync(fixtureDir('ok'), dir, { recursive: true });
    const out = await launcher.run(options(dir));
    assert.equal(out.failure, null);
    assert.equal(out.exitCode, 0, out.stderrTail);
  });

  test('a plugin that ignores SIGTERM gets SIGKILL after killGraceMs, with its grandchild', async () => {
    const dir = scriptFolder('trap "" TERM\nsleep 300 &\necho "grandchild=$!" >&2\nsleep 300\n');
    const out = await launcher.run(options(dir, { timeoutMs: 500, killGraceMs: 400 }));
    assert.equal(out.timedOut, true);
    assert.equal(out.signal, 'SIGKILL');
    await gone(grandchildPid(out.stderrTail));
  });

  test('100 MB on stdout is capped: reading stops, the group is killed', async () => {
    const out = await launcher.run(options(folder('flood'), { timeoutMs: 30_000 }));
    assert.equal(out.outputCapped, true);
    assert.equal(out.timedOut, false);
    assert.equal(out.stdout.length, 1024 * 1024);
  });

  test('exit code and the tail of stderr are kept', async () => {
    const out = await launcher.run(options(folder('fail'), { stderrRingBytes: 16 }));
    assert.equal(out.exitCode, 3);
    assert.equal(out.stderrTail, 'cannot reach the database\n'.slice(-16));
  });

  test('what a plugin leaves running is killed when it exits', async () => {
    const out = await launcher.run(options(scriptFolder('sleep 300 &\necho "grandchild=$!" >&2\necho "[]"\n')));
    assert.equal(out.exitCode, 0);
    assert.equal(out.stdout.toString().trim(), '[]');
    await gone(grandchildPid(out.stderrTail));
  });

  test('an abort signal ends the run as a timeout does', async () => {
    const ac = new AbortController();
    const running = launcher.run(options(folder('hang'), { signal: ac.signal, timeoutMs: 60_000 }));
    setTimeout(() => ac.abort(), 200);
    const out = await running;
    assert.match(out.failure ?? '', /shutting down/);
    await gone(grandchildPid(out.stderrTail));
  });

  test('a missing plugin folder fails with the reason', async () => {
    const out = await launcher.run(options(path.join(rootDir(), 'no-such-folder')));
    assert.match(out.failure ?? '', /cannot start the plugin: .*ENOENT/);
    assert.equal(out.exitCode, null);
  });

  test('a deadline that passes while the pipes of an exited plugin drain does not make the run timed out', async () => {
    // The plugin exits at once; a child in its own session keeps stdout open past the deadline.
    const dir = scriptFolder('setsid sleep 2 &\necho "[]"\nexit 0\n');
    const out = await launcher.run(options(dir, { timeoutMs: 200 }));
    assert.equal(out.exitCode, 0, out.stderrTail);
    assert.equal(out.timedOut, false);
    assert.equal(out.failure, null);
  });

  test('runs at once share one launcher process', async () => {
    const outs = await Promise.all(Array.from({ length: 8 }, () => launcher.run(options(folder('ok')))));
    for (const out of outs) assert.equal(out.exitCode, 0, out.stderrTail);
    assert.equal(launcherPids().length, 1);
  });

  test('a launcher that dies mid-run: the run fails, its group is killed, the next run gets a new launcher', async () => {
    const dir = scriptFolder('sleep 300 &\necho "grandchild=$!" >&2\nsleep 300\n');
    const running = launcher.run(options(dir, { timeoutMs: 60_000 }));
    await waitUntil('the launcher', () => launcherPids().length === 1, { timeoutMs: 5000 });
    const first = launcherPids()[0] as number;
    const childrenOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
    // The run is under way once its bash has forked the sleep.
    await waitUntil('the plugin and its child', () => childrenOf(first).length === 1 && childrenOf(childrenOf(first)[0] as number).length > 0, { timeoutMs: 5000 });
    const plugin = childrenOf(first)[0] as number;
    const grandchild = childrenOf(plugin)[0] as number;
    // The agent learns the run's pid from the launcher's "started" line, which can trail /proc.
    await waitUntil('the agent to know the run', () => launcher.startedPids().includes(plugin), { timeoutMs: 5000 });
    process.kill(first, 'SIGKILL');
    const out = await running;
    assert.match(out.failure ?? '', /plugin launcher exited \(killed by SIGKILL\)/);
    assert.equal(out.pid, plugin);
    await gone(plugin);
    await gone(grandchild);
    const next = await launcher.run(options(folder('ok')));
    assert.equal(next.exitCode, 0, next.stderrTail);
    const pids = launcherPids();
    assert.equal(pids.length, 1);
    assert.notEqual(pids[0], first);
  });

  for (const how of ['stdin closed', 'SIGTERM'] as const) {
    test(`the launcher itself, when the agent is gone (${how}): kills the groups of its runs and exits`, async () => {
      const child = spawn(process.execPath, [new URL('../../src/plugins/launcher-child.mjs', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
      const exited = once(child, 'exit');
      const messages = createInterface({ input: child.stdout });
      const started = new Promise<number>((resolve) => messages.on('line', (l) => {
        const m = JSON.parse(l) as { started?: number };
        if (m.started) resolve(m.started);
      }));
      const dir = scriptFolder('sleep 300 &\nsleep 300\n');
      child.stdin.write(`${JSON.stringify({ op: 'run', id: 1, bash: 'bash', script: 'plugin.sh', args: [], dir, env: { PATH: process.env.PATH }, uid: nobody().uid, gid: nobody().gid, timeoutMs: 60_000, killGraceMs: 300, maxOutputBytes: 1024, stderrRingBytes: 1024 })}\n`);
      const pid = await started;
      const childrenOf = (p: number) => readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
      await waitUntil('the plugin to fork its sleep', () => childrenOf(pid).length > 0, { timeoutMs: 5000 });
      const grandchild = childrenOf(pid)[0] as number;
      if (how === 'SIGTERM') child.kill('SIGTERM');
      else child.stdin.end();
      await exited;
      await gone(pid);
      await gone(grandchild);
    });
  }
});
