// The whole pipeline as separate processes: a real agent (system collector, port and process
// checks, a git plugin, POST /post) publishing to a real nsqd, its relay writing to a real
// influxd, then `agent relay` draining what the agent published while it stopped. An "audit"
// channel, created on each topic before anything is published, receives a copy of every
// message, so the test knows exactly which points were sent and counts them in InfluxDB.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage } from '../../src/publish/envelope.ts';
import { topicFor } from '../../src/topic-names.ts';
import { databaseFor } from '../../src/sender/backend-client.ts';
import { minimalAgentConfig, runAgent, writeConfig } from '../helpers/agent-process.ts';
import { TestRepo } from '../plugins/helpers.ts';
import { createTopic, nsqdStats, readAll, startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';

const ALPHA = 'e2e.alpha';
const BETA = 'e2e beta ü'; // not a valid NSQ topic name: mapped on the way, exact in the data
const POSTED = 500;

let nsqd: NsqdHandle;
let influx: InfluxdHandle;
before(async () => {
  [nsqd, influx] = await Promise.all([startNsqd(), startInfluxd()]);
});
after(() => stopAll());

/** "measurement,tags fields ts" → "measurement,tags ts": one key per point InfluxDB stores. */
function pointKey(line: string): string {
  let i = 0;
  let spaces = 0;
  let inQuotes = false;
  let fieldsStart = -1;
  let fieldsEnd = -1;
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') i++;
    else if (c === '"' && spaces === 1) inQuotes = !inQuotes;
    else if (c === ' ' && !inQuotes) {
      spaces++;
      if (spaces === 1) fieldsStart = i;
      else if (spaces === 2) fieldsEnd = i;
    }
  }
  return line.slice(0, fieldsStart) + line.slice(fieldsEnd);
}

/** Distinct points per namespace in every message the audit channel received. */
async function auditedPoints(namespaces: string[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const ns of namespaces) {
    const messages = await readAll(nsqd, topicFor(ns), 'audit', { idleMs: 500 });
    const keys = new Set<string>();
    for (const m of messages) {
      const decoded = decodeMessage(m);
      assert.equal(decoded.namespace, ns, 'the message carries the exact namespace');
      for (const line of decoded.body.split('\n')) if (line) keys.add(pointKey(line));
    }
    out.set(ns, keys);
  }
  return out;
}

/** Distinct points stored in a database: per series, the largest per-field count. */
async function storedPoints(db: string): Promise<{ total: number; measurements: Set<string> }> {
  const res = await influx.query(db, 'SELECT count(*) FROM /.*/ GROUP BY *');
  let total = 0;
  const measurements = new Set<string>();
  for (const series of res.results[0]?.series ?? []) {
    measurements.add(series.name);
    const row = series.values[0] ?? [];
    total += Math.max(...row.slice(1).map((v) => (typeof v === 'number' ? v : 0)));
  }
  return { total, measurements };
}

