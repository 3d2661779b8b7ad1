// runs alone: /health must answer within 1 s under attack, a bound sibling test files would break.
// One request must not freeze or bloat the agent. Against the real bin/agent: bodies of millions
// of bad line-protocol lines, and eight concurrent 16 MiB JSON arrays of numbers. Each must be
// answered 4xx (or 503 when the parse budget is spent), /health must keep answering within 1 s
// (the liveness bound) all along, and the agent's peak RSS (VmHWM) must stay under 600 MB.
// Also: what InfluxDB would refuse later is refused at ingest, per item, with the reason.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { agentConfig, freePort, sumMetric, startAgent, stopAgent, type RunningAgent } from '../faults/harness.ts';
import { healthWatch, request } from './http-client.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'bounds.ns';
const HEALTH_BOUND_MS = 1000;
const RSS_BOUND_MB = 600;
const started: RunningAgent[] = [];

async function agent(): Promise<{ a: RunningAgent; port: number }> {
  const dir = tempDir('bounds').dir;
  const port = await freePort();
  const a = await startAgent(dir, agentConfig({ dir, httpPort: port, namespaces: [NS] }));
  started.push(a);
  return { a, port };
}

after(async () => {
  for (const a of started) await stopAgent(a.run);
});

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

test('4 MiB and 16 MiB bodies of bad line-protocol lines: 400 with a bounded report; /health answers within 1 s throughout', { timeout: 300_000 }, async () => {
  const { port } = await agent();
  for (const mib of [4, 16]) {
    const body = Buffer.from('x\n'.repeat((mib * 1024 * 1024) / 2));
    const health = healthWatch(port);
    const r = await request(port, { method: 'POST', path: `/post?ns=${NS}`, headers: { 'content-type': 'text/plain' }, body, timeoutMs: 120_000 });
    const h = await health.stop();
    process.stdout.write(`# [bad lines ${mib} MiB] answered ${r.status} in ${Math.round(r.ms)} ms; /health max ${Math.round(h.maxMs)} ms over ${h.answered} checks\n`);
    assert.equal(r.status, 400, r.text.slice(0, 300));
    assert.match(r.json?.error ?? '', /^nothing was accepted: \d+ items rejected; the first \(index 0\): missing a field set/);
    assert.equal(r.json?.details.rejectedCount, body.length / 2);
    assert.equal(r.json?.details.rejected.length, 100, 'only the first 100 rejections are listed');
    assert.equal(h.failures, 0, '/health never failed');
    assert.ok(h.maxMs < HEALTH_BOUND_MS, `/health took ${Math.round(h.maxMs)} ms at worst`);
  }
});

test('8 concurrent 16 MiB JSON arrays of numbers: all refused (413, or 503 with Retry-After); peak RSS under 600 MB; /health within 1 s', { timeout: 300_000 }, async () => {
  const { a, port } = await agent();
  // One Buffer for all eight: encoding a 16 MiB string per request would stall this process's own /health polling.
  const body = Buffer.from(`[${'0,'.repeat(8 * 1024 * 1024 - 2)}0]`);
  assert.ok(body.length <= 16 * 1024 * 1024);
  const health = healthWatch(port);
  const answers = await Promise.all(
    Array.from({ length: 8 }, () => request(port, { method: 'POST', path: `/post?ns=${NS}`, headers: { 'content-type': 'application/json' }, body, timeoutMs: 120_000 })),
  );
  const h = await health.stop();
  const rss = peakRssMb(a.run.child.pid as number);
  const statuses = answers.map((x) => x.status);
  process.stdout.write(`# [8 x 16 MiB JSON] statuses ${statuses.join(',')}; slowest ${Math.round(Math.max(...answers.map((x) => x.ms)))} ms; /health max ${Math.round(h.maxMs)} ms; agent VmHWM ${Math.round(rss)} MB\n`);
  for (const x of answers) {
    assert.ok(x.status === 413 || x.status === 503, `${x.status} ${x.text.slice(0, 200)}`);
    if (x.status === 413) assert.match(x.json?.error ?? '', /more than 200000 items \(http\.maxPointsPerBody\)/);
    else {
      assert.match(x.json?.error ?? '', /http\.maxParsingBytes/);
      assert.equal(x.headers['retry-after'], '1');
    }
  }
  const busy = statuses.filter((s) => s === 503).length;
  const metrics = await (await fetch(`${a.api.base}/metrics`)).text();
  assert.equal(sumMetric(metrics, 'nsagent_http_refused_total', { reason: 'parse_budget' }), busy);
  assert.equal(sumMetric(metrics, 'nsagent_http_refused_total', { reason: 'too_many_points' }), 8 - busy);
  const status = await a.api.status();
  assert.equal(status.http.parsing.refused, busy);
  assert.equal(status.http.parsing.inUseBytes, 0, 'every reservation was given back');
  assert.equal(h.failures, 0);
  assert.ok(h.maxMs < HEALTH_BOUND_MS, `/health took ${Math.round(h.maxMs)} ms at worst`);
  assert.ok(rss < RSS_BOUND_MB, `agent VmHWM ${Math.round(rss)} MB`);
});

