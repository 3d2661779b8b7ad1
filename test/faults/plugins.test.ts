// runs alone: a run must end within 2.5 s of its timeout, a bound sibling test files would break.
// Fault suite, the plugin side: git plugins that fork a swarm of children, eat memory, or close
// stdout and hang, run by the real agent (bin/agent) as the registry names them. Each must be
// ended at its timeout with its whole process group, the agent must keep answering meanwhile,
// and each run's result point must reach InfluxDB through NSQ and the relay.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { agentConfig, droppedCount, freePort, pluginRepo, report, settle, startAgent, stopAgent, type RunningAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'faults.plugins';
// A marker no other process on the machine carries, so /proc can be searched for the plugin's children.
const MARK = `${process.pid}${Date.now() % 100_000}`;

let influxd: InfluxdHandle;
let nsqd: NsqdHandle;
let agent: RunningAgent;
const repos: Record<string, string> = {};

interface ProcInfo {
  pid: number;
  cmdline: string;
  rssKb: number;
}

/** Processes whose command line holds `needle`. */
function findProcs(needle: string): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!cmdline.includes(needle)) continue;
      const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      found.push({ pid: Number(entry), cmdline, rssKb: Number(rss?.[1] ?? 0) });
    } catch {
      // The process ended while being read.
    }
  }
  return found;
}

before(async () => {
  [influxd, nsqd] = await Promise.all([startInfluxd(), startNsqd()]);
  const dir = tempDir('fault-plugins').dir;
  // A bounded swarm: 150 sleeps in the background, then the script itself waits on them.
  repos.swarm = pluginRepo(dir, 'swarm', `#!/usr/bin/env bash\nfor i in $(seq 1 150); do sleep 3600.${MARK}1 & done\nwait\n`);
  // ~300 MB touched (bytes of 1, not zero pages), then a hang.
  repos.hog = pluginRepo(dir, 'hog', `#!/usr/bin/env bash\nexec /usr/bin/python3 -c "import time; b = b'\\x01' * (300 * 1024 * 1024); time.sleep(3600)" ${MARK}2\n`);
  // stdout closed, then a hang (and a child that would outlive it).
  repos.mute = pluginRepo(dir, 'mute', `#!/usr/bin/env bash\nexec 1>&-\nsleep 3600.${MARK}3 &\nsleep 3600.${MARK}4\n`);
  const config = agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [NS] });
  const registry = JSON.parse(readFileSync((config.registry as { file: string }).file, 'utf8')) as { hosts: Record<string, Record<string, unknown>> };
  (registry.hosts['*'] as Record<string, unknown>).plugins = {
    [NS]: Object.values(repos).map((repo) => ({ repo, interval: 0, timeout: 3 })),
  };
  const { writeFileSync } = await import('node:fs');
  writeFileSync((config.registry as { file: string }).file, JSON.stringify(registry));
  agent = await startAgent(dir, config);
  await waitUntil('the three plugins cloned', async () => {
    const list = await agent.api.get(`/plugins/list?ns=${NS}`);
    const plugins = (list.json?.data ?? []) as Array<{ ready?: boolean; problem?: string | null; lastRun?: unknown; running?: boolean }>;
    return plugins.length === 3 && plugins.every((p) => !p.problem);
  }, { timeoutMs: 30_000, everyMs: 200 });
});

after(async () => {
  if (agent) await stopAgent(agent.run);
  await stopAll();
});

interface RunAnswer {
  status: number;
  result: { timedOut: boolean; success: boolean; error: string | null; durationMs: number; lines: string[] };
}

/** /plugins/run, while /health is asked every 100 ms; returns the answer and health's record. */
async function runWatched(name: string, watch?: () => void): Promise<{ answer: RunAnswer; healthOk: number; healthFailed: number }> {
  let healthOk = 0;
  let healthFailed = 0;
  let running = true;
  const prober = (async () => {
    while (running) {
      if (await agent.api.health(1000)) healthOk++;
      else healthFailed++;
      watch?.();
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const res = await agent.api.get(`/plugins/run?ns=${encodeURIComponent(NS)}&repo=${encodeURIComponent(repos[name] as string)}`);
  running = false;
  await prober;
  return { answer: { status: res.status, result: res.json?.data }, healthOk, healthFailed };
}

/** The run's result point arrived in InfluxDB with timed_out = true. */
async function resultPointsArrived(plugin: string): Promise<number> {
  return settle(async () => {
    try {
      const r = await influxd.query(NS, `SELECT count(duration_ms) FROM "PLUGIN.${plugin}" WHERE timed_out = true`);
      const v = r.results[0]?.series?.[0]?.values[0]?.[1];
      return typeof v === 'number' ? v : 0;
    } catch {
      return 0;
    }
  }, 1, 20_000);
}

async function checkCase(label: string, plugin: string, r: Awaited<ReturnType<typeof runWatched>>, extra: string): Promise<void> {
  const arrived = await resultPointsArrived(plugin);
  const dropped = await droppedCount(agent.api);
  report(label, { sent: 1, arrived, dropped }, `${extra}; /health ok ${r.healthOk}, failed ${r.healthFailed} during the run`);
  assert.equal(r.answer.status, 200);
  assert.equal(r.answer.result.timedOut, true, `timed out: ${JSON.stringify(r.answer.result)}`);
  assert.equal(r.answer.result.success, false);
  assert.ok(r.answer.result.durationMs < 3000 + 500 + 2000, `ended soon after its 3 s timeout: ${r.answer.result.durationMs} ms`);
  assert.equal(r.healthFailed, 0, '/health answered throughout');
  assert.ok(r.healthOk > 0);
  assert.equal(arrived, 1, 'the result point (timed_out) reached InfluxDB');
  assert.equal(dropped, 0);
}

test('a plugin spawning 150 children: all killed with its process group at the timeout', { timeout: 60_000 }, async () => {
  let peak = 0;
  const r = await runWatched('swarm', () => {
    peak = Math.max(peak, findProcs(`3600.${MARK}1`).length);
  });
  const left = findProcs(`3600.${MARK}1`);
  await checkCase('plugin swarm', 'swarm', r, `peak children ${peak}, left after the run ${left.length}`);
  assert.ok(peak >= 100, `the children really ran (peak ${peak})`);
  assert.deepEqual(left, [], 'no child outlived the run');
});

test('a plugin eating ~300 MB: killed at its timeout, memory given back', { timeout: 60_000 }, async () => {
  let peakKb = 0;
  const r = await runWatched('hog', () => {
    for (const p of findProcs(`${MARK}2`)) if (p.cmdline.includes('python3')) peakKb = Math.max(peakKb, p.rssKb);
  });
  const left = findProcs(`${MARK}2`).filter((p) => p.cmdline.includes('python3'));
  await checkCase('plugin memory hog', 'hog', r, `peak RSS ${Math.round(peakKb / 1024)} MiB, left ${left.length}`);
  assert.ok(peakKb > 200 * 1024, `it really held memory (peak ${peakKb} kB)`);
  assert.deepEqual(left, []);
});

test('a plugin closing stdout and hanging: not mistaken for finished, killed at its timeout with its child', { timeout: 60_000 }, async () => {
  const r = await runWatched('mute');
  const left = [...findProcs(`3600.${MARK}3`), ...findProcs(`3600.${MARK}4`)];
  await checkCase('plugin stdout closed + hang', 'mute', r, `left ${left.length}`);
  assert.deepEqual(left, []);
});
