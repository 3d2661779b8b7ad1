// Fault suite, points InfluxDB refuses after the agent acknowledged them, in one namespace beside
// a healthy one: 20,000 field-type conflicts, and a series flood past max-values-per-tag. The
// refused points are dead-lettered and counted (sent = arrived + dropped), found in a few
// requests per batch, warned about once per kind (not per point), and the healthy namespace's
// points all arrive meanwhile.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle } from '../helpers/servers.ts';
import { MEASUREMENT, agentConfig, arrivedCount, droppedCount, freePort, points, postLoop, report, settle, startAgent, stopAgent, type AgentApi } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

after(stopAll);

const BASE_TS = 1_600_000_000;
/** How long the healthy namespace's last points may take to arrive once posting stops. */
const HEALTHY_LIVENESS_MS = 30_000;
/**
 * A liveness bound, not a timing: 500 healthy points posted right after the refused namespace's
 * backlog must arrive within this, whatever that backlog (one refused line at a time, 20,000
 * points held the healthy namespace back about 30 s).
 */
const MARKER_LIVENESS_MS = 10_000;

/**
 * Posts 500 points to the healthy namespace and waits for them to be stored; returns how long
 * that took and how many points of the refused namespace were settled (stored or dead-lettered)
 * by then.
 */
async function healthyMarker(api: AgentApi, influxd: InfluxdHandle, ns: string, settledElsewhere: () => Promise<number>): Promise<{ ms: number; settledBefore: number }> {
  const start = Date.now();
  const r = await api.post(ns, points('marker', 0, 500));
  assert.equal(r.status, 200, r.body);
  await waitUntil('the healthy marker points stored', async () => (await arrivedCount(influxd, ns, 'marker')) === 500, { timeoutMs: MARKER_LIVENESS_MS, everyMs: 50 });
  return { ms: Date.now() - start, settledBefore: await settledElsewhere() };
}

/** Dead-lettered points per namespace, from the sender's dead-letter file. */
function deadLettered(dir: string): Map<string, number> {
  const counts = new Map<string, number>();
  let text = '';
  try {
    text = readFileSync(path.join(dir, 'data', 'deadletter', 'rejected-points.jsonl'), 'utf8');
  } catch {
    return counts;
  }
  // The agent may be mid-append: only lines that end in a newline are whole.
  for (const line of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
    if (line === '') continue;
    const ns = (JSON.parse(line) as { namespace: string }).namespace;
    counts.set(ns, (counts.get(ns) ?? 0) + 1);
  }
  return counts;
}

async function countWhere(influxd: InfluxdHandle, ns: string, measurement: string, where: string): Promise<number> {
  const r = await influxd.query(ns, `SELECT count(value) FROM "${measurement}" WHERE ${where}`);
  const v = r.results[0]?.series?.[0]?.values[0]?.[1];
  return typeof v === 'number' ? v : 0;
}

/** Posts `bodies` (one array of points each) with a few requests at a time; counts what was acknowledged. */
async function postBodies(api: AgentApi, ns: string, bodies: Array<Array<Record<string, unknown>>>, parallel = 4): Promise<{ acked: number; unacked: number }> {
  let next = 0;
  let acked = 0;
  let unacked = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++] as Array<Record<string, unknown>>;
        const status = await api.post(ns, body, 60_000).then((r) => r.status, () => -1);
        if (status === 200) acked += body.length;
        else unacked += body.length;
      }
    }),
  );
  return { acked, unacked };
}

function refusalWarnings(output: string): number {
  return output.split('\n').filter((l) => /backend refused (points|invalid lines)/.test(l)).length;
}