test('what InfluxDB always refuses is refused at ingest, per item, with the reason (JSON, line protocol, /api/push)', async () => {
  const { a, port } = await agent();
  const longTag = 'v'.repeat(70_000);
  const post = (path: string, body: string, type = 'application/json') =>
    request(port, { method: 'POST', path, headers: { 'content-type': type }, body });

  const json = await post(`/post?ns=${NS}`, JSON.stringify([
    { name: 'ok', value: 1, timestamp: 1_700_000_000 },
    { name: 'far', value: 1, timestamp: 9.3e9 },
    { name: 'farther', value: 1, timestamp: 5e10 },
    { name: 'long', value: 1, tags: { t: longTag } },
    { name: 'key', fields: { 'f\\ g': 1 } },
    { name: 'fixed-up', value: 1, timestamp: 1_700_000_000_000 },
  ]));
  assert.equal(json.status, 200, json.text.slice(0, 300));
  assert.equal(json.json?.data.accepted, 2, 'the good point and the milliseconds timestamp (replaced by now, as SPEC says)');
  const reasons = (json.json?.data.rejected as Array<{ index: number; reason: string }>).map((r) => `${r.index}: ${r.reason}`);
  assert.equal(reasons.length, 4, reasons.join('\n'));
  assert.match(reasons[0] as string, /^1: timestamp: 9300000000 s is beyond the 9223372036 s InfluxDB can store/);
  assert.match(reasons[1] as string, /^2: timestamp: 50000000000 s is beyond/);
  assert.match(reasons[2] as string, /^3: name and tags: the series key is 700\d\d bytes .* above the 65535/);
  assert.match(reasons[3] as string, /^4: fields\.f\\ g: key must not hold a backslash before a space/);

  const lp = await post(`/post?ns=${NS}&precision=s`, [
    'ok value=1 1700000000',
    'far value=1 9300000000',
    `long,t=${longTag} value=1`,
    'key f\\\\\\ g=1',
    'neg value=1 -9300000000',
  ].join('\n'), 'text/plain');
  assert.equal(lp.status, 200, lp.text.slice(0, 300));
  assert.equal(lp.json?.data.accepted, 1);
  const lpReasons = (lp.json?.data.rejected as Array<{ index: number; reason: string }>).map((r) => `${r.index}: ${r.reason}`);
  assert.deepEqual(lpReasons.map((r) => r.split(':')[0]), ['1', '2', '3', '4'], lpReasons.join('\n'));
  assert.match(lpReasons[0] as string, /timestamp "9300000000" at precision=s is 9300000000 s, beyond the ±9223372036 s/);
  assert.match(lpReasons[1] as string, /series key is 700\d\d bytes/);
  assert.match(lpReasons[2] as string, /backslash before a space/);
  assert.match(lpReasons[3] as string, /is -9300000000 s, beyond/);
  // Nanoseconds (the default precision) are cut to seconds first: int64's end is still taken.
  const ns = await post(`/post?ns=${NS}`, 'edge value=1 9223372036854775807\nover value=1 9223372037000000000', 'text/plain');
  assert.equal(ns.json?.data.accepted, 1, ns.text);
  assert.equal(ns.json?.data.rejected[0].index, 1);

  const push = await post(`/api/push?ns=${NS}`, JSON.stringify([
    { metric: 'ok', endpoint: 'h', timestamp: 1_700_000_000, step: 60, value: 1 },
    { metric: 'far', endpoint: 'h', timestamp: 5e10, step: 60, value: 1 },
    { metric: 'long', endpoint: 'h', value: 1, tags: `t=${longTag}` },
  ]));
  assert.equal(push.json?.data.accepted, 1, push.text.slice(0, 300));
  assert.deepEqual((push.json?.data.rejected as Array<{ index: number }>).map((r) => r.index), [1, 2]);
  const status = await a.api.status();
  // Line-protocol timestamps are refused by the parser (it knows the precision), the rest by the normaliser.
  assert.equal(status.points.rejected.bad_timestamp, 3);
  assert.equal(status.points.rejected.key_too_long, 3);
});
