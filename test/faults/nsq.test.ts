// Fault suite, the NSQ side: the agent (bin/agent, a separate process) keeps taking POST /post
// while nsqd is SIGKILLed and restarted, while the agent itself is SIGKILLed and restarted, and
// while its spool is full. Every case sums what the API acknowledged, what reached InfluxDB and
// what the agent counted as dropped.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { nsqdStats, startInfluxd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { type AgentApi, agentConfig, arrivedCount, droppedCount, durableNsqd, freePort, postAll, postLoop, report, settle, startAgent, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let influxd: InfluxdHandle;

before(async () => {
  influxd = await startInfluxd();
});
after(stopAll);

async function diagnose(nsqd: NsqdHandle, ns: string, caseTag: string, api: AgentApi): Promise<string> {
  const stats = await nsqdStats(nsqd.httpAddress).catch((e: Error) => e.message);
  const r = await influxd.query(ns, `SELECT value FROM "fault" WHERE "case"='${caseTag}'`);
  const vals = (r.results[0]?.series?.[0]?.values ?? []).map((v) => Number(v[1])).sort((a, b) => a - b);
  const missing: number[] = [];
  for (let i = 0, j = 0; i <= (vals.at(-1) ?? 0); i++) { if (vals[j] === i) j++; else missing.push(i); }
  const status = await api.status();
  return JSON.stringify({ missing: missing.slice(0, 20), nmissing: missing.length, stats, publish: status.publish, relay: status.relay }, null, 1);
}

/** Both NSQ links of the agent are up (stopping nsqd while a client is mid-handshake can hang nsqd). */
async function nsqLinksUp(api: AgentApi, nsqd: NsqdHandle, topic: string): Promise<void> {
  await waitUntil('publisher ready and relay subscribed', async () => {
    const st = await api.status();
    const pubReady = (st.publish?.nsqd ?? []).some((n: { state: string }) => n.state === 'ready');
    const t = (await nsqdStats(nsqd.httpAddress, topic)).topics.find((x) => x.topic_name === topic);
    return pubReady && (t?.channels.some((c) => c.client_count > 0) ?? false);
  });
}

test('nsqd SIGKILLed and restarted under load: everything acknowledged arrives, nothing dropped', { timeout: 90_000 }, async () => {
  const dir = tempDir('fault-nsqd').dir;
  const nsqd = await durableNsqd();
  const ns = 'faults.nsqd_kill';
  // relay.maxInFlight 1: nsqd keeps a consumer's in-flight messages in memory only, and buffers
  // them up to 250 ms (--output-buffer-timeout) before they reach the socket, so a SIGKILLed
  // nsqd loses what it had in flight to the relay (measured: 2–4 messages at the default of
  // 200). At RDY 1 nsqd flushes each message at once, so that window closes; what is tested
  // here is the agent's side: publisher, spool and replay.
  const agent = await startAgent(dir, agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [ns], extra: { relay: { maxInFlight: 1 } } }));
  try {
    await nsqLinksUp(agent.api, nsqd, `ns.${ns}`);
    const loop = postLoop(agent.api, ns, 'nsqd', 50);
    await waitUntil('some points published', () => loop.totals.acked >= 500);
    await nsqd.kill();
    const ackedBeforeRestart = loop.totals.acked;
    // Keep posting while nsqd is gone: the spool takes it.
    await waitUntil('points acknowledged while nsqd is down', () => loop.totals.acked >= ackedBeforeRestart + 500);
    const spooled = await agent.api.metric('nsagent_publish_spooled_lines_total');
    await nsqd.restart();
    await waitUntil('points published after the restart', async () => (await agent.api.metric('nsagent_publish_replayed_lines_total')) >= spooled && loop.totals.acked >= ackedBeforeRestart + 1000, { timeoutMs: 30_000 });
    await loop.stop();

    const sent = loop.totals.acked;
    const arrived = await settle(() => arrivedCount(influxd, ns, 'nsqd'), sent, 30_000);
    const dropped = await droppedCount(agent.api);
    report('nsqd kill+restart', { sent, arrived, dropped, unacked: loop.totals.unacked }, `spooled ${spooled} lines while nsqd was down`);
    assert.ok(spooled > 0, 'the spool took points while nsqd was down');
    assert.equal(loop.totals.unacked, 0, `every request was acknowledged: ${JSON.stringify(loop.totals.statuses)}`);
    assert.equal(dropped, 0);
    assert.equal(arrived, sent, await diagnose(nsqd, ns, 'nsqd', agent.api));
    assert.ok(await agent.api.health());
  } finally {
    await stopAgent(agent.run);
  }
});

