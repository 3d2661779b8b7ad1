// The short soak (about 80 s): the whole pipeline in a real agent process under steady POST
// load. Nothing acknowledged may be lost on the way through NSQ, the relay and InfluxDB, every
// plugin and check must keep producing, and RSS must not keep growing after warm-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from './harness.ts';

const MiB = 2 ** 20;

test('short soak: full pipeline under steady load loses nothing and does not grow', { timeout: 240_000 }, async () => {
  const r = await runSoak({
    durationMs: 75_000,
    warmupMs: 25_000,
    sampleEveryMs: 5000,
    postsPerSec: 20,
    pointsPerPost: 25,
    pluginIntervalSec: 3,
  });
  const context = JSON.stringify({ ...r, samples: r.samples.map((s) => [s.tSec, Math.round(s.rssBytes / MiB)]) });

  assert.equal(r.postsFailed, 0, `every POST /post is acknowledged: ${context}`);
  assert.ok(r.pointsPosted >= 30_000, `the load ran (posted ${r.pointsPosted})`);
  assert.equal(r.pointsStored, r.pointsPosted, 'points counted in InfluxDB = points acknowledged');

  // Git plugins every 3 s and built-ins every 6 s over ~75 s: each ran many times, all fine.
  for (const name of ['PLUGIN.soak_counter', 'PLUGIN.soak_procs', 'PLUGIN.http_probe', 'PLUGIN.tcp_probe']) {
    const runs = r.pluginRuns[name];
    assert.ok(runs && runs.runs >= 5, `${name} ran repeatedly: ${JSON.stringify(r.pluginRuns)}`);
    assert.equal(runs.ok, runs.runs, `${name}: every run succeeded`);
  }
  assert.ok(r.checkPoints >= 6 * 20, `port and process checks kept coming (${r.checkPoints} points)`);

  // Generous, as a one-minute window is noisy (GC timing alone moves RSS by ~10 MiB); a leak of
  // 3 KiB per point at this rate (500 points/s, ~45 s between the windows) exceeds it.
  // `npm run soak` gives the real slope.
  const growth = r.lastWindow.rssMedianBytes - r.firstWindow.rssMedianBytes;
  assert.ok(growth < 48 * MiB, `RSS grew ${(growth / MiB).toFixed(1)} MiB after warm-up: ${context}`);
  assert.ok(r.rssPeakBytes < 400 * MiB, `RSS peak ${(r.rssPeakBytes / MiB).toFixed(0)} MiB`);
  assert.equal(r.agentExitCode, 0, 'SIGTERM stops the agent cleanly');
});
