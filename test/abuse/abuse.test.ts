// Abuse suite: one real agent (bin/agent) behind a real nsqd and influxd is fed hostile registry
// answers, ~20 s of garbage HTTP requests beside normal traffic, and hostile plugin output. It
// must stay up, answer /health throughout, keep publishing the normal traffic, and stay bounded
// in memory (its RSS is sampled all along; the peak is printed and checked against a generous bound).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { ControlledRegistry, agentConfig, arrivedCount, droppedCount, freePort, pluginRepo, postLoop, report, settle, startAgent, stopAgent, type RunningAgent } from '../faults/harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'abuse.plain';
// Valid namespaces that break NSQ's name rules: spaces, non-ASCII, '#', and 200 characters.
const NS_WEIRD = 'équipe A#ephemeral';
const NS_LONG = `long.${'x'.repeat(195)}`;
const NS_DOTS = '...';
const RSS_BOUND_MIB = 1024;

let influxd: InfluxdHandle;
let nsqd: NsqdHandle;
let agent: RunningAgent;
let dir: string;
let cacheDir: string;
const registry = new ControlledRegistry();
const repos: Record<string, string> = {};
let peakRssKb = 0;
let sampler: NodeJS.Timeout | undefined;

function sampleRss(): void {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.run.child.pid}/status`, 'utf8'));
    peakRssKb = Math.max(peakRssKb, Number(m?.[1] ?? 0));
  } catch {
    // Exited: the health checks will say so.
  }
}

before(async () => {
  [influxd, nsqd] = await Promise.all([startInfluxd(), startNsqd()]);
  await registry.start();
  dir = tempDir('abuse').dir;
  cacheDir = path.join(dir, 'cache');
  // Deep nesting (a million '[' then a million ']': valid JSON), a million metrics (~30 MB, past the 4 MiB output cap), 100,000
  // metrics (within it), invalid UTF-8 in names and tags.
  repos.deep = pluginRepo(dir, 'deep', `#!/usr/bin/env bash\nhead -c 1000000 /dev/zero | tr '\\0' '['\nhead -c 1000000 /dev/zero | tr '\\0' ']'\n`);
  repos.million = pluginRepo(dir, 'million', `#!/usr/bin/env bash\n/usr/bin/python3 -c "import sys; sys.stdout.write('[' + ','.join(['{\\"name\\":\\"m\\",\\"value\\":1}'] * 1000000) + ']')"\n`);
  repos.many = pluginRepo(dir, 'many', `#!/usr/bin/env bash\n/usr/bin/python3 -c "import sys; sys.stdout.write('[' + ','.join('{\\"name\\":\\"m\\",\\"tags\\":{\\"i\\":\\"%d\\"},\\"value\\":1}' % i for i in range(80000)) + ']')"\n`);
  repos.utf8 = pluginRepo(dir, 'utf8', `#!/usr/bin/env bash\nprintf '[{"name":"bad\\xff\\xfename","tags":{"t":"\\xc3\\x28"},"value":1},{"name":"ok","value":2}]'\n`);
  registry.answer = {
    namespaces: [NS, NS_WEIRD, NS_LONG, NS_DOTS],
    checks: {},
    plugins: {
      [NS]: Object.values(repos).map((repo) => ({ repo, interval: 0, timeout: 30 })),
      [NS_DOTS]: [{ repo: repos.utf8, interval: 0, timeout: 30 }],
    },
  };
  const config = agentConfig({
    dir,
    httpPort: await freePort(),
    nsqd,
    influxd,
    registryUrl: registry.url(),
    extra: {
      registry: { maxAnswerBytes: 1024 * 1024 },
      http: { allowAnyNamespace: false, maxBodyBytes: 1024 * 1024 },
      plugins: { cacheDir },
    },
  });
  agent = await startAgent(dir, config);
  sampler = setInterval(sampleRss, 100);
  await waitUntil('plugins cloned', async () => {
    const list = await agent.api.get('/plugins/list');
    const plugins = (list.json?.data ?? []) as Array<{ problem?: string | null }>;
    return plugins.length === 5 && plugins.every((p) => !p.problem);
  }, { timeoutMs: 30_000, everyMs: 200 });
});