test('agent SIGKILLed mid-flow and restarted: nothing acknowledged is lost (spool and nsqd)', { timeout: 90_000 }, async () => {
  const dir = tempDir('fault-agentkill').dir;
  const nsqd = await durableNsqd();
  const ns = 'faults.agent_kill';
  const config = agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [ns] });
  let agent = await startAgent(dir, config);
  let sent = 0;
  let unacked = 0;
  try {
    await nsqLinksUp(agent.api, nsqd, `ns.${ns}`);
    // Round 1: posting while nsqd is down, so acknowledged points sit in the spool only.
    await nsqd.stop();
    const loop = postLoop(agent.api, ns, 'agentkill', 40);
    await waitUntil('points spooled', async () => (await agent.api.metric('nsagent_publish_spooled_lines_total')) >= 400);
    agent.run.child.kill('SIGKILL');
    await agent.run.exited;
    await loop.stop();
    sent += loop.totals.acked;
    unacked += loop.totals.unacked;

    // Round 2: nsqd back, the agent restarted on the same spool replays it; kill it again
    // while it publishes.
    await nsqd.restart();
    agent = await startAgent(dir, config);
    const loop2 = postLoop(agent.api, ns, 'agentkill', 40, 0, 1_000_000);
    await waitUntil('round 2 publishing', () => loop2.totals.acked >= 400);
    agent.run.child.kill('SIGKILL');
    await agent.run.exited;
    await loop2.stop();
    sent += loop2.totals.acked;
    unacked += loop2.totals.unacked;

    // Round 3: a clean run drains whatever is left.
    agent = await startAgent(dir, config);
    const arrived = await settle(() => arrivedCount(influxd, ns, 'agentkill'), sent, 30_000);
    const dropped = await droppedCount(agent.api);
    // Requests cut by the kill were never answered: what of them reached nsqd may arrive too.
    report('agent SIGKILL+restart', { sent, arrived, dropped, unacked }, 'arrived may exceed sent by unanswered requests');
    assert.equal(dropped, 0);
    assert.ok(arrived >= sent, `acknowledged ${sent}, arrived ${arrived}`);
    assert.ok(arrived <= sent + unacked, `arrived ${arrived} > sent ${sent} + unanswered ${unacked}`);
  } finally {
    await stopAgent(agent.run);
  }
});

test('spool full while nsqd is down: refused requests get 503, counted as dropped; the rest arrives', { timeout: 90_000 }, async () => {
  const dir = tempDir('fault-spoolfull').dir;
  const nsqd = await durableNsqd();
  const ns = 'faults.spool_full';
  const maxBytes = 64 * 1024;
  const config = agentConfig({ dir, httpPort: await freePort(), nsqd, influxd, namespaces: [ns], extra: { nsq: { spool: { maxBytes, segmentBytes: 64 * 1024 } } } });
  const agent = await startAgent(dir, config);
  try {
    await nsqLinksUp(agent.api, nsqd, `ns.${ns}`);
    await nsqd.stop();
    // Each point is ~70 bytes of line protocol: 3000 points is about 3× the spool.
    const r = await postAll(agent.api, ns, 'spool', 0, 3000, 100);
    await nsqd.restart();
    const arrivedRead = () => arrivedCount(influxd, ns, 'spool');
    const dropped = await droppedCount(agent.api);
    const spoolDropped = await agent.api.metric('nsagent_publish_dropped_lines_total', { reason: 'spool_full' });
    // Every point either arrived or was counted dropped.
    const arrived = await settle(arrivedRead, 3000 - dropped, 30_000);
    report('spool full', { sent: r.acked, arrived, dropped, unacked: r.unacked }, `statuses ${JSON.stringify(r.statuses)}`);
    assert.ok(r.statuses[503], 'some requests were refused with 503');
    assert.ok(r.acked > 0, 'the spool took some');
    assert.equal(dropped, spoolDropped, 'drops are all spool_full');
    assert.ok(arrived >= r.acked, 'everything acknowledged arrived');
    assert.equal(arrived + dropped, 3000, 'sent + unacknowledged = arrived + dropped');
    // After the outage the agent takes points again.
    const again = await postAll(agent.api, ns, 'spool', 10_000, 100, 100);
    assert.equal(again.acked, 100);
    assert.equal(await settle(arrivedRead, 3100 - dropped, 20_000), 3100 - dropped);
  } finally {
    await stopAgent(agent.run);
  }
});
