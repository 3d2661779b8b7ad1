// The relay end to end with a VictoriaMetrics backend: messages on namespace topics in nsqd →
// relay → gateway sender → victoria-metrics, read back with /api/v1/export: every point sent is
// there once, in its namespace's `db` label, with its tags, its timestamp and each field's value.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { relaySchema, senderSchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { topicFor } from '../../src/topic-names.ts';
import { createRelay } from '../../src/relay/relay.ts';
import type { NamespaceSource } from '../../src/relay/topic-source.ts';
import { InfluxGatewaySender } from '../../src/sender/gateway-sender.ts';
import { waitUntil } from '../helpers/wait.ts';
import { startNsqd, startVictoriaMetrics, stopAll, topicDepth, type NsqdHandle, type VictoriaMetricsHandle, type VmSeries } from '../helpers/servers.ts';
import { TestWriter } from './nsq-writer.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let nsqd: NsqdHandle;
let vm: VictoriaMetricsHandle;
let writer: TestWriter;
const running: Array<{ stop(): Promise<void> }> = [];

before(async () => {
  [nsqd, vm] = await Promise.all([startNsqd(), startVictoriaMetrics()]);
  writer = new TestWriter(nsqd);
});
after(async () => {
  for (const r of running.reverse()) await r.stop();
  writer.close();
  await stopAll();
});

const T0 = 1_600_000_000;

/** Points with two tags and a float, an integer and a boolean field; one timestamp per point. */
function messages(count: number, perMessage: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < count; i += perMessage) {
    const lines: string[] = [];
    for (let n = i; n < Math.min(count, i + perMessage); n++) {
      lines.push(`disk,dev=sd${n % 7},mount=/data${n % 3} used=${n + 0.5},inodes=${n * 3}i,ro=${n % 2 === 0 ? 'true' : 'false'} ${T0 + n}`);
    }
    out.push(lines);
  }
  return out;
}

/** Every sample VictoriaMetrics should hold for those points: series name + labels + ms → value. */
function expectedSamples(namespace: string, count: number): Map<string, number> {
  const want = new Map<string, number>();
  for (let n = 0; n < count; n++) {
    const labels = { db: namespace, dev: `sd${n % 7}`, mount: `/data${n % 3}` };
    const ms = (T0 + n) * 1000;
    want.set(sampleKey('disk_used', labels, ms), n + 0.5);
    want.set(sampleKey('disk_inodes', labels, ms), n * 3);
    want.set(sampleKey('disk_ro', labels, ms), n % 2 === 0 ? 1 : 0);
  }
  return want;
}

function sampleKey(name: string, labels: Record<string, string>, ms: number): string {
  const sorted = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1));
  return `${name}{${sorted.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}} @${ms}`;
}

function samplesOf(series: VmSeries[]): { samples: Map<string, number>; total: number } {
  const samples = new Map<string, number>();
  let total = 0;
  for (const { metric, values, timestamps } of series) {
    const { __name__: name = '', ...labels } = metric;
    timestamps.forEach((ms, i) => samples.set(sampleKey(name, labels, ms), values[i] as number));
    total += timestamps.length;
  }
  return { samples, total };
}

void test('two namespace topics → relay → victoria-metrics: every point arrives once, with its db label, tags and values', { timeout: 60_000 }, async () => {
  const namespaces = ['vm.alpha', 'team/beta gamma'];
  const source: NamespaceSource = { current: () => namespaces, onChange: () => undefined };
  const deadLetterDir = tempDir('relay-vm').dir;
  const senderCfg = senderSchema.parse({
    backends: [{ name: 'vm', kind: 'victoriametrics', url: vm.url }],
    flushIntervalMs: 50,
    retryMinMs: 50,
    retryMaxMs: 400,
  });
  const sender = new InfluxGatewaySender({ config: { ...senderCfg, deadLetterDir }, logger: silentLogger() });
  const relay = createRelay(
    {
      relay: relaySchema.parse({ channel: 'relay', topicRefreshMs: 200, requeueMinMs: 100, requeueMaxMs: 1000 }),
      nsq: { nsqdTcpAddresses: [nsqd.tcpAddress], topicPrefix: 'ns.' },
      sender: { deadLetterDir, deadLetterMaxFileBytes: 1024 * 1024 },
    },
    { sender, namespaces: source, logger: silentLogger() },
  );
  await sender.start();
  await relay.start();
  running.push(sender, relay);

  const counts = [6_000, 3_500];
  const topics = namespaces.map((n) => topicFor(n, 'ns.'));
  await Promise.all(namespaces.map((n, i) => writer.publish(topics[i] as string, n, messages(counts[i] as number, 50))));
  // A message is finished only once the sender's write of its lines resolved: stored by then.
  await waitUntil('all 190 messages finished', () => relay.status().finished === 190, { timeoutMs: 30_000 });
  for (const topic of topics) assert.equal(await topicDepth(nsqd.httpAddress, topic, 'relay'), 0);
  const st = relay.status();
  assert.equal(st.pointsWritten, 9_500);
  assert.equal(st.requeued, 0);

  for (const [i, namespace] of namespaces.entries()) {
    const count = counts[i] as number;
    const series = await vm.exportSeries(`{db=${JSON.stringify(namespace)}}`);
    const { samples, total } = samplesOf(series);
    // 7 devs x 3 mounts share 21 tag sets, each carrying three fields.
    assert.equal(series.length, 3 * 21, `${namespace}: series`);
    assert.equal(total, 3 * count, `${namespace}: samples (a point stored twice would count twice)`);
    assert.deepEqual(samples, expectedSamples(namespace, count), namespace);
  }
});
