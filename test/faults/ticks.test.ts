// Fault suite, scheduled runs under load: 100 cheap git plugins at 1 s in the real agent while
// /post keeps it busy. Every tick that came due must be accounted for in /me/status: run,
// skipped (by reason: overlap, missed, cloning, still_running, ...) or refused (no run slot),
// the counters adding up to the ticks due, and every tick counted as run a real plugin run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { writeFileSync } from 'node:fs';
import { agentConfig, freePort, pluginRepo, postLoop, report, startAgent, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import type { TickAccount } from '../../src/scheduler/scheduler.ts';

const NS = 'faults.ticks';
const PLUGINS = 100;


const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

test('100 plugins at 1 s under load: ran + skipped + refused + running = due', { timeout: 180_000 }, async () => {
  const dir = tempDir('fault-ticks').dir;
  const script = `#!/usr/bin/env bash\necho '[{"name":"tick","fields":{"value":1}}]'\n`;
  const repos = Array.from({ length: PLUGINS }, (_, i) => pluginRepo(dir, `t${i}`, script));
  const config = agentConfig({ dir, httpPort: await freePort(), namespaces: [NS] });
  writeFileSync(
    (config.registry as { file: string }).file,
    JSON.stringify({ hosts: { '*': { namespaces: [NS], plugins: { [NS]: repos.map((repo) => ({ repo, interval: 1, timeout: 5 })) } } } }),
  );
  const agent = await startAgent(dir, config);
  const loop = postLoop(agent.api, NS, 'ticks', 200);
  try {
    // The clones come in two at a time: their ticks fall in the count too, so it starts now.
    await waitUntil('every plugin cloned', async () => {
      const list = await agent.api.get(`/plugins/list?ns=${NS}`);
      const plugins = (list.json?.data ?? []) as Array<{ problem?: string | null }>;
      return plugins.length === PLUGINS && plugins.every((p) => !p.problem);
    }, { timeoutMs: 120_000, everyMs: 250 });
    await delay(8_000); // some seconds of steady running under load (not a timing assertion)
    const st = await agent.api.status();
    const t = st.scheduler.ticksByOwner.plugins as TickAccount;
    const plugins = st.plugins as { runs: number };
    report('100 plugins at 1 s under load', { sent: t.due, arrived: t.ran, dropped: sum(t.skipped) + sum(t.refused) },
      `running ${t.running}, skipped ${JSON.stringify(t.skipped)}, refused ${JSON.stringify(t.refused)}, failed ${t.failed}, posts acked ${loop.totals.acked}`);
    assert.ok(t.due > PLUGINS, `ticks came due: ${t.due}`);
    assert.equal(t.ran + sum(t.skipped) + sum(t.refused) + t.running, t.due, `every tick accounted for: ${JSON.stringify(t)}`);
    assert.equal(plugins.runs, t.ran, 'a tick counted as run is a real plugin run');
    assert.ok((await agent.api.metric('nsagent_scheduler_due_total', { owner: 'plugins' })) >= t.due);
  } finally {
    await loop.stop();
    await stopAgent(agent.run);
  }
});
