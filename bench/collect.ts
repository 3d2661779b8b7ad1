// `npm run bench -- collect [--quick]`: CPU milliseconds per system collection on this host
// (total and per collector), and the RSS of the collection side of an agent with 10 namespaces
// (file registry, scheduler, reconciler, system stats every second, a port and a process check
// per namespace, points turned into line protocol) beside an idle process that loaded the same
// code, both in child processes started by this bench from an esbuild bundle of this file.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Point } from '@influxdata/influxdb-client';
import { collectSchema, registrySchema } from '../src/config/schema.ts';
import { HostStatsCollector } from '../src/collectors/host-stats.ts';
import { MetricBatch } from '../src/collectors/types.ts';
import { silentLogger } from '../src/log/logger.ts';
import type { Metric, MetricSink, PushResult } from '../src/points/metric.ts';
import { RegistryClient } from '../src/registry/registry-client.ts';
import { Reconciler } from '../src/collectors/reconciler.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { PACKAGE_ROOT } from '../src/version.ts';
import { cpuMeter, fmt, machineLine, type BenchContext } from './lib.ts';

const CHILD_ENV = 'NSAGENT_BENCH_COLLECT_CHILD';
const NAMESPACES = 10;

interface ChildReport {
  mode: 'agent' | 'idle';
  seconds: number;
  rssPeak: number;
  rssEnd: number;
  heapUsed: number;
  lines: number;
  systemRuns: number;
  checkRuns: number;
}

/** Turns metrics into line protocol as the points pipeline would, and throws the lines away. */
class LineProtocolSink implements MetricSink {
  lines = 0;
  async push(_ns: string, metrics: readonly unknown[]): Promise<PushResult> {
    for (const m of metrics as Metric[]) {
      const p = new Point(m.name);
      for (const [k, v] of Object.entries(m.tags ?? {})) p.tag(k, v);
      for (const [k, v] of Object.entries(m.fields ?? {})) if (typeof v === 'number') p.floatField(k, v);
      p.timestamp(String(m.timestamp));
      if (p.toLineProtocol({ convertTime: (t) => (t === undefined ? undefined : String(t)) })) this.lines++;
    }
    return { accepted: metrics.length, rejected: [] };
  }
}

async function child(mode: 'agent' | 'idle', seconds: number): Promise<void> {
  let peak = process.memoryUsage.rss();
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 100);
  const report: ChildReport = { mode, seconds, rssPeak: 0, rssEnd: 0, heapUsed: 0, lines: 0, systemRuns: 0, checkRuns: 0 };
  if (mode === 'agent') {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsagent-bench-collect-'));
    const server = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as AddressInfo).port;
    const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `bench.ns${i}`);
    const checks = Object.fromEntries(namespaces.map((ns) => [ns, { ports: [{ port, connect: true }], processes: [{ name: 'node' }] }]));
    const file = path.join(dir, 'registry.json');
    writeFileSync(file, JSON.stringify({ hosts: { '*': { namespaces, checks, plugins: {} } } }));
    const logger = silentLogger();
    const scheduler = new Scheduler({ hostname: 'bench-host', logger });
    const sink = new LineProtocolSink();
    const collect = { ...collectSchema.parse({ systemIntervalSec: 1, checksIntervalSec: 1 }), hostRoot: '/' };
    const reconciler = new Reconciler({ scheduler, sink, collect, logger });
    const registry = new RegistryClient({
      hostname: 'bench-host',
      config: registrySchema.parse({ source: 'file', file }),
      cacheDir: path.join(dir, 'registry'),
      logger,
    });
    registry.onChange((s) => reconciler.apply(s));
    await scheduler.start();
    await registry.start();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    await registry.stop();
    await scheduler.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
    const st = reconciler.status() as { systemRuns: number; checkRuns: number };
    Object.assign(report, { lines: sink.lines, systemRuns: st.systemRuns, checkRuns: st.checkRuns });
  } else {
    await new Promise((r) => setTimeout(r, seconds * 1000));
  }
  clearInterval(sample);
  report.rssEnd = process.memoryUsage.rss();
  report.rssPeak = Math.max(peak, report.rssEnd);
  report.heapUsed = process.memoryUsage().heapUsed;
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

/**
 * The child runs as the shipped agent would: compiled JavaScript, not TypeScript through tsx
 * (whose loader thread alone adds ~50 MiB). esbuild (installed with tsx) bundles this file
 * into one ES module; without it the child falls back to tsx and the report says so.
 */