test('20,000 field-type conflicts in one namespace beside a healthy one: few requests, one warning, all counted, the healthy one arrives', { timeout: 240_000 }, async () => {
  const influxd = await startInfluxd();
  const nsqd = await startNsqd();
  const dir = tempDir('fault-refused').dir;
  const bad = 'faults.refused';
  const healthy = 'faults.healthy';
  // The conflict: the database holds "conflict".value as a string; the agent writes numbers.
  await influxd.createDatabase(bad);
  const seed = await fetch(`${influxd.url}/write?db=${bad}&precision=s`, { method: 'POST', body: `conflict,case=seed value="s" ${BASE_TS}` });
  assert.equal(seed.status, 204);
  const agent = await startAgent(dir, agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [bad, healthy] }));
  // Stopped in finally too, so a failed assertion does not leave it posting until the file times out.
  const loop = postLoop(agent.api, healthy, 'steady', 25, 50);
  try {
    await waitUntil('first healthy points written', async () => (await arrivedCount(influxd, healthy, 'steady')) > 100);
    // 50 bodies of 400 refused points and 40 good ones, interleaved.
    const bodies = Array.from({ length: 50 }, (_, b) =>
      Array.from({ length: 440 }, (_, k) => {
        const i = b * 440 + k;
        return k % 11 === 10
          ? { name: MEASUREMENT, timestamp: BASE_TS + i, tags: { case: 'good' }, value: i }
          : { name: 'conflict', timestamp: BASE_TS + i, tags: { case: 'bad' }, value: i + 0.5 };
      }),
    );
    const posted = await postBodies(agent.api, bad, bodies);
    const marker = await healthyMarker(agent.api, influxd, healthy, async () => deadLettered(dir).get(bad) ?? 0);
    const badSent = (posted.acked * 10) / 11;
    const goodSent = posted.acked / 11;
    await waitUntil('the refused points all dead-lettered', () => (deadLettered(dir).get(bad) ?? 0) >= badSent, { timeoutMs: 120_000, everyMs: 250 });
    await loop.stop();

    const healthySent = loop.totals.acked;
    const healthyArrived = await settle(() => arrivedCount(influxd, healthy, 'steady'), healthySent, HEALTHY_LIVENESS_MS);
    const goodArrived = await settle(() => countWhere(influxd, bad, MEASUREMENT, `"case"='good'`), goodSent, 30_000);
    const badArrived = await countWhere(influxd, bad, 'conflict', `"case"='bad'`);
    const dl = deadLettered(dir);
    const dropped = await droppedCount(agent.api);
    const backend = (await agent.api.status()).sender.backends.influx as { batches: number; bisectRequests: number };
    const warnings = refusalWarnings(agent.run.output());
    report('type conflicts beside a healthy namespace: refused one', { sent: posted.acked, arrived: goodArrived + badArrived, dropped: dl.get(bad) ?? 0, unacked: posted.unacked }, `${backend.bisectRequests} follow-up requests for ${backend.batches} batches, ${warnings} WARN lines`);
    report('type conflicts beside a healthy namespace: healthy one', { sent: healthySent, arrived: healthyArrived, dropped: dl.get(healthy) ?? 0, unacked: loop.totals.unacked }, `500 points posted after the refused backlog stored in ${marker.ms} ms, ${marker.settledBefore} refused points counted by then`);

    assert.equal(posted.unacked, 0);
    assert.equal(loop.totals.unacked, 0);
    assert.equal(healthyArrived, healthySent, 'every healthy point arrived');
    assert.equal(dl.get(healthy) ?? 0, 0);
    assert.equal(goodArrived, goodSent, 'the good points of the refused namespace arrived');
    assert.equal(badArrived, 0);
    assert.equal(dl.get(bad), badSent, 'each refused point dead-lettered once');
    assert.equal(goodArrived + badArrived + (dl.get(bad) ?? 0), posted.acked, 'sent = arrived + dropped');
    assert.equal(dropped, badSent, 'the drop counter counts exactly the refused points');
    // One line at a time took about two requests per refused point (40,000 here).
    assert.ok(backend.bisectRequests <= 4 * backend.batches, `${backend.bisectRequests} follow-up requests for ${backend.batches} batches`);
    assert.ok(warnings <= 5, `${warnings} refusal warnings`);
  } finally {
    await loop.stop();
    await stopAgent(agent.run);
  }
});

test('a series flood past max-values-per-tag in one namespace beside a healthy one: the healthy one all arrives, the refused are counted', { timeout: 240_000 }, async () => {
  const influxd = await startInfluxd({ maxValuesPerTag: 1000 });
  const nsqd = await startNsqd();
  const dir = tempDir('fault-tagflood').dir;
  const flood = 'faults.tagflood';
  const healthy = 'faults.healthy';
  const agent = await startAgent(dir, agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [flood, healthy] }));
  // Stopped in finally too, so a failed assertion does not leave it posting until the file times out.
  const loop = postLoop(agent.api, healthy, 'steady', 25, 50);
  try {
    await waitUntil('first healthy points written', async () => (await arrivedCount(influxd, healthy, 'steady')) > 100);
    // 20,000 points, each a new value of the tag "series": past the first thousand InfluxDB refuses them.
    const bodies = Array.from({ length: 50 }, (_, b) =>
      Array.from({ length: 400 }, (_, k) => {
        const i = b * 400 + k;
        return { name: 'flood', timestamp: BASE_TS + i, tags: { series: `s${i}` }, value: i };
      }),
    );
    const posted = await postBodies(agent.api, flood, bodies);
    const marker = await healthyMarker(agent.api, influxd, healthy, async () => (await countWhere(influxd, flood, 'flood', 'time > 0')) + (deadLettered(dir).get(flood) ?? 0));
    await waitUntil('every flood point stored or dead-lettered', async () => {
      const stored = await countWhere(influxd, flood, 'flood', 'time > 0');
      return stored + (deadLettered(dir).get(flood) ?? 0) >= posted.acked;
    }, { timeoutMs: 120_000, everyMs: 250 });
    await loop.stop();

    const healthySent = loop.totals.acked;
    const healthyArrived = await settle(() => arrivedCount(influxd, healthy, 'steady'), healthySent, HEALTHY_LIVENESS_MS);
    const floodArrived = await countWhere(influxd, flood, 'flood', 'time > 0');
    const dl = deadLettered(dir);
    const dropped = await droppedCount(agent.api);
    const backend = (await agent.api.status()).sender.backends.influx as { batches: number; bisectRequests: number };
    const warnings = refusalWarnings(agent.run.output());
    report('max-values-per-tag flood beside a healthy namespace: flood', { sent: posted.acked, arrived: floodArrived, dropped: dl.get(flood) ?? 0, unacked: posted.unacked }, `${backend.bisectRequests} follow-up requests for ${backend.batches} batches, ${warnings} WARN lines`);
    report('max-values-per-tag flood beside a healthy namespace: healthy one', { sent: healthySent, arrived: healthyArrived, dropped: dl.get(healthy) ?? 0, unacked: loop.totals.unacked }, `500 points posted after the flood stored in ${marker.ms} ms, ${marker.settledBefore} flood points settled by then`);

    assert.equal(posted.unacked, 0);
    assert.equal(loop.totals.unacked, 0);
    assert.equal(healthyArrived, healthySent, 'every healthy point arrived');
    assert.equal(dl.get(healthy) ?? 0, 0);
    assert.ok(floodArrived >= 1000 && floodArrived < posted.acked, `${floodArrived} flood points stored`);
    assert.equal(floodArrived + (dl.get(flood) ?? 0), posted.acked, 'sent = arrived + dropped');
    assert.equal(dropped, dl.get(flood), 'the drop counter counts exactly the refused points');
    assert.ok(warnings <= 5, `${warnings} refusal warnings`);
  } finally {
    await loop.stop();
    await stopAgent(agent.run);
  }
});
