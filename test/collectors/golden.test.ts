// Golden test of the system stats collector (node_exporter style): the fixture tree
// test/fixtures/procroot/tick1 is collected, tick2's files are laid over it and it is collected
// again; each collection's line protocol must equal expected-tick1.lp / expected-tick2.lp.
// The first tick has no previous CPU reading, so it has no `cpu` points (as in Telegraf), and
// no diskio io_util. The lines are the points pipeline's (the Normaliser), so the golden files
// show Telegraf's field types: `123i` integers, floats, strings.
// UPDATE_GOLDEN=1 rewrites the expected files; review the diff before committing it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostStatsCollector } from '../../src/collectors/host-stats.ts';
import { NamespaceChecksCollector } from '../../src/collectors/namespace-checks.ts';
import type { StatFsResult } from '../../src/collectors/hostfs.ts';
import { MetricBatch } from '../../src/collectors/types.ts';
import type { Metric } from '../../src/points/metric.ts';
import { collectSchema } from '../../src/config/schema.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import type { Clock } from '../../src/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const fixtures = fileURLToPath(new URL('../fixtures/procroot/', import.meta.url));
const tmp = tempDir('nsagent-golden-').dir;
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A clock the test moves: the diskio interval (io_util) is the time between two collections. */
function testClock(startMs: number): Clock & { nowMs: number } {
  const c = {
    nowMs: startMs,
    now: () => c.nowMs,
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
  };
  return c;
}

/** Line protocol as the points pipeline writes it (host tag, seconds timestamps, Telegraf's types). */
export function toLineProtocol(metrics: readonly Metric[]): string {
  const normaliser = new Normaliser({ hostname: 'goldenhost', clock: testClock(0) });
  const batch = normaliser.normaliseBatch(metrics);
  assert.deepEqual(batch.rejected, []);
  return batch.lines.join('\n').concat('\n');
}