async function buildChild(dir: string): Promise<{ args: string[]; how: string }> {
  const self = fileURLToPath(import.meta.url);
  try {
    const esbuild = (await import('esbuild')) as typeof import('esbuild');
    const outfile = path.join(dir, 'collect-child.mjs');
    await esbuild.build({
      entryPoints: [self],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      logLevel: 'silent',
      // Bundled CommonJS dependencies call require() for Node built-ins.
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    return { args: [outfile], how: 'compiled JavaScript (esbuild bundle)' };
  } catch (err) {
    return { args: ['--import', 'tsx', self], how: `TypeScript through tsx (no bundle: ${(err as Error).message.split('\n')[0]})` };
  }
}

function runChild(args: string[], mode: 'agent' | 'idle', seconds: number): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, {
      env: { ...process.env, [CHILD_ENV]: `${mode}:${seconds}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as ChildReport);
      } catch {
        reject(new Error(`bench child (${mode}) exited ${code} without a report: ${out.slice(-500)}`));
      }
    });
  });
}

export default async function bench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const collections = quick ? 30 : 300;
  const agentSec = quick ? 8 : 60;

  const collector = new HostStatsCollector({ hostRoot: '/' });
  for (let i = 0; i < 5; i++) await collector.collect(new MetricBatch(i)); // warm up (JIT, first CPU reading)
  const perMember = new Map<string, number>();
  let points = 0;
  const total = cpuMeter();
  const wallStart = performance.now();
  for (let i = 0; i < collections; i++) {
    const batch = new MetricBatch(i);
    for (const m of collector.members) {
      const cpu = cpuMeter();
      await m.collect(batch);
      perMember.set(m.name, (perMember.get(m.name) ?? 0) + cpu());
    }
    points += batch.metrics.length;
  }
  const cpuMs = total() / collections;
  const wallMs = (performance.now() - wallStart) / collections;
  ctx.log(`collect: ${fmt(cpuMs, 2)} ms CPU per collection; starting agent children (${agentSec} s)`);

  // Inside the package (git-ignored .cache/): the code finds its package.json from its own path.
  mkdirSync(path.join(PACKAGE_ROOT, '.cache'), { recursive: true });
  const buildDir = mkdtempSync(path.join(PACKAGE_ROOT, '.cache', 'bench-collect-'));
  let idle: ChildReport;
  let agent: ChildReport;
  let how: string;
  try {
    const built = await buildChild(buildDir);
    how = built.how;
    idle = await runChild(built.args, 'idle', quick ? 3 : 10);
    agent = await runChild(built.args, 'agent', agentSec);
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
  const mb = (b: number) => `${fmt(b / 1e6, 1)} MB`;
  return [
    `## collect${quick ? ' (quick)' : ''}`,
    '',
    `System stats of this host, ${collections} collections in a row after a warm-up; CPU is user +`,
    `system time of the process (statfs runs on libuv's pool and is included). Machine: ${machineLine()}.`,
    '',
    '| | CPU per collection | wall per collection | points per collection |',
    '|---|---:|---:|---:|',
    `| all collectors | ${fmt(cpuMs, 2)} ms | ${fmt(wallMs, 2)} ms | ${fmt(points / collections, 0)} |`,
    ...[...perMember].map(([name, ms]) => `| ${name} | ${fmt(ms / collections, 2)} ms | | |`),
    '',
    `Target: under 5 ms CPU per collection (${fmt(cpuMs, 2)} ms: ${cpuMs < 5 ? 'met' : 'NOT met'}).`,
    '',
    `Memory: the collection side of an agent with ${NAMESPACES} namespaces (file registry, scheduler,`,
    'reconciler, system stats every 1 s copied to every namespace, a port check with connect and a',
    'process check per namespace every 1 s, points made into line protocol), beside an idle process',
    `that loaded the same code, each in its own child process running ${how}.`,
    '',
    '| process | run | RSS peak | RSS at end | heap used | lines | system runs | check runs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...[idle, agent].map(
      (r) => `| ${r.mode} | ${r.seconds} s | ${mb(r.rssPeak)} | ${mb(r.rssEnd)} | ${mb(r.heapUsed)} | ${fmt(r.lines)} | ${fmt(r.systemRuns)} | ${fmt(r.checkRuns)} |`,
    ),
    '',
    `Target: RSS under 80 MB (${mb(agent.rssPeak)} peak: ${agent.rssPeak < 80e6 ? 'met' : 'NOT met'}).`,
  ].join('\n');
}

const childSpec = process.env[CHILD_ENV];
if (childSpec) {
  const [mode, seconds] = childSpec.split(':');
  await child(mode === 'agent' ? 'agent' : 'idle', Number(seconds));
}
