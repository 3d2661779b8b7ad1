// Fault suite, shutdown under plugin load: SIGTERM reaches the real agent while a dozen git
// plugins are in the middle of a run that ends on its own shortly after. Those runs must be
// published (metrics and a result point saying success), not recorded as stopped: the plugins
// stop before the publisher and the sender, and wait for runs within plugins.stopGraceMs.
// The embedded default sink (line-protocol files under <dataDir>/lp) is read after the exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { agentConfig, freePort, pluginRepo, report, startAgent, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'faults.shutdown';
const PLUGINS = 12;

/** Every line the file sink wrote, across its rotated files. */
function sinkLines(dir: string): string[] {
  const lpDir = path.join(dir, 'data', 'lp');
  const lines: string[] = [];
  for (const f of readdirSync(lpDir)) lines.push(...readFileSync(path.join(lpDir, f), 'utf8').split('\n').filter((l) => l !== ''));
  return lines;
}

test('shutdown under plugin load: runs finishing during the stop are published as successes', { timeout: 120_000 }, async () => {
  const dir = tempDir('fault-shutdown').dir;
  // Two seconds of work, then the metric: at every moment about two thirds of them are running.
  const script = `#!/usr/bin/env bash\nsleep 2\necho '[{"name":"work","fields":{"value":1}}]'\n`;
  const repos = Array.from({ length: PLUGINS }, (_, i) => pluginRepo(dir, `p${i}`, script));
  const config = agentConfig({ dir, httpPort: await freePort(), namespaces: [NS] });
  const registryFile = (config.registry as { file: string }).file;
  writeFileSync(
    registryFile,
    JSON.stringify({ hosts: { '*': { namespaces: [NS], plugins: { [NS]: repos.map((repo) => ({ repo, interval: 3, timeout: 10 })) } } } }),
  );
  const agent = await startAgent(dir, config);
  // A status snapshot taken just before SIGTERM: runs finished + runs going = runs started so far.
  let atStop = { runs: 0, running: 0 };
  try {
    await waitUntil('every plugin has run once and several are running', async () => {
      const p = (await agent.api.status()).plugins as { runs: number; running: number };
      atStop = { runs: p.runs, running: p.running };
      return p.runs >= PLUGINS && p.running >= PLUGINS / 3;
    }, { timeoutMs: 60_000, everyMs: 50 });
  } finally {
    await stopAgent(agent.run);
  }
  const code = agent.run.child.exitCode;

  const lines = sinkLines(dir);
  const results = lines.filter((l) => /^PLUGIN\.p\d+,/.test(l));
  const metrics = lines.filter((l) => /^PLUGIN\.p\d+\.work,/.test(l));
  const failed = results.filter((l) => !/[ ,]success=(T|true)[, ]/.test(l));
  report('shutdown under plugin load', { sent: results.length, arrived: metrics.length, dropped: failed.length },
    `runs finished before SIGTERM ${atStop.runs}, running at SIGTERM ${atStop.running}`);
  assert.equal(code, 0, 'the agent exited cleanly');
  assert.deepEqual(failed.slice(0, 3), [], 'no run is recorded as failed or stopped');
  assert.ok(results.length >= atStop.runs + atStop.running, `every run started before SIGTERM has its result point (${results.length} < ${atStop.runs} + ${atStop.running})`);
  assert.equal(metrics.length, results.length, 'every run published its metric');
});
