// The gateway of a data centre (`agent relay` as a process): it takes its clients' pushes
// (/post, Open-Falcon's /api/push) with the agent's guarantees, and two of them on one channel
// share the load so that one SIGKILLed mid-stream loses nothing (nsqd redelivers its unfinished
// messages after the message timeout). Each case prints sent / arrived / dropped.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { topicFor } from '../../src/topic-names.ts';
import { makeMessages, TestWriter } from '../relay/nsq-writer.ts';
import { AgentApi, agentConfig, arrivedCount, droppedCount, freePort, points, report, settle, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let nsqd: NsqdHandle;
let influx: InfluxdHandle;
const gateways: AgentRun[] = [];

before(async () => {
  [nsqd, influx] = await Promise.all([startNsqd(), startInfluxd({ version: '1.6' })]);
});
after(async () => {
  for (const g of gateways) await stopAgent(g);
  await stopAll();
});

interface Gateway {
  run: AgentRun;
  api: AgentApi;
}

/** `agent relay -f cfg` on the shared nsqd and influxd, consuming `namespaces` on channel "gateway". */
async function startGateway(name: string, namespaces: string[], extra: Record<string, Record<string, unknown>> = {}): Promise<Gateway> {
  const dir = tempDir(`gw-${name}`).dir;
  const httpPort = await freePort();
  const config = agentConfig({
    dir,
    httpPort,
    nsqd,
    influxd: influx,
    namespaces,
    extra: { relay: { channel: 'gateway', messageTimeoutMs: 2000 }, ...extra },
  });
  const run = runAgent(['relay', '-f', writeConfig(dir, { ...config, hostname: `gateway-${name}` })]);
  gateways.push(run);
  await run.waitFor(/agent started/, 30_000);
  return { run, api: new AgentApi(`http://127.0.0.1:${httpPort}`) };
}

async function relayReceived(api: AgentApi, topic: string): Promise<number> {
  const status = await api.status();
  return Number(status.relay?.topics?.[topic]?.received ?? 0);
}

describe('the gateway (agent relay) of a data centre', () => {
  test('serves /post, Open-Falcon /api/push and /health to the clients of its partition', async () => {
    const ns = 'dc2.push';
    const gw = await startGateway('push', [ns]);
    try {
      assert.equal(await gw.api.health(), true);
      const post = await gw.api.post(ns, points('gw-post', 0, 500));
      assert.equal(post.status, 200, post.body);

      const items = Array.from({ length: 300 }, (_, i) => ({
        metric: 'falcon.load',
        endpoint: `dc2-host-${i % 10}`,
        timestamp: 1_600_000_000 + i,
        step: 60,
        value: i,
        counterType: 'GAUGE',
        tags: 'idc=dc2',
      }));
      const push = await fetch(`${gw.api.base}/api/push?ns=${encodeURIComponent(ns)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(items),
      });
      assert.equal(push.status, 200, await push.text());

      const arrivedPost = await settle(() => arrivedCount(influx, ns, 'gw-post'), 500, 20_000);
      const arrivedPush = await settle(() => influx.count(ns, 'falcon.load').catch(() => 0), 300, 20_000);
      const dropped = await droppedCount(gw.api);
      report('gateway push', { sent: 800, arrived: arrivedPost + arrivedPush, dropped });
      assert.equal(arrivedPost, 500);
      assert.equal(arrivedPush, 300);
      assert.equal(dropped, 0);
      // Through its nsqd: the gateway's relay consumed what its publisher put on the topic.
      assert.ok((await relayReceived(gw.api, topicFor(ns, 'ns.'))) > 0);
    } finally {
      await stopAgent(gw.run);
    }
  });

  test('two gateways on one channel share the load; one SIGKILLed mid-stream loses nothing', async () => {
    const ns = 'dc2.ha';
    const topic = topicFor(ns, 'ns.');
    const [a, b] = [await startGateway('a', [ns]), await startGateway('b', [ns])];
    const total = 30_000;
    const messages = makeMessages(total, 50, { measurement: 'ha', series: 20 });
    const writer = new TestWriter(nsqd);
    const publishing = (async () => {
      for (let i = 0; i < messages.length; i += 20) {
        await writer.publish(topic, ns, messages.slice(i, i + 20));
        await delay(40);
      }
    })();
    try {
      // Both are taking messages before one dies.
      await waitUntil('both gateways received messages', async () => (await relayReceived(a.api, topic)) > 20 && (await relayReceived(b.api, topic)) > 20, { timeoutMs: 30_000 });
      a.run.child.kill('SIGKILL');
      await a.run.exited;
      await publishing;
      const arrived = await settle(() => influx.count(ns, 'ha').catch(() => 0), total, 60_000, 1000);
      const series = (await influx.query(ns, 'SHOW SERIES FROM "ha"')).results[0]?.series?.[0]?.values.length ?? 0;
      const dropped = await droppedCount(b.api);
      report('two gateways, one SIGKILLed', { sent: total, arrived, dropped }, `series ${series}`);
      assert.equal(arrived, total, 'every point published arrives once the survivor has the killed one\'s messages');
      assert.equal(series, 20, 'no point stored twice as another series');
      assert.equal(dropped, 0);
    } finally {
      writer.close();
      await stopAgent(b.run);
    }
  });
});
