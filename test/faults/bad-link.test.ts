// A data centre on a bad link, for real: toxiproxy between the agents and their remote nsqd, and
// between the data centre's gateway (`agent relay`) and the central InfluxDB; both hops with TLS,
// the backend hop gzipped. Latency with jitter, a 1 MB/s cap, connections reset every few
// seconds, and a 60 s partition of both hops. Each case prints sent / arrived / dropped and
// asserts that nothing acknowledged is lost and nothing is stored twice as two series.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { makeTestCerts, type TestCerts } from '../helpers/certs.ts';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { startToxiproxy, type ToxiLink, type ToxiproxyHandle } from '../helpers/toxiproxy.ts';
import { AgentApi, MEASUREMENT, agentConfig, arrivedCount, droppedCount, freePort, missingValues, postAll, postLoop, report, settle, startAgent, stopAgent, type RunningAgent } from './harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'dc2.link';

let certs: TestCerts;
let nsqd: NsqdHandle;
let influx: InfluxdHandle;
let toxiproxy: ToxiproxyHandle;
/** agent → remote nsqd */
let toNsqd: ToxiLink;
/** gateway → central InfluxDB */
let toInflux: ToxiLink;
let agent: RunningAgent;
let gateway: { run: AgentRun; api: AgentApi };

before(async () => {
  certs = makeTestCerts();
  [nsqd, influx, toxiproxy] = await Promise.all([
    startNsqd({
      extraArgs: [`--tls-cert=${certs.serverCertFile}`, `--tls-key=${certs.serverKeyFile}`, '--tls-required=tcp-https'],
    }),
    startInfluxd({ version: '1.6', tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile } }),
    startToxiproxy(),
  ]);
  toNsqd = await toxiproxy.link('agent_to_nsqd', nsqd.tcpAddress);
  toInflux = await toxiproxy.link('gateway_to_influx', `127.0.0.1:${influx.port}`);

  const agentDir = tempDir('badlink-agent').dir;
  agent = await startAgent(
    agentDir,
    agentConfig({
      dir: agentDir,
      httpPort: await freePort(),
      nsqd,
      namespaces: [NS],
      extra: {
        nsq: { nsqdTcpAddresses: [toNsqd.listen], tls: { caFile: certs.caFile }, compression: 'deflate' },
        relay: { enabled: false },
      },
    }),
  );

  const gwDir = tempDir('badlink-gw').dir;
  const gwPort = await freePort();
  const gwConfig = agentConfig({
    dir: gwDir,
    httpPort: gwPort,
    nsqd,
    influxd: influx,
    namespaces: [NS],
    extra: {
      nsq: { tls: { caFile: certs.caFile } },
      relay: { channel: 'gateway', messageTimeoutMs: 5000 },
      sender: {
        backends: [{ name: 'central', url: `https://${toInflux.listen}`, tls: { caFile: certs.caFile }, timeoutMs: 3000 }],
        // A batch on a 1 MB/s link takes a while; keep requests small enough to finish in time.
        batchSize: 500,
      },
    },
  });
  const run = runAgent(['relay', '-f', writeConfig(gwDir, { ...gwConfig, hostname: 'gateway-dc2' })]);
  await run.waitFor(/agent started/, 30_000);
  gateway = { run, api: new AgentApi(`http://127.0.0.1:${gwPort}`) };
});

after(async () => {
  if (gateway) await stopAgent(gateway.run);
  if (agent) await stopAgent(agent.run);
  await toxiproxy?.stop();
  await stopAll();
});

function assertAlive(): void {
  for (const [name, run] of [['agent', agent.run], ['gateway', gateway.run]] as const) {
    if (run.child.exitCode !== null || run.child.signalCode !== null) {
      throw new Error(`the ${name} exited (${run.child.exitCode ?? run.child.signalCode}):\n${run.output().split('\n').slice(-30).join('\n')}`);
    }
  }
}

async function dropped(): Promise<number> {
  assertAlive();
  return (await droppedCount(agent.api)) + (await droppedCount(gateway.api));
}

async function seriesOf(caseTag: string): Promise<number> {
  const r = await influx.query(NS, `SHOW SERIES FROM "${MEASUREMENT}" WHERE "case"='${caseTag}'`);
  return r.results[0]?.series?.[0]?.values.length ?? 0;
}

/** Waits for every acknowledged point of a case, prints the line, checks the guarantees. */
async function verify(name: string, caseTag: string, sent: number, acked: number, droppedBefore: number, waitMs: number): Promise<void> {
  const arrived = await settle(() => arrivedCount(influx, NS, caseTag), acked, waitMs, 1000);
  const droppedNow = (await dropped()) - droppedBefore;
  const series = await seriesOf(caseTag);
  report(name, { sent, arrived, dropped: droppedNow, unacked: sent - acked }, `series ${series}`);
  const detail = arrived === acked ? '' : await missingValues(influx, NS, caseTag, [[0, sent]]);
  assert.equal(arrived, acked, `every acknowledged point arrives ${detail}`);
  assert.equal(droppedNow, 0, 'nothing dropped');
  assert.equal(series, 1, 'no point stored twice as another series');
}

describe('a data centre behind a bad link (toxiproxy, TLS both hops, gzip to InfluxDB)', () => {
  test('100 ms latency with 30 ms jitter on both hops', async () => {
    await toNsqd.latency(100, 30);
    await toInflux.latency(100, 30);
    try {
      const before = await dropped();
      const r = await postAll(agent.api, NS, 'latency', 0, 5000, 250);
      await verify('bad link: latency 100±30 ms', 'latency', 5000, r.acked, before, 60_000);
    } finally {
      await toNsqd.clear();
      await toInflux.clear();
    }
  });

  test('1 MB/s on both hops', async () => {
    await toNsqd.bandwidth(1024);
    await toInflux.bandwidth(1024);
    try {
      const before = await dropped();
      const r = await postAll(agent.api, NS, 'bandwidth', 0, 30_000, 1000);
      await verify('bad link: 1 MB/s', 'bandwidth', 30_000, r.acked, before, 90_000);
    } finally {
      await toNsqd.clear();
      await toInflux.clear();
    }
  });

  test('every connection on both hops reset 2 s after it starts carrying data', async () => {
    await toNsqd.resetPeer(2000);
    await toInflux.resetPeer(2000);
    const before = await dropped();
    const loop = postLoop(agent.api, NS, 'reset', 200, 50);
    try {
      await new Promise((resolve) => setTimeout(resolve, 10_000));
    } finally {
      await loop.stop();
      await toNsqd.clear();
      await toInflux.clear();
    }
    const sent = loop.totals.next;
    await verify('bad link: resets every 2 s', 'reset', sent, loop.totals.acked, before, 90_000);
  });

  test('a 60 s partition of both hops (a black hole, not a refusal), then healed', async () => {
    const before = await dropped();
    const loop = postLoop(agent.api, NS, 'partition', 200, 100);
    try {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await toNsqd.partition();
      await toInflux.partition();
      await new Promise((resolve) => setTimeout(resolve, 60_000));
      await toNsqd.heal();
      await toInflux.heal();
      await new Promise((resolve) => setTimeout(resolve, 2000));
    } finally {
      await loop.stop();
      await toNsqd.clear();
      await toInflux.clear();
    }
    await verify('bad link: 60 s partition', 'partition', loop.totals.next, loop.totals.acked, before, 120_000);
  });
});
