// Fault suite: nsqd SIGKILLed at the worst moment. nsqd (run as the README advises:
// --mem-queue-size=0 --sync-every=1) is killed while it holds messages it took off its disk queue
// for the relay but had not yet written to it (its channel shows in_flight ≥ 1 and the relay has
// received fewer messages than nsqd handed out): those sit in nsqd's output buffer and die with
// it. With one replica that loss is possible (the relay asks for nsqd's shortest buffer, 25 ms,
// which shortens a message's wait there but, at this moment, did not measurably reduce the loss),
// so it is measured and printed; with two replicas every acknowledged point arrives, stored once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { nsqdStats, startInfluxd, stopAll, type InfluxdHandle, type NsqdChannelStats, type NsqdHandle } from '../helpers/servers.ts';
import { type AgentApi, agentConfig, arrivedCount, droppedCount, durableNsqd, freePort, points, report, settle, startAgent, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const BATCHES = 20;
const PER_BATCH = 100;
/** Posting goes on past BATCHES until the worst moment came, up to this many batches. */
const MAX_BATCHES = 200;
const ROUNDS_ONE_REPLICA = 8;
const ROUNDS_TWO_REPLICAS = 4;

let influxd: InfluxdHandle;

before(async () => {
  influxd = await startInfluxd();
});
after(stopAll);

function relayChannel(stats: Awaited<ReturnType<typeof nsqdStats>> | undefined, topic: string): NsqdChannelStats | undefined {
  return stats?.topics.find((t) => t.topic_name === topic)?.channels.find((c) => c.channel_name === 'relay');
}

interface Round {
  acked: number;
  unacked: number;
  killed: boolean;
  arrived: number;
}

/**
 * Posts BATCHES requests of PER_BATCH points while watching nsqd and the relay; SIGKILLs
 * `victim` the first time it holds messages the relay has not received, restarts it on the same
 * data, and waits until everything settled.
 */
async function round(api: AgentApi, nsqds: NsqdHandle[], victim: NsqdHandle, ns: string, caseTag: string): Promise<Round> {
  const topic = `ns.${ns}`;
  let killed = false;
  let posting = true;
  const watcher = (async () => {
    while (posting && !killed) {
      // nsqd first, the relay after: a relay count read later still behind nsqd's means nsqd
      // held messages it had taken for the relay and not delivered.
      const stats = await Promise.all(nsqds.map((n) => nsqdStats(n.httpAddress, topic).catch(() => undefined)));
      const status = await api.status();
      const received = Number(status.relay?.topics?.[topic]?.received ?? 0);
      let taken = 0;
      for (const s of stats) {
        const c = relayChannel(s, topic);
        if (c) taken += c.message_count - c.depth;
      }
      const victimChannel = relayChannel(stats[nsqds.indexOf(victim)], topic);
      if (victimChannel && victimChannel.in_flight_count >= 1 && received < taken) {
        await victim.kill();
        killed = true;
      }
    }
  })();
  let acked = 0;
  let unacked = 0;
  for (let i = 0; i < BATCHES || (!killed && i < MAX_BATCHES); i++) {
    let status = 0;
    try {
      status = (await api.post(ns, points(caseTag, i * PER_BATCH, PER_BATCH))).status;
    } catch {
      status = -1;
    }
    if (status === 200) acked += PER_BATCH;
    else unacked += PER_BATCH;
  }
  posting = false;
  await watcher;
  if (killed) await victim.restart();
  // Settled: nothing queued or in flight at any nsqd, in the relay or in the spool.
  await waitUntil(
    'nsqd, spool and relay idle',
    async () => {
      const st = await api.status();
      if (Number(st.publish?.spool?.bytes ?? 1) > 0 || Number(st.relay?.inFlight ?? 1) > 0) return false;
      for (const n of nsqds) {
        const c = relayChannel(await nsqdStats(n.httpAddress, topic).catch(() => undefined), topic);
        if (!c || c.depth > 0 || c.in_flight_count > 0 || c.deferred_count > 0) return false;
      }
      return true;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );
  const arrived = await settle(() => arrivedCount(influxd, ns, caseTag), acked, 5000);
  return { acked, unacked, killed, arrived };
}

interface CaseResult {
  sent: number;
  arrived: number;
  unacked: number;
  lostRounds: number;
  lostPoints: number;
  killedRounds: number;
}

async function runCase(name: string, replicas: number, rounds: number): Promise<{ result: CaseResult; dropped: number }> {
  const dir = tempDir(`fault-crash-r${replicas}`).dir;
  const nsqds = await Promise.all(Array.from({ length: replicas }, () => durableNsqd()));
  const namespaces = Array.from({ length: rounds }, (_, k) => `crash.r${replicas}_${k}`);
  const config = agentConfig({
    dir,
    httpPort: await freePort(),
    influxd,
    namespaces,
    extra: {
      nsq: {
        nsqdTcpAddresses: nsqds.map((n) => n.tcpAddress),
        replicas,
        reconnectMinMs: 50,
        reconnectMaxMs: 500,
        spool: { dir: `${dir}/spool` },
      },
      relay: { enabled: true, messageTimeoutMs: 3000, requeueMinMs: 200, requeueMaxMs: 2000, lookupdPollIntervalSec: 1, topicRefreshMs: 1000 },
    },
  });
  const agent = await startAgent(dir, config);
  const result: CaseResult = { sent: 0, arrived: 0, unacked: 0, lostRounds: 0, lostPoints: 0, killedRounds: 0 };
  try {
    for (const ns of namespaces) {
      await waitUntil(`relay subscribed to ns.${ns} on every nsqd`, async () => {
        const all = await Promise.all(nsqds.map((n) => nsqdStats(n.httpAddress, `ns.${ns}`)));
        return all.every((s) => (relayChannel(s, `ns.${ns}`)?.client_count ?? 0) > 0);
      });
    }
    for (const [k, ns] of namespaces.entries()) {
      // With two replicas, the nsqd killed alternates.
      const victim = nsqds[k % nsqds.length] as NsqdHandle;
      const r = await round(agent.api, nsqds, victim, ns, `crash${k}`);
      result.sent += r.acked;
      result.arrived += r.arrived;
      result.unacked += r.unacked;
      if (r.killed) result.killedRounds++;
      if (r.arrived < r.acked) {
        result.lostRounds++;
        result.lostPoints += r.acked - r.arrived;
      }
    }
    const dropped = await droppedCount(agent.api);
    report(name, { sent: result.sent, arrived: result.arrived, dropped, unacked: result.unacked }, `lost ${result.lostPoints} points in ${result.lostRounds}/${rounds} rounds; killed at the worst moment in ${result.killedRounds}/${rounds}`);
    return { result, dropped };
  } finally {
    await stopAgent(agent.run);
    await Promise.all(nsqds.map((n) => n.stop().catch(() => undefined)));
  }
}

test('nsqd SIGKILL at the worst moment, replicas 1: the loss left by the 25 ms output buffer is measured', { timeout: 600_000 }, async () => {
  const { result, dropped } = await runCase('nsqd SIGKILL at the worst moment, replicas 1', 1, ROUNDS_ONE_REPLICA);
  assert.ok(result.killedRounds > 0, 'nsqd was killed at the worst moment at least once');
  assert.equal(result.unacked, 0, 'every request was acknowledged (the spool took over)');
  assert.equal(dropped, 0, 'nothing counted dropped');
  // A point lost here is lost inside nsqd, which nothing in the agent can see: not asserted zero.
  assert.ok(result.arrived <= result.sent, `stored ${result.arrived} > acknowledged ${result.sent}: a point stored twice or unasked`);
});

test('nsqd SIGKILL at the worst moment, replicas 2: every acknowledged point arrives, stored once', { timeout: 600_000 }, async () => {
  const { result, dropped } = await runCase('nsqd SIGKILL at the worst moment, replicas 2', 2, ROUNDS_TWO_REPLICAS);
  assert.ok(result.killedRounds > 0, 'an nsqd was killed at the worst moment at least once');
  assert.equal(result.unacked, 0, 'every request was acknowledged');
  assert.equal(dropped, 0, 'nothing counted dropped');
  assert.equal(result.lostPoints, 0, `lost ${result.lostPoints} points in ${result.lostRounds} rounds`);
  assert.equal(result.arrived, result.sent, 'stored count equals the acknowledged count');
});
