// Fault suite, the services around the agent: InfluxDB down for a minute under steady traffic (NSQ
// holds the data, the relay pauses, nothing is dropped), and an HTTP registry that goes down and
// then answers garbage (the last good answer stays in force, also across an agent restart).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle } from '../helpers/servers.ts';
import { ControlledRegistry, HOSTNAME, agentConfig, arrivedCount, droppedCount, freePort, missingValues, postLoop, report, settle, startAgent, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let influxd: InfluxdHandle;

before(async () => {
  influxd = await startInfluxd();
});
after(stopAll);

// A minute, as an operator's maintenance window might be: backend marked down, relay paused,
// probes, resume, with ~30,000 points waiting in NSQ meanwhile.
const INFLUX_OUTAGE_MS = 60_000;

test('influxd down for a minute under steady traffic: NSQ holds it, all of it arrives, nothing dropped', { timeout: 240_000 }, async () => {
  const dir = tempDir('fault-influx').dir;
  const nsqd = await startNsqd();
  const ns = 'faults.influx_down';
  const agent = await startAgent(dir, agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [ns] }));
  try {
    // ~500 points/s.
    const loop = postLoop(agent.api, ns, 'influx', 25, 50);
    await waitUntil('first points written', async () => (await arrivedCount(influxd, ns, 'influx')) > 200);
    await influxd.kill();
    const downAt = Date.now();
    await waitUntil('backend marked down and the relay paused', async () => {
      const st = await agent.api.status();
      return st.sender?.backends?.influx?.state === 'down' && (st.relay?.paused ?? []).length > 0;
    }, { timeoutMs: 15_000, everyMs: 200 });
    let healthy = 0;
    while (Date.now() - downAt < INFLUX_OUTAGE_MS) {
      assert.ok(await agent.api.health(), '/health answers during the outage');
      healthy++;
      await delay(500);
    }
    const ackedDuringOutage = loop.totals.acked;
    await influxd.restart();
    await waitUntil('relay resumed', async () => ((await agent.api.status()).relay?.paused ?? []).length === 0, { timeoutMs: 20_000, everyMs: 200 });
    await delay(1000);
    await loop.stop();

    const sent = loop.totals.acked;
    const arrived = await settle(() => arrivedCount(influxd, ns, 'influx'), sent, 45_000);
    const dropped = await droppedCount(agent.api);
    report(`influxd down ${INFLUX_OUTAGE_MS / 1000} s`, { sent, arrived, dropped, unacked: loop.totals.unacked }, `acknowledged by the end of the outage ${ackedDuringOutage}, /health ok ${healthy}×`);
    assert.equal(loop.totals.unacked, 0, JSON.stringify(loop.totals.statuses));
    assert.equal(dropped, 0);
    assert.equal(arrived, sent);
  } finally {
    await stopAgent(agent.run);
  }
});

test('registry down, then answering garbage, then down across an agent restart: namespaces kept, traffic goes on', { timeout: 90_000 }, async () => {
  const dir = tempDir('fault-registry').dir;
  const nsqd = await startNsqd();
  const ns = 'faults.registry';
  const registry = new ControlledRegistry();
  registry.answer = { namespaces: [ns], checks: {}, plugins: {} };
  await registry.start();
  // Pushes to a namespace the registry does not list are refused (404): the test relies on that
  // to see whether the last good answer stayed in force.
  const config = agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, registryUrl: registry.url(), extra: { http: { allowAnyNamespace: false } } });
  let agent = await startAgent(dir, config);
  const pollErrors = async () => {
    const st = await agent.api.status();
    const pollers = Object.values((st.registry?.pollers ?? st.registry ?? {}) as Record<string, { lastError?: string | null }>);
    return pollers.filter((p) => p && typeof p === 'object' && p.lastError).length;
  };
  let loop = postLoop(agent.api, ns, 'registry', 20, 50);
  let sent = 0;
  let unacked = 0;
  const ranges: Array<[number, number]> = [];
  const statuses: Record<number, number> = {};
  const collect = async () => {
    await loop.stop();
    ranges.push([loop.totals.first, loop.totals.next]);
    sent += loop.totals.acked;
    unacked += loop.totals.unacked;
    for (const [s, c] of Object.entries(loop.totals.statuses)) statuses[Number(s)] = (statuses[Number(s)] ?? 0) + c;
  };
  try {
    await waitUntil('points accepted', () => loop.totals.acked >= 200);
    registry.mode = 'down';
    const before = registry.requests;
    await waitUntil('polls failed while down', async () => registry.requests >= before + 3 && (await pollErrors()) > 0, { timeoutMs: 15_000, everyMs: 200 });
    registry.mode = 'garbage';
    const before2 = registry.requests;
    await waitUntil('garbage answers polled', () => registry.requests >= before2 + 6, { timeoutMs: 15_000, everyMs: 200 });
    assert.ok(await agent.api.health());
    const me = await agent.api.get('/me/ns');
    assert.deepEqual(me.json.data.namespaces, [ns], 'the last good answer stays in force');

    // Restarted while the registry is down: the cached answer is used.
    registry.mode = 'down';
    await collect();
    await stopAgent(agent.run);
    agent = await startAgent(dir, config);
    const me2 = await agent.api.get('/me/ns');
    assert.deepEqual(me2.json.data.namespaces, [ns], 'the cached answer is used after a restart');
    loop = postLoop(agent.api, ns, 'registry', 20, 50, 1_000_000);
    await waitUntil('points accepted after the restart', () => loop.totals.acked >= 200);
    registry.mode = 'good';
    await collect();

    const arrived = await settle(() => arrivedCount(influxd, ns, 'registry'), sent, 30_000);
    const dropped = await droppedCount(agent.api);
    report('registry down + garbage', { sent, arrived, dropped, unacked }, `registry asked ${registry.requests}×, statuses ${JSON.stringify(statuses)}`);
    assert.equal(unacked, 0, JSON.stringify(statuses));
    assert.equal(dropped, 0);
    assert.equal(arrived, sent, await missingValues(influxd, ns, 'registry', ranges));
    assert.equal(HOSTNAME, (await agent.api.status()).hostname);
  } finally {
    await loop.stop();
    await stopAgent(agent.run);
    await registry.stop();
  }
});
