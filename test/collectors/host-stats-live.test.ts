// The system stats collector on this very host: it reads the real /proc and /sys without
// errors, yields Telegraf's measurements, and its second tick has CPU usage that adds up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostStatsCollector } from '../../src/collectors/host-stats.ts';
import { MetricBatch } from '../../src/collectors/types.ts';

test('collects the real host twice: every core measurement, CPU usage on the second tick', async () => {
  const collector = new HostStatsCollector({ hostRoot: '/' });
  const first = new MetricBatch(1);
  await collector.collect(first);
  assert.deepEqual(first.errors, []);
  assert.equal(first.metrics.filter((m) => m.name === 'cpu').length, 0, 'no previous reading yet');
  await new Promise((r) => setTimeout(r, 50)); // let the CPU counters move
  const second = new MetricBatch(2);
  await collector.collect(second);
  assert.deepEqual(second.errors, []);
  const names = new Set(second.metrics.map((m) => m.name));
  for (const n of ['cpu', 'mem', 'swap', 'system', 'processes']) assert.ok(names.has(n), `${n} missing`);
  const total = second.metrics.find((m) => m.name === 'cpu' && m.tags?.cpu === 'cpu-total')!;
  // Guest time is inside user and nice, and reported apart: all usage_* fields add up to 100.
  const sum = Object.values(total.fields!).reduce<number>((a, v) => a + (v as number), 0);
  assert.ok(Math.abs(sum - 100) < 1e-6, `usage_* add up to ${sum}`);
  const mem = second.metrics.find((m) => m.name === 'mem')!.fields!;
  assert.ok((mem.total as number) > 0 && (mem.available as number) <= (mem.total as number));
  const procs = second.metrics.find((m) => m.name === 'processes')!.fields!;
  assert.ok((procs.total as number) >= 1 && (procs.total_threads as number) >= (procs.total as number));
});
