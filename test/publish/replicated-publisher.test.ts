// ReplicatedPublisher (nsq.replicas 2) against two real nsqd: every batch reaches both; with one
// nsqd down the batches are acknowledged from its replica's own spool and replayed to that nsqd
// when it is back, never to the other one.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/log/logger.ts';
import { decodeMessage } from '../../src/publish/envelope.ts';
import { mergeSpoolStatus, ReplicatedPublisher, replicaSpoolDir } from '../../src/publish/replicated-publisher.ts';
import type { SpoolStatus } from '../../src/publish/spool.ts';
import { topicFor } from '../../src/topic-names.ts';
import { readAll, startNsqd, stopAll, type NsqdHandle } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dirs: string[] = [];
const publishers: ReplicatedPublisher[] = [];
after(async () => {
  await Promise.allSettled(publishers.map((p) => p.stop()));
  await stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let prefixes = 0;
function makePublisher(nsqds: NsqdHandle[]) {
  const dir = tempDir('replicated-test-').dir;
  dirs.push(dir);
  const metrics = new Registry();
  const publisher = new ReplicatedPublisher({
    nsqdTcpAddresses: nsqds.map((n) => n.tcpAddress),
    replicas: 2,
    topicPrefix: `r${++prefixes}.`,
    maxMessageBytes: 256 * 1024,
    maxMpubBytes: 1024 * 1024,
    lingerMs: 5,
    maxInFlightBatches: 8,
    reconnectMinMs: 50,
    reconnectMaxMs: 400,
    spool: { dir, maxBytes: 64 * 1024 * 1024, maxAgeSec: 3600, commitIntervalMs: 5, segmentBytes: 1024 * 1024 },
    metrics,
    logger: silentLogger(),
    connectWaitMs: 3000,
    publishTimeoutMs: 5000,
    stopTimeoutMs: 5000,
  });
  publishers.push(publisher);
  return { publisher, dir, metrics };
}

async function linesAt(nsqd: NsqdHandle, topic: string): Promise<string[]> {
  const bodies = await readAll(nsqd, topic, 'test', { idleMs: 300, timeoutMs: 30_000 });
  return bodies.flatMap((b) => decodeMessage(b).body.split('\n'));
}

function lines(from: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `rep v=${from + i} ${1_600_000_000 + from + i}`);
}

test('replicas 2: each batch reaches both nsqd; a down nsqd gets its copies from its own spool when back', { timeout: 90_000 }, async () => {
  const [a, b] = await Promise.all([startNsqd(), startNsqd()]);
  const { publisher, dir, metrics } = makePublisher([a, b]);
  await publisher.start();
  const ns = 'rep.both';
  const topic = topicFor(ns, publisher.status().topicPrefix);

  for (let i = 0; i < 10; i++) await publisher.publish(ns, lines(i * 100, 100));
  await b.stop();
  // Acknowledged with B down: A has them, B's replica spooled them.
  for (let i = 10; i < 20; i++) await publisher.publish(ns, lines(i * 100, 100));
  const st = publisher.status();
  assert.ok(st.replicaStatus[1]?.spool.bytes && st.replicaStatus[1].spool.bytes > 0, 'replica 2 spooled while its nsqd was down');
  assert.equal(st.replicaStatus[0]?.spool.bytes, 0, 'replica 1 spooled nothing');
  assert.ok(existsSync(replicaSpoolDir(dir, 2)));
  await b.restart();
  await publisher.drained();

  const want = lines(0, 2000).sort();
  // Each nsqd holds every line exactly once: the replay went to B only.
  assert.deepEqual((await linesAt(a, topic)).sort(), want);
  assert.deepEqual((await linesAt(b, topic)).sort(), want);
  const text = await metrics.metrics();
  assert.match(text, /nsagent_publish_replayed_lines_total 1000\n/);
  assert.match(text, /nsagent_publish_nsqd_ready\{nsqd="127\.0\.0\.1:\d+"\} 1\n[^]*nsagent_publish_nsqd_ready\{nsqd="127\.0\.0\.1:\d+"\} 1\n/);
  // The outage gauge exists in replicated mode too, and is finite once lines were offered.
  const outage = Number(/^nsagent_publish_spool_outage_seconds (\S+)$/m.exec(text)?.[1]);
  assert.ok(Number.isFinite(outage) && outage > 0, `nsagent_publish_spool_outage_seconds: ${outage}`);
});

test('replicas 2: the constructor refuses fewer distinct nsqd than replicas', () => {
  assert.throws(
    () => new ReplicatedPublisher({ ...baseOptions(), nsqdTcpAddresses: ['127.0.0.1:1'], replicas: 2 }),
    /nsq\.replicas is 2 but nsq\.nsqdTcpAddresses names 1 nsqd/,
  );
  assert.throws(() => new ReplicatedPublisher({ ...baseOptions(), nsqdTcpAddresses: ['127.0.0.1:1', '127.0.0.1:1'], replicas: 2 }), /names an nsqd twice/);
});

function baseOptions() {
  return {
    topicPrefix: 'x.',
    maxMessageBytes: 256 * 1024,
    maxMpubBytes: 1024 * 1024,
    lingerMs: 5,
    maxInFlightBatches: 8,
    reconnectMinMs: 50,
    reconnectMaxMs: 400,
    spool: { dir: '/nonexistent', maxBytes: 1024 * 1024, maxAgeSec: 60, commitIntervalMs: 5, segmentBytes: 1024 * 1024 },
    metrics: new Registry(),
    logger: silentLogger(),
  };
}

test('the replicas\' spools together hold the outage the first of them to fill can hold', () => {
  const spool = (outageSec: number | null, bytes: number) => ({ bytes, outageSec, oldestAgeSec: 5 }) as unknown as SpoolStatus;
  const merged = mergeSpoolStatus('/spool', [spool(null, 10), spool(300, 20), spool(120, 30)]);
  assert.equal(merged.outageSec, 120);
  assert.equal(merged.bytes, 60);
  assert.equal(mergeSpoolStatus('/spool', [spool(null, 1), spool(null, 2)]).outageSec, null);
});
