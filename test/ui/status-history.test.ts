// The counters ring behind /me/history on a fake clock, the series it reads out of a
// /me/status object, and the per-namespace counts in front of the pipeline.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { NamespaceMeter, OTHER_NAMESPACE } from '../../src/points/namespace-meter.ts';
import type { MetricSink, PushResult } from '../../src/points/metric.ts';
import { StatusHistory, seriesOf } from '../../src/status-history.ts';
import { FakeClock } from '../helpers/clocks.ts';

describe('seriesOf', () => {
  test('reads namespaces, backends, spool and every drop counter; tolerates absent parts', () => {
    const s = seriesOf({
      points: { pointsIn: 10, accepted: 8, rejected: { bad_value: 2 }, dropped: 0 },
      namespaces: { web: { in: 6, accepted: 5, refused: 1 } },
      sender: {
        refusedPoints: 3,
        backends: { a: { counters: { Recv: { count: 7, rate1: 1 }, Send: { count: 6 }, SendFail: { count: 1 }, SendDrop: { count: 0 }, SendQueueSize: 4 } } },
      },
      publish: { spool: { bytes: 100, oldestAgeSec: 12, outageSec: 3600 }, counters: { dropped: { spool_full: 9 } } },
      relay: null,
    });
    const get = (k: string) => s.get(k);
    assert.deepEqual(get('points:in'), { kind: 'counter', value: 10 });
    assert.deepEqual(get('ns:web:accepted'), { kind: 'counter', value: 5 });
    assert.deepEqual(get('backend:a:sent'), { kind: 'counter', value: 6 });
    assert.deepEqual(get('backend:a:queued'), { kind: 'gauge', value: 4 });
    assert.deepEqual(get('spool:outageSec'), { kind: 'gauge', value: 3600 }, 'fields added later are picked up');
    assert.deepEqual(get('drop:publish.counters.dropped.spool_full'), { kind: 'counter', value: 9 });
    assert.deepEqual(get('drop:points.rejected.bad_value'), { kind: 'counter', value: 2 });
    assert.deepEqual(get('drop:sender.refusedPoints'), { kind: 'counter', value: 3 });
    assert.deepEqual(get('drop:sender.backends.a.counters.SendDrop'), { kind: 'counter', value: 0 });
    assert.equal(get('drop:namespaces.web.refused'), undefined, 'namespaces have their own series');
    assert.deepEqual(seriesOf({}), new Map());
  });
});

describe('StatusHistory', () => {
  test('keeps the last N samples, oldest first, plus one taken at the request', async () => {
    const clock = new FakeClock(1_000_000);
    let total = 0;
    const h = new StatusHistory({ status: () => ({ points: { pointsIn: total } }), clock, intervalMs: 1000, samples: 3 });
    await h.start();
    for (let i = 1; i <= 5; i++) {
      total = i * 10;
      clock.advance(1000);
    }
    total = 55;
    clock.advance(400);
    const snap = h.snapshot();
    assert.deepEqual(snap.t, [1_003_000, 1_004_000, 1_005_000, 1_005_400]);
    assert.deepEqual(snap.series['points:in'], { kind: 'counter', v: [30, 40, 50, 55] });
    await h.stop();
    assert.equal(clock.pending(), 0, 'stop() leaves no timer behind');
  });

  test('a series that appears later is null before it; maxSeries bounds what is kept', async () => {
    const clock = new FakeClock();
    let status: Record<string, unknown> = {};
    const h = new StatusHistory({ status: () => status, clock, intervalMs: 1000, samples: 4, maxSeries: 2 });
    await h.start();
    status = { namespaces: { a: { in: 1 }, b: { in: 2 } } };
    clock.advance(1000);
    const snap = h.snapshot();
    assert.deepEqual(Object.keys(snap.series), ['ns:a:in', 'ns:b:in']);
    assert.deepEqual(snap.series['ns:a:in']?.v, [null, 1, 1]);
    status = { namespaces: { a: { in: 1 }, b: { in: 2 }, c: { in: 3 } } };
    clock.advance(1000);
    assert.deepEqual(Object.keys(h.snapshot().series), ['ns:a:in', 'ns:b:in']);
    assert.equal(h.snapshot().refusedSeries, 1);
    await h.stop();
  });

  test('a status() that throws costs one sample, not the sampling', async () => {
    const clock = new FakeClock();
    let fail = true;
    const h = new StatusHistory({
      status: () => {
        if (fail) throw new Error('boom');
        return { points: { pointsIn: 1 } };
      },
      clock,
      intervalMs: 1000,
    });
    await h.start();
    fail = false;
    clock.advance(1000);
    assert.deepEqual(h.snapshot().series['points:in']?.v, [1, 1]);
    await h.stop();
  });
});

describe('NamespaceMeter', () => {
  const inner: MetricSink = {
    async push(namespace: string, metrics: readonly unknown[]): Promise<PushResult> {
      if (namespace === 'broken') throw new Error('publisher dropped it');
      return { accepted: metrics.length - 1, rejected: [{ index: 0, reason: 'bad' }] };
    },
  };

  test('counts in, accepted and refused per namespace, in status and in /metrics', async () => {
    const metrics = new Registry();
    const m = new NamespaceMeter({ inner, metrics });
    await m.push('web', [1, 2, 3]);
    await m.push('web', [1, 2]);
    await assert.rejects(m.push('broken', [1, 2]));
    assert.deepEqual(m.status(), { web: { in: 5, accepted: 3, refused: 2 }, broken: { in: 2, accepted: 0, refused: 2 } });
    const text = await metrics.metrics();
    assert.match(text, /nsagent_points_namespace_total\{namespace="web",outcome="accepted"\} 3/);
    assert.match(text, /nsagent_points_namespace_total\{namespace="broken",outcome="refused"\} 2/);
  });

  test('namespaces beyond the bound share one row', async () => {
    const m = new NamespaceMeter({ inner, metrics: new Registry(), maxNamespaces: 2 });
    for (const ns of ['a', 'b', 'c', 'd']) await m.push(ns, [1, 2]);
    assert.deepEqual(Object.keys(m.status()), ['a', 'b', OTHER_NAMESPACE]);
    assert.equal(m.status()[OTHER_NAMESPACE]?.in, 4);
  });
});