test('agent → nsqd → relay → influxd: every point sent is counted in its namespace database', async () => {
  const { dir } = tempDir('e2e');
  const repo = new TestRepo(dir, 'e2e-plugin');
  repo.commit({
    'plugin.sh': '#!/bin/bash\necho "[{\\"name\\": \\"qps\\", \\"value\\": 12.5, \\"tags\\": {\\"api\\": \\"login\\"}}]"\n',
  });
  const registry = {
    hosts: {
      '*': {
        namespaces: [ALPHA, BETA],
        checks: { [ALPHA]: { ports: [{ port: nsqd.tcpPort, connect: true }], processes: [{ name: 'nsqd' }] } },
        plugins: { [ALPHA]: [{ repo: repo.url, interval: 1 }] },
      },
    },
  };
  // A channel gets only what is published after it exists: both are made before the agent runs.
  for (const ns of [ALPHA, BETA]) {
    await createTopic(nsqd.httpAddress, topicFor(ns), 'audit');
    await createTopic(nsqd.httpAddress, topicFor(ns), 'relay');
  }

  const { port, config: agentConfig } = await minimalAgentConfig(dir, {
    hostname: 'e2e-host',
    collect: { systemIntervalSec: 1, checksIntervalSec: 1 },
    plugins: { cacheDir: 'cache', allowLocalRepos: true },
    nsq: { nsqdTcpAddresses: [nsqd.tcpAddress] },
    // nsqd may hand one last message to a relay that is closing; it comes back after this.
    relay: { enabled: true, messageTimeoutMs: 5000 },
    sender: { backends: [{ name: 'influx', url: influx.url, api: 'v1' }], flushIntervalMs: 100 },
  }, registry);
  const config = writeConfig(dir, agentConfig);

  const agent = runAgent(['start', '-f', config]);
  await agent.waitFor(/agent started/);
  const metrics = Array.from({ length: POSTED }, (_, i) => ({ name: 'orders', tags: { shard: String(i) }, value: i }));
  const posted = await fetch(`http://127.0.0.1:${port}/post?ns=${encodeURIComponent(BETA)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(metrics),
  });
  assert.equal(posted.status, 200, await posted.clone().text());
  assert.equal(((await posted.json()) as { data: { accepted: number } }).data.accepted, POSTED);

  // Let the plugin and the collectors run a few times; the agent reports its runs.
  await waitUntil('three plugin runs and system collections', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/me/status`);
    const status = ((await res.json()) as { data: { scheduler: { namespaces: Record<string, { runs: number }> } } }).data;
    const ns = status.scheduler.namespaces;
    return (ns['*']?.runs ?? 0) >= 3 && (ns[ALPHA]?.runs ?? 0) >= 6 ? true : undefined;
  }, { timeoutMs: 30_000, everyMs: 200 });
  agent.child.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0, agent.output().slice(-3000));

  // What the agent published after its relay stopped waits in nsqd: a gateway relay drains it.
  const relay = runAgent(['relay', '-f', config]);
  await relay.waitFor(/agent started/);
  await waitUntil('the relay channel to drain', async () => {
    const stats = await nsqdStats(nsqd.httpAddress);
    const busy = stats.topics.some((t) =>
      t.channels.some((c) => c.channel_name === 'relay' && c.depth + c.in_flight_count + c.deferred_count > 0),
    );
    return busy ? undefined : true;
  }, { timeoutMs: 30_000, everyMs: 200 }).catch(async (err: Error) => {
    const stats = JSON.stringify((await nsqdStats(nsqd.httpAddress)).topics);
    throw new Error(`${err.message}; nsqd: ${stats}\nrelay output:\n${relay.output().slice(-3000)}`);
  });
  relay.child.kill('SIGTERM');
  assert.equal((await relay.exited).code, 0, relay.output().slice(-3000));

  const sent = await auditedPoints([ALPHA, BETA]);
  const alpha = await storedPoints(databaseFor(ALPHA));
  const beta = await storedPoints(databaseFor(BETA));
  assert.equal(alpha.total, sent.get(ALPHA)?.size, 'alpha: every point sent is stored');
  assert.equal(beta.total, sent.get(BETA)?.size, 'beta: every point sent is stored');

  for (const m of ['cpu', 'mem', 'system', 'net', 'processes']) {
    assert.ok(alpha.measurements.has(m) && beta.measurements.has(m), `system measurement ${m} in both namespaces`);
  }
  assert.ok(alpha.measurements.has('PLUGIN.e2e-plugin.qps'), [...alpha.measurements].join(' '));
  assert.ok(alpha.measurements.has('PLUGIN.e2e-plugin'), 'the run result point');
  assert.ok(alpha.measurements.has('port_check') && alpha.measurements.has('process_check'));
  const orders = await influx.query(databaseFor(BETA), 'SELECT count(value) FROM orders');
  assert.equal(orders.results[0]?.series?.[0]?.values[0]?.[1], POSTED, 'every posted point');
  const hosts = await influx.query(databaseFor(ALPHA), 'SHOW TAG VALUES FROM cpu WITH KEY = "host"');
  assert.deepEqual(hosts.results[0]?.series?.[0]?.values, [['host', 'e2e-host']]);
});
