// The system collectors' integer fields reach line protocol as integers (Telegraf's types),
// while the same shape arriving as JSON (plugins, POST /post) keeps SPEC §3's floats: the
// marker is a symbol, which JSON cannot carry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricBatch } from '../../src/collectors/types.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import { systemClock } from '../../src/clock.ts';

const normaliser = new Normaliser({ hostname: 'h', clock: systemClock });

test('marked fields are integers; the same metric through JSON is all floats', () => {
  const batch = new MetricBatch(1_700_000_000);
  batch.add('mem', { total: 1024, used_percent: 12.5 }, undefined, new Set(['total']));
  const [m] = batch.metrics;
  assert.equal(normaliser.normaliseBatch([m]).lines[0], 'mem,host=h total=1024i,used_percent=12.5 1700000000');
  assert.equal(normaliser.normaliseBatch([JSON.parse(JSON.stringify(m))]).lines[0], 'mem,host=h total=1024,used_percent=12.5 1700000000');
});

test('a non-integer in an integer field is refused with the field named, never rounded', () => {
  const batch = new MetricBatch(1_700_000_000);
  batch.add('x', { n: 1.5 }, undefined, new Set(['n']));
  batch.add('x', { n: 2 ** 64 }, undefined, new Set(['n']));
  const out = normaliser.normaliseBatch(batch.metrics);
  assert.deepEqual(out.lines, []);
  assert.deepEqual(out.rejected.map((r) => r.reason), ['fields.n: 1.5 is not a 64-bit integer', 'fields.n: 18446744073709552000 is not a 64-bit integer']);
});