after(async () => {
  clearInterval(sampler);
  if (agent) await stopAgent(agent.run);
  await registry.stop();
  await stopAll();
  process.stdout.write(`# [abuse] agent peak RSS ${Math.round(peakRssKb / 1024)} MiB (bound ${RSS_BOUND_MIB} MiB)\n`);
});

async function namespaces(): Promise<string[]> {
  return ((await agent.api.get('/me/ns')).json?.data?.namespaces ?? []) as string[];
}

test('hostile registry answers are refused whole; the last good answer stays; nothing escapes the plugins cache', { timeout: 120_000 }, async () => {
  const good = registry.answer.namespaces as string[];
  await waitUntil('good answer in force', async () => (await namespaces()).length === good.length);
  const huge = Array.from({ length: 20_001 }, (_, i) => `n${i}`);
  const hostile: Array<[string, string | Buffer]> = [
    ['20,001 namespaces', JSON.stringify({ namespaces: huge, checks: {}, plugins: {} })],
    ['2 MiB answer', JSON.stringify({ namespaces: [NS], pad: 'x'.repeat(2 * 1024 * 1024) })],
    ['wrong types', JSON.stringify({ namespaces: { a: 1 }, checks: [], plugins: 'all' })],
    ['null and numbers', JSON.stringify({ namespaces: [null, 5, true, NS], checks: { [NS]: { ports: [{ port: '80; rm -rf /' }] } }, plugins: {} })],
    ['path escapes', JSON.stringify({ namespaces: ['../../../tmp/escape', '..', '__proto__', 'a/b', 'c\\d'], checks: {}, plugins: {} })],
    ['plugin escapes', JSON.stringify({ namespaces: [NS], checks: {}, plugins: { [NS]: [
      { repo: '--upload-pack=touch /tmp/pwned', interval: 1 },
      { repo: 'ext::sh -c touch% /tmp/pwned', interval: 1 },
      { repo: 'https://example.com/../../x.git', interval: 1 },
      { builtin: '../../etc/passwd', interval: 1 },
    ] } })],
    ['deep nesting', '['.repeat(500_000)],
    ['prototype pollution', '{"namespaces":["p"],"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}'],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"namespaces":["'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"]}')])],
  ];
  const t0 = Date.now();
  for (const [what, body] of hostile) {
    registry.hostileBody = body;
    registry.mode = 'hostile';
    const seen = registry.requests;
    // Every poller (1 s interval) has asked at least once.
    await waitUntil(`${what} polled`, () => registry.requests >= seen + 4, { timeoutMs: 15_000, everyMs: 100 });
    assert.ok(await agent.api.health(), `alive after ${what}`);
    assert.deepEqual((await namespaces()).sort(), [...good].sort(), `the good answer stays after ${what}`);
  }
  registry.mode = 'good';
  const status = await agent.api.status();
  // Nothing outside the cache got a clone, and the cache holds only mapped folder names.
  const clones = findFiles(dir, 'plugin.sh').filter((f) => !f.includes(`${path.sep}work${path.sep}`));
  for (const f of clones) assert.ok(f.startsWith(cacheDir + path.sep), `clone outside the cache: ${f}`);
  for (const nsDir of readdirSync(cacheDir).filter((n) => !n.startsWith('.tmp'))) assert.match(nsDir, /^[A-Za-z0-9_%-][A-Za-z0-9_.%~-]*$/);
  const refused = await agent.api.metric('nsagent_registry_polls_total', { outcome: 'refused' });
  const failed = await agent.api.metric('nsagent_registry_polls_total', { outcome: 'failed' });
  report('hostile registry', { sent: hostile.length, arrived: 0, dropped: refused + failed }, `answers refused ${refused}, polls failed ${failed} in ${Math.round((Date.now() - t0) / 1000)} s; uptime ${status.uptimeSec} s`);
  assert.ok(refused + failed >= hostile.length);
  sampleRss();
  assert.ok(peakRssKb < RSS_BOUND_MIB * 1024, `peak RSS ${peakRssKb} kB`);
});

function findFiles(root: string, name: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (e === name) out.push(p);
    }
  };
  walk(root);
  return out;
}