function golden(name: string, actual: string): void {
  const file = path.join(fixtures, name);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs (UPDATE_GOLDEN=1 rewrites it)`);
}

test('system stats of the fixture tree match the golden line protocol, tick after tick', async () => {
  const root = path.join(tmp, 'host');
  cpSync(path.join(fixtures, 'tick1'), root, { recursive: true });
  mkdirSync(path.join(root, 'proc/1003')); // a process that exited mid-scan: no stat file

  // Fixed statfs answers: the fixture's mount points are not real file systems.
  const statfs: Record<string, StatFsResult> = {
    '/': { bsize: 4096, blocks: 25_000_000, bfree: 10_000_000, bavail: 8_750_000, files: 6_000_000, ffree: 5_000_000 },
    '/home': { bsize: 4096, blocks: 100_000_000, bfree: 90_000_000, bavail: 85_000_000, files: 20_000_000, ffree: 19_999_000 },
    '/mnt/My Data': { bsize: 1024, blocks: 1_000_000, bfree: 1_000_000, bavail: 1_000_000, files: 0, ffree: 0 },
    '/proc/fs/nfsd': { bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 },
  };
  const asked: string[] = [];
  const clock = testClock(1_700_000_000_000);
  const collector = new HostStatsCollector({
    hostRoot: root,
    clock,
    statfs: async (abs) => {
      const mp = `/${path.relative(root, abs)}`.replace(/^\/+/, '/');
      asked.push(mp);
      const st = statfs[mp];
      if (!st) throw Object.assign(new Error(`no such mount ${mp}`), { code: 'ENOENT' });
      return st;
    },
  });

  const first = new MetricBatch(1_700_000_000);
  await collector.collect(first);
  assert.deepEqual(first.errors, []);
  golden('expected-tick1.lp', toLineProtocol(first.metrics));
  assert.deepEqual(asked.sort(), ['/', '/home', '/mnt/My Data', '/proc/fs/nfsd'], 'ignored types are not statfs-ed, repeated mounts once');

  cpSync(path.join(fixtures, 'tick2'), root, { recursive: true });
  clock.nowMs += 10_000;
  const second = new MetricBatch(1_700_000_010);
  await collector.collect(second);
  assert.deepEqual(second.errors, []);
  golden('expected-tick2.lp', toLineProtocol(second.metrics));

  // Spot checks by hand, so the golden files are not merely self-consistent.
  const total = second.metrics.find((m) => m.name === 'cpu' && m.tags?.cpu === 'cpu-total')!.fields!;
  assert.equal(total.usage_user, (100 * 600) / 2070);
  assert.equal(total.usage_idle, (100 * 1000) / 2070);
  assert.equal(total.usage_nice, (100 * 100) / 2070);
  const mem = first.metrics.find((m) => m.name === 'mem')!.fields!;
  assert.equal(mem.used, (8_000_000 - 5_000_000) * 1024, 'used = total - available, as in Telegraf');
  assert.equal(mem.cached, 2_660_000 * 1024);
  const sda = second.metrics.find((m) => m.name === 'diskio' && m.tags?.name === 'sda')!;
  assert.equal(sda.fields!.io_util, (100 * (25_100 - 25_000)) / 10_000);
  assert.equal(sda.tags!.wwid, 'naa.5000c500a1b2c3d4');
  const devices = second.metrics.filter((m) => m.name === 'diskio').map((m) => m.tags!.name);
  assert.ok(devices.includes('loop0') && !devices.includes('zram0'), 'all-zero devices left out, as gopsutil does');
  const load = first.metrics.find((m) => m.name === 'system' && 'load1' in m.fields!)!.fields!;
  assert.deepEqual([load.n_cpus, load.n_physical_cpus], [2, 1], 'two hyper-threads of one core');
});

test('per-collector settings: off, percpu/totalcpu, mountPoints, devices, interfaces, protocol stats', async () => {
  const root = path.join(tmp, 'settings');
  cpSync(path.join(fixtures, 'tick1'), root, { recursive: true });
  const settings = collectSchema.parse({
    cpu: { percpu: false },
    mem: { enabled: false },
    swap: { enabled: false },
    system: { enabled: false },
    processes: { enabled: false },
    disk: { mountPoints: ['/home'] },
    diskio: { devices: ['sd?'] },
    net: { interfaces: ['lo', 'dock*'], ignoreProtocolStats: false },
  });
  const statfs = async () => ({ bsize: 4096, blocks: 10, bfree: 5, bavail: 5, files: 10, ffree: 5 });
  const collector = new HostStatsCollector({ hostRoot: root, settings, statfs });
  await collector.collect(new MetricBatch(1));
  const batch = new MetricBatch(2);
  await collector.collect(batch);
  assert.deepEqual(batch.errors, []);
  const seen = batch.metrics.map((m) => `${m.name}:${Object.values(m.tags ?? {}).join('/')}`);
  // /proc/stat did not move between the two reads: no cpu point, which is what Telegraf does too.
  assert.deepEqual(seen.sort(), [
    'disk:/home/sda2/ext4/rw',
    'diskio:sda/naa.5000c500a1b2c3d4',
    'diskio:sdb',
    'net:all',
    'net:docker0', // listed: reported although down, as in Telegraf
    'net:lo',
  ]);
  const all = batch.metrics.find((m) => m.tags?.interface === 'all')!;
  assert.equal(all.fields!.tcp_activeopens, 77);
  assert.match(toLineProtocol([all]), /tcp_activeopens=77i/);
});

test('a collector that cannot read its source reports it and the others still answer', async () => {
  const root = path.join(tmp, 'partial');
  cpSync(path.join(fixtures, 'tick1'), root, { recursive: true });
  rmSync(path.join(root, 'proc/meminfo'));
  rmSync(path.join(root, 'proc/diskstats'));
  const settings = collectSchema.parse({ disk: { ignoreFs: ['proc', 'sysfs', 'tmpfs', 'cgroup2', 'overlay', 'nfsd', 'ext4', 'xfs'] } });
  const collector = new HostStatsCollector({ hostRoot: root, settings });
  const batch = new MetricBatch(1);
  await collector.collect(batch);
  assert.deepEqual(
    batch.errors.map((e) => e.source),
    ['proc/meminfo', 'proc/meminfo', 'proc/diskstats'],
  );
  assert.deepEqual([...new Set(batch.metrics.map((m) => m.name))], ['system', 'net', 'processes']);
});

test('port and process checks of the fixture tree', async () => {
  const checks = new NamespaceChecksCollector({
    hostRoot: path.join(fixtures, 'tick1'),
    connectTimeoutMs: 1000,
    checks: {
      ports: [{ port: 80 }, { port: 8080 }, { port: 443 }, { port: 22 }, { port: 25 }],
      processes: [
        { name: 'nginx' },
        { name: 'my (odd) name' },
        { cmdline: 'billing-service.jar' },
        { cmdline: 'worker process' },
        { name: 'absent' },
        { name: 'kworker/0:1-events' }, // longer than comm's 15 characters: compared truncated
      ],
    },
  });
  const batch = new MetricBatch(1_700_000_000);
  await checks.collect(batch);
  assert.deepEqual(batch.errors, []);
  golden('expected-checks.lp', toLineProtocol(batch.metrics));
  const listening = batch.metrics.filter((m) => m.name === 'port_check').map((m) => [m.tags!.port, m.fields!.listening]);
  // 80 and 8080 LISTEN on IPv4, 443 on IPv6; 22 and 25 only have non-LISTEN sockets.
  assert.deepEqual(listening, [['80', 1], ['8080', 1], ['443', 1], ['22', 0], ['25', 0]]);
});
