// The ingest routes end to end on the real path: HTTP → Pipeline (normalise) → NsqPublisher →
// a real nsqd, read back from the namespace's topic. Also: with nsqd gone and the spool full,
// /post answers 503 and acknowledges nothing.
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/clock.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import { Pipeline } from '../../src/points/pipeline.ts';
import { decodeMessage } from '../../src/publish/envelope.ts';
import { NsqPublisher } from '../../src/publish/nsq-publisher.ts';
import { topicFor } from '../../src/topic-names.ts';
import { readAll, startNsqd, stopAll, type NsqdHandle } from '../helpers/servers.ts';
import { call, postJson, startApi, type TestApi } from './helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const PREFIX = 'httpe2e.';
const NS = 'web.prod';
const FALCON_NS = 'falcon ns/é';

describe('ingest through the real Pipeline and NsqPublisher into nsqd', () => {
  let nsqd: NsqdHandle;
  let publisher: NsqPublisher;
  let api: TestApi;
  let spoolDir: string;

  before(async () => {
    nsqd = await startNsqd();
    spoolDir = tempDir('ns-agent-http-spool-').dir;
    const metrics = new Registry();
    publisher = new NsqPublisher({
      nsqdTcpAddresses: [nsqd.tcpAddress],
      topicPrefix: PREFIX,
      maxMessageBytes: 256 * 1024,
      maxMpubBytes: 4 * 1024 * 1024,
      lingerMs: 5,
      maxInFlightBatches: 8,
      reconnectMinMs: 50,
      reconnectMaxMs: 400,
      // The smallest spool, so the 503 test can fill it.
      spool: { dir: spoolDir, maxBytes: 64 * 1024, maxAgeSec: 3600, commitIntervalMs: 5, segmentBytes: 64 * 1024 },
      metrics,
      logger: silentLogger(),
      connectWaitMs: 3000,
      publishTimeoutMs: 2000,
      stopTimeoutMs: 2000,
    });
    await publisher.start();
    const sink = new Pipeline({
      normaliser: new Normaliser({ hostname: 'e2e-host', clock: systemClock }),
      publisher,
      metrics,
      logger: silentLogger(),
    });
    api = await startApi({ deps: { sink, metrics, knownNamespaces: () => [NS, FALCON_NS] } });
  });
  after(async () => {
    await api.close();
    await publisher.stop();
    await stopAll();
    rmSync(spoolDir, { recursive: true, force: true });
  });

  const read = async (ns: string, count: number) => {
    const bodies = await readAll(nsqd, topicFor(ns, PREFIX), `c${Date.now()}`, { count, timeoutMs: 15_000 });
    return bodies.map((b) => decodeMessage(b));
  };

  test('JSON and line protocol on /post, Open-Falcon items on /api/push, arrive normalised with their namespace', async () => {
    const json = await postJson(`${api.url}/post?ns=${encodeURIComponent(NS)}`, [
      { name: 'qps', timestamp: 1700000000, tags: { api: 'login' }, value: 12 },
      { name: 'bad', value: Number.NaN },
      { name: 'up', value: true, timestamp: 1700000001 },
    ]);
    assert.equal(json.status, 200, json.text);
    assert.equal(json.json?.data.accepted, 2);
    assert.deepEqual(
      json.json?.data.rejected.map((r: { index: number }) => r.index),
      [1],
    );
    const lp = await call(`${api.url}/post?ns=${encodeURIComponent(NS)}&precision=s`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'cpu,core=0 user=1.5,n=3i 1700000002\n',
    });
    assert.equal(lp.status, 200, lp.text);
    const push = await postJson(`${api.url}/api/push?ns=${encodeURIComponent(FALCON_NS)}`, [
      { metric: 'net.in', endpoint: 'host-9', timestamp: 1700000003, step: 60, value: 5, counterType: 'COUNTER', tags: 'iface=eth0' },
    ]);
    assert.equal(push.status, 200, push.text);

    const web = await read(NS, 2);
    assert.ok(web.every((m) => m.namespace === NS));
    const lines = web.flatMap((m) => m.body.split('\n')).sort();
    assert.deepEqual(lines, [
      'cpu,core=0,host=e2e-host n=3,user=1.5 1700000002',
      'qps,api=login,host=e2e-host value=12 1700000000',
      'up,host=e2e-host value=T 1700000001',
    ]);
    const falcon = await read(FALCON_NS, 1);
    assert.equal(falcon[0]?.namespace, FALCON_NS, 'the exact namespace travels in the message, whatever the topic');
    assert.equal(falcon[0]?.body, 'net.in,counterType=COUNTER,host=host-9,iface=eth0 value=5 1700000003');
  });

  test('nsqd gone and the spool full: 503, never an acceptance', async () => {
    await nsqd.stop();
    const batch = Array.from({ length: 500 }, (_, i) => ({ name: 'fill', value: i, tags: { pad: 'x'.repeat(200) } }));
    let status = 200;
    let answer = '';
    // Each accepted batch lands in the 64 KiB spool; within a few the spool refuses.
    for (let i = 0; i < 20 && status === 200; i++) {
      const r = await postJson(`${api.url}/post?ns=${encodeURIComponent(NS)}`, batch);
      status = r.status;
      answer = r.text;
    }
    assert.equal(status, 503, answer);
    assert.match(answer, /nothing of this request is acknowledged/);
    const m = await call(`${api.url}/metrics`);
    assert.match(m.text, /nsagent_http_ingest_points_total\{route="\/post",outcome="unacknowledged"\} [1-9]/);
  });
});
