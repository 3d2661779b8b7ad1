import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { Clock } from '../../src/clock.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import { Pipeline } from '../../src/points/pipeline.ts';
import { DroppedError, type Publisher } from '../../src/publish/publisher.ts';

const clock: Clock = { now: () => 1_700_000_000_000, setTimeout: () => ({}), clearTimeout: () => undefined };

/** Records what it is handed; a fake above the seam (the real publishers have their own tests). */
class RecordingPublisher implements Publisher {
  readonly calls: Array<{ namespace: string; lines: readonly string[] }> = [];
  fail: Error | undefined;
  constructor(readonly maxLineBytes?: number) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async publish(namespace: string, lines: readonly string[]): Promise<void> {
    if (this.fail) throw this.fail;
    this.calls.push({ namespace, lines: [...lines] });
  }
  status(): Record<string, unknown> {
    return {};
  }
}

function setup(maxLineBytes?: number) {
  const publisher = new RecordingPublisher(maxLineBytes);
  const metrics = new Registry();
  const pipeline = new Pipeline({
    normaliser: new Normaliser({ hostname: 'h', clock }),
    publisher,
    metrics,
    logger: silentLogger(),
  });
  return { publisher, metrics, pipeline };
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}

describe('Pipeline', () => {
  test('normalises, publishes accepted lines to the namespace, and reports refusals by index', async () => {
    const { publisher, pipeline, metrics } = setup();
    const result = await pipeline.push('shop', [
      { name: 'a', value: 1, timestamp: 1_700_000_000 },
      { name: 'b' },
      { name: 'c', value: 'x', timestamp: 1 },
    ]);
    assert.equal(result.accepted, 2);
    assert.deepEqual(result.rejected, [{ index: 1, reason: 'value: missing (a metric needs "value" or a non-empty "fields")' }]);
    assert.deepEqual(publisher.calls, [{ namespace: 'shop', lines: ['a,host=h value=1 1700000000', 'c,host=h value="x" 1'] }]);
    assert.equal(await metricValue(metrics, 'nsagent_points_in_total'), 3);
    assert.equal(await metricValue(metrics, 'nsagent_points_accepted_total'), 2);
    assert.equal(await metricValue(metrics, 'nsagent_points_rejected_total', { reason: 'no_fields' }), 1);
    assert.deepEqual(pipeline.status(), { pointsIn: 3, accepted: 2, rejected: { no_fields: 1 }, timestampsReplaced: 0, dropped: 0 });
  });

  test('plugin metrics are renamed', async () => {
    const { publisher, pipeline } = setup();
    await pipeline.push('ns', [{ name: 'lag', value: 2, timestamp: 1_700_000_000 }], { plugin: 'mysql' });
    assert.deepEqual(publisher.calls[0]?.lines, ['PLUGIN.mysql.lag,host=h value=2 1700000000']);
  });

  test('returnLines hands back the accepted lines, exactly as published', async () => {
    const { publisher, pipeline } = setup();
    const result = await pipeline.push('ns', [{ name: 'a', value: 1, timestamp: 1_700_000_000 }, { name: '' }], { plugin: 'p', returnLines: true });
    assert.deepEqual(result.lines, ['PLUGIN.p.a,host=h value=1 1700000000']);
    assert.deepEqual(result.lines, publisher.calls[0]?.lines);
    const plain = await pipeline.push('ns', [{ name: 'a', value: 1 }]);
    assert.equal(plain.lines, undefined);
  });

  test('nothing accepted: the publisher is not called at all', async () => {
    const { publisher, pipeline } = setup();
    const result = await pipeline.push('ns', [{ name: '' }, 7]);
    assert.equal(result.accepted, 0);
    assert.equal(result.rejected.length, 2);
    assert.equal(publisher.calls.length, 0);
  });

  test('lines the publisher could never send are refused per metric, keeping input indexes', async () => {
    const { publisher, pipeline, metrics } = setup(100);
    const long = 'x'.repeat(200);
    const result = await pipeline.push('ns', [
      { name: 'bad' },
      { name: 'ok', value: 1, timestamp: 1_700_000_000 },
      { name: 'big', value: long, timestamp: 1_700_000_000 },
      { name: 'ok2', value: 2, timestamp: 1_700_000_000 },
    ]);
    assert.equal(result.accepted, 2);
    assert.deepEqual(
      result.rejected.map((r) => r.index),
      [0, 2],
    );
    assert.match(result.rejected[1]?.reason ?? '', /^metric: its line is 2\d\d bytes, above the 100-byte limit/);
    assert.deepEqual(publisher.calls[0]?.lines, ['ok,host=h value=1 1700000000', 'ok2,host=h value=2 1700000000']);
    assert.equal(await metricValue(metrics, 'nsagent_points_rejected_total', { reason: 'too_long' }), 1);
  });

  test('a multi-byte line is measured in UTF-8 bytes', async () => {
    const { pipeline } = setup(100);
    // 40 characters, 120 bytes.
    const result = await pipeline.push('ns', [{ name: 'm', value: '€'.repeat(40), timestamp: 1_700_000_000 }]);
    assert.equal(result.rejected[0]?.index, 0);
  });

  test('a DroppedError from the publisher is counted and passed on', async () => {
    const { publisher, pipeline, metrics } = setup();
    publisher.fail = new DroppedError('spool full', 2);
    await assert.rejects(pipeline.push('ns', [{ name: 'a', value: 1 }, { name: 'b', value: 2 }]), DroppedError);
    assert.equal(await metricValue(metrics, 'nsagent_points_dropped_total'), 2);
    assert.equal(pipeline.status().dropped, 2);
  });

  test('a bad namespace or a non-array is a caller error', async () => {
    const { pipeline } = setup();
    await assert.rejects(pipeline.push('', [{ name: 'a', value: 1 }]), /namespace/);
    await assert.rejects(pipeline.push('ns', { name: 'a' } as unknown as unknown[]), /array/);
  });

  test('given timestamps that were replaced are counted', async () => {
    const { pipeline, metrics } = setup();
    await pipeline.push('ns', [{ name: 'a', value: 1, timestamp: 1_700_000_000_000 }, { name: 'b', value: 1 }]);
    assert.equal(await metricValue(metrics, 'nsagent_points_timestamp_replaced_total'), 1);
  });
});