/** One raw HTTP exchange on a socket (for what fetch refuses to send); errors are expected. */
function raw(port: number, payload: Buffer | string, holdMs = 0): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setTimeout(3000, () => sock.destroy());
    sock.on('error', () => resolve());
    sock.on('close', () => resolve());
    sock.on('data', () => {});
    sock.on('connect', () => {
      sock.write(payload);
      if (holdMs > 0) setTimeout(() => sock.destroy(), holdMs);
      else sock.end();
    });
  });
}

test('~20 s of garbage HTTP requests beside normal traffic: every normal point arrives, /health answers throughout', { timeout: 120_000 }, async () => {
  const port = Number(new URL(agent.api.base).port);
  const base = agent.api.base;
  // Made once: a 64 MiB gzipSync per request blocked this test's own event loop for up to seconds
  // on a loaded machine, so its /health probe timed out while the agent was answering.
  const gzipBomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
  const garbage: Array<() => Promise<unknown>> = [
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', body: '{"name": "x", "value": ' }),
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', body: '['.repeat(80_000) }),
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 0x61) }),
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: gzipBomb }),
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: Buffer.from('not gzip at all') }),
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', headers: { 'content-encoding': 'zstd' }, body: 'x' }),
    () => fetch(`${base}/post?ns=${NS}&precision=s`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'cpu,,=  value=\n\0\0\0 =,\\\n'.repeat(1000) }),
    () => fetch(`${base}/post?ns=${NS}`, { method: 'POST', body: Buffer.from([0x5b, 0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d, 0x5d]) }),
    () => fetch(`${base}/post?ns=unknown.namespace`, { method: 'POST', body: '[{"name":"x","value":1}]' }),
    () => fetch(`${base}/post?ns=${NS}&ns=${NS}`, { method: 'POST', body: '[]' }),
    () => fetch(`${base}/api/push?ns=${NS}`, { method: 'POST', body: JSON.stringify([{ metric: { $gt: 1 }, value: 'NaN', timestamp: -1, tags: 'a=b=c,,' }]) }),
    () => fetch(`${base}/log/offset?fpath=../../../etc/passwd&offset=-5&num=1e9`),
    () => fetch(`${base}/plugins/run?ns=${NS}&repo=${encodeURIComponent('--upload-pack=x')}&timeout=99999`),
    () => fetch(`${base}/${'a/'.repeat(4000)}?${'q=1&'.repeat(2000)}`),
    () => fetch(`${base}/me/status`, { method: 'DELETE' }),
    () => raw(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n' + 'X-Junk: y\r\n'.repeat(10_000) + '\r\n'),
    () => raw(port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])),
    () => raw(port, 'POST /post?ns=abuse.plain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n[{"name":', 1500),
    () => raw(port, 'POST /post?ns=abuse.plain HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n'),
    () => raw(port, 'GET /health HTTP/1.1\r\n', 2000),
  ];
  const counts = new Map<number, number>();
  let garbageSent = 0;
  let stopping = false;
  const attackers = Array.from({ length: 3 }, (_, w) =>
    (async () => {
      for (let i = w; !stopping; i++) {
        const send = garbage[i % garbage.length] as () => Promise<unknown>;
        try {
          const res = await send();
          if (res instanceof Response) {
            await res.arrayBuffer().catch(() => undefined);
            counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
          }
        } catch {
          counts.set(-1, (counts.get(-1) ?? 0) + 1);
        }
        garbageSent++;
      }
    })(),
  );
  const normal = postLoop(agent.api, NS, 'http', 20, 50);
  const weird = postLoop(agent.api, NS_WEIRD, 'http', 10, 100);
  const long = postLoop(agent.api, NS_LONG, 'http', 10, 100);
  let healthOk = 0;
  let healthFailed = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 20_000) {
    if (await agent.api.health(2000)) healthOk++;
    else healthFailed++;
    await delay(200);
  }
  stopping = true;
  await Promise.all([...attackers, normal.stop(), weird.stop(), long.stop()]);

  const loops: Array<[string, typeof normal]> = [[NS, normal], [NS_WEIRD, weird], [NS_LONG, long]];
  let sent = 0;
  let arrived = 0;
  let unacked = 0;
  for (const [ns, loop] of loops) {
    sent += loop.totals.acked;
    unacked += loop.totals.unacked;
    arrived += await settle(() => arrivedCount(influxd, ns, 'http'), loop.totals.acked, 30_000);
  }
  const dropped = await droppedCount(agent.api);
  sampleRss();
  report('hostile HTTP 20 s', { sent, arrived, dropped, unacked }, `garbage requests ${garbageSent} (statuses ${JSON.stringify(Object.fromEntries(counts))}), /health ok ${healthOk} failed ${healthFailed}, peak RSS ${Math.round(peakRssKb / 1024)} MiB`);
  assert.equal(healthFailed, 0, '/health answered throughout');
  assert.equal(unacked, 0, 'every normal request was acknowledged');
  assert.equal(dropped, 0);
  assert.equal(arrived, sent);
  assert.ok(garbageSent > 100, 'the garbage really flowed');
  assert.equal(counts.get(500) ?? 0, 0, 'no garbage request made the agent fail (500)');
  assert.ok(peakRssKb < RSS_BOUND_MIB * 1024, `peak RSS ${peakRssKb} kB`);
});

interface RunResult {
  success: boolean;
  error: string | null;
  metricCount: number;
  outputCapped?: boolean;
  timedOut: boolean;
}

async function runPlugin(ns: string, name: string): Promise<{ status: number; result: RunResult }> {
  const res = await agent.api.get(`/plugins/run?ns=${encodeURIComponent(ns)}&repo=${encodeURIComponent(repos[name] as string)}`, 60_000);
  return { status: res.status, result: res.json?.data as RunResult };
}

test('hostile plugin output: deep nesting, 10^6 metrics, 8×10^4 metrics, invalid UTF-8; the agent stays up and bounded', { timeout: 180_000 }, async () => {
  const published = () => agent.api.metric('nsagent_publish_published_lines_total');

  const deep = await runPlugin(NS, 'deep');
  assert.equal(deep.status, 200);
  assert.equal(deep.result.metricCount, 0, JSON.stringify(deep.result));
  assert.ok(await agent.api.health());

  const million = await runPlugin(NS, 'million');
  assert.equal(million.status, 200);
  assert.equal(million.result.success, false);
  assert.equal(million.result.outputCapped, true, JSON.stringify(million.result));
  assert.equal(million.result.metricCount, 0);
  assert.ok(await agent.api.health());

  const beforeMany = await published();
  const many = await runPlugin(NS, 'many');
  assert.equal(many.status, 200);
  assert.equal(many.result.success, true, JSON.stringify(many.result.error));
  assert.equal(many.result.metricCount, 80_000);
  // 80,000 metrics + 1 result point reach nsqd (published, possibly through the spool).
  await waitUntil('the 80,000 metrics published', async () => (await published()) - beforeMany >= 80_001, { timeoutMs: 30_000, everyMs: 200 });

  const utf8 = await runPlugin(NS_DOTS, 'utf8');
  assert.equal(utf8.status, 200);
  assert.ok(await agent.api.health());

  const arrivedMany = await settle(async () => {
    try {
      const r = await influxd.query(NS, 'SELECT count(value) FROM "PLUGIN.many.m"');
      const v = r.results[0]?.series?.[0]?.values[0]?.[1];
      return typeof v === 'number' ? v : 0;
    } catch {
      return 0;
    }
  }, 80_000, 60_000);
  const dropped = await droppedCount(agent.api);
  sampleRss();
  report('hostile plugin output', { sent: 80_000, arrived: arrivedMany, dropped }, `deep: success=${deep.result.success} error=${JSON.stringify(deep.result.error)}; 10^6: capped; utf8: success=${utf8.result.success} metrics=${utf8.result.metricCount}; peak RSS ${Math.round(peakRssKb / 1024)} MiB`);
  assert.equal(arrivedMany, 80_000);
  assert.equal(dropped, 0);
  assert.ok(peakRssKb < RSS_BOUND_MIB * 1024, `peak RSS ${peakRssKb} kB`);
});
