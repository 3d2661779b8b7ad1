// Plugin run overhead: 1,000 trivial git plugins (from a pre-filled plugins cache, no git) over
// 50 namespaces at 10 s, run as the agent runs them (real Scheduler, PluginManager, run slots,
// bash as the plugin user, output parsed, points through the real normaliser into a counting
// publisher), beside the same scripts run back to back by a plain bash loop in the same run.
//   A. scheduled: per-run latency (tick to published result point) and the agent's CPU.
//   B. back to back: the agent's PluginRunner vs `for d; do cd $d; out=$(bash plugin.sh); done`,
//      both sequential, both as the plugin user: the mean difference is the agent's overhead.
// `--quick`: a 2 s warm-up, a 12 s window and 300 back-to-back runs instead of 10 s, 60 s and 2,000.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log/logger.ts';
import { Normaliser } from '../src/points/normalise.ts';
import { Pipeline } from '../src/points/pipeline.ts';
import { PluginManager } from '../src/plugins/plugin-manager.ts';
import { createPluginRunner } from '../src/plugins/plugin-runner.ts';
import { folderName } from '../src/plugins/plugin-paths.ts';
import { resolveRunAs } from '../src/plugins/run-as.ts';
import type { PluginEntry } from '../src/registry/types.ts';
import type { Publisher } from '../src/publish/publisher.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import type { JobScheduler, JobSpec } from '../src/scheduler/types.ts';
import { cpuMeter, fmt, machineLine, percentile, rssPeak, type BenchContext } from './lib.ts';

const PLUGINS = 1000;
const NAMESPACES = 50;
const INTERVAL_SEC = 10;
const SCRIPT = `echo '[{"name":"trivial","value":1,"tags":{"k":"v"}}]'\n`;

class CountingPublisher implements Publisher {
  lines = 0;
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async publish(_ns: string, lines: readonly string[]): Promise<void> {
    this.lines += lines.length;
  }
  status(): Record<string, unknown> {
    return { lines: this.lines };
  }
}

/** Times every job run while `measuring`: from the tick to the published result point. */
class TimingScheduler implements JobScheduler {
  measuring = false;
  readonly latenciesMs: number[] = [];
  constructor(private readonly inner: Scheduler) {}
  reconcile(owner: string, jobs: JobSpec[]): void {
    this.inner.reconcile(
      owner,
      jobs.map((job) => ({
        ...job,
        run: async (ctx) => {
          if (!this.measuring) return job.run(ctx);
          const t0 = performance.now();
          await job.run(ctx);
          this.latenciesMs.push(performance.now() - t0);
        },
      })),
    );
  }
  status(): Record<string, unknown> {
    return this.inner.status();
  }
}

function stats(ms: number[]): { mean: number; p50: number; p99: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { mean: ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length), p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

function bashLoop(dirs: string[], ids: { uid: number; gid: number } | null): Promise<number> {
  const loop = 'for d in "$@"; do cd "$d" || exit 1; out=$(NS=ns PLUGIN_NAME=p PLUGIN_TIMEOUT=10 bash plugin.sh) || exit 1; done';
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('bash', ['-c', loop, 'bash', ...dirs], { stdio: 'ignore', ...(ids ?? {}) });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`bash loop exited ${code}`))));
  });
}

export default async function bench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const windowSec = quick ? 12 : 60;
  const backToBack = quick ? 300 : 2000;
  const root = mkdtempSync(path.join(tmpdir(), 'nsagent-bench-plugins-'));
  chmodSync(root, 0o755);
  try {
    const config = parseConfig(
      { hostname: 'bench-host', dataDir: 'data', plugins: { cacheDir: 'cache', allowLocalRepos: true } },
      path.join(root, 'agent.json'),
    );
    const cacheDir = config.plugins.cacheDir;
    const registry: Record<string, PluginEntry[]> = {};
    const dirs: string[] = [];
    for (let i = 0; i < PLUGINS; i++) {
      const ns = `bench.ns${i % NAMESPACES}`;
      const name = `p${i}`;
      const dir = path.join(cacheDir, folderName(ns), folderName(name));
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      writeFileSync(path.join(dir, 'plugin.sh'), SCRIPT, { mode: 0o644 });
      dirs.push(dir);
      (registry[ns] ??= []).push({ repo: `file:///srv/bench/${name}.git`, interval: INTERVAL_SEC });
    }
    ctx.log(`${PLUGINS} plugins in ${NAMESPACES} namespaces at ${INTERVAL_SEC} s; window ${windowSec} s`);

    // A. scheduled, as in the agent
    const publisher = new CountingPublisher();
    const sink = new Pipeline({ normaliser: new Normaliser({ hostname: 'bench-host', clock: systemClock }), publisher, metrics: new Registry(), logger: silentLogger() });
    const scheduler = new Scheduler({ hostname: 'bench-host', logger: silentLogger() });
    const timing = new TimingScheduler(scheduler);
    const manager = new PluginManager({
      config: config.plugins,
      stateFile: path.join(config.dataDir, 'plugins-state.json'),
      scheduler: timing,
      sink,
      builtins: {},
      logger: silentLogger(),
      maxConcurrentRuns: config.scheduler.maxConcurrentRuns,
    });
    await scheduler.start();
    await manager.start();
    await manager.reconcile(registry);
    // One interval first, so every plugin has found its place on the schedule's grid.
    await new Promise((r) => setTimeout(r, (quick ? 2 : INTERVAL_SEC) * 1000));
    const cpu = cpuMeter();
    const rss = rssPeak();
    timing.measuring = true;
    const elu0 = performance.eventLoopUtilization();
    await new Promise((r) => setTimeout(r, windowSec * 1000));
    timing.measuring = false;
    const cpuMs = cpu();
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const rssBytes = rss();
    const mstatus = manager.status();
    await manager.stop();
    await scheduler.stop();
    const scheduled = stats(timing.latenciesMs);
    const runs = timing.latenciesMs.length;
    ctx.log(`A: ${runs} runs, mean ${fmt(scheduled.mean, 2)} ms, agent CPU ${fmt(cpuMs / runs, 3)} ms/run`);

    // B. back to back: the agent's runner vs a plain bash loop, same scripts, same user
    const ids = await resolveRunAs({ runAsUser: config.plugins.runAsUser });
    const runner = await createPluginRunner(config.plugins, { sink, logger: silentLogger(), clock: systemClock, runAs: ids });
    const sequence = Array.from({ length: backToBack }, (_, i) => dirs[i % dirs.length] as string);
    // Warm both paths (page cache, JIT) before timing.
    for (const dir of sequence.slice(0, 20)) await runner.run({ kind: 'git', namespace: 'ns', name: 'p', dir, args: [] }, { timeoutMs: 10_000 });
    await bashLoop(sequence.slice(0, 20), ids);
    const agentPerRun: number[] = [];
    const cpuB = cpuMeter();
    const t0 = performance.now();
    for (const dir of sequence) {
      const r0 = performance.now();
      const result = await runner.run({ kind: 'git', namespace: 'ns', name: 'p', dir, args: [] }, { timeoutMs: 10_000 });
      agentPerRun.push(performance.now() - r0);
      if (!result.success) throw new Error(`bench plugin failed: ${result.error}`);
    }
    const agentWall = performance.now() - t0;
    const agentCpuB = cpuB();
    const bashWall = await bashLoop(sequence, ids);
    const agentMean = agentWall / backToBack;
    const bashMean = bashWall / backToBack;
    const seq = stats(agentPerRun);
    ctx.log(`B: agent ${fmt(agentMean, 2)} ms/run, bash ${fmt(bashMean, 2)} ms/run`);

    const overhead = agentMean - bashMean;
    return [
      '## Plugins: run overhead',
      '',
      `${machineLine()}${quick ? ' — **quick run** (12 s window, 300 back-to-back runs)' : ''}`,
      '',
      `${PLUGINS} trivial git plugins (\`echo '[{…}]'\`, from a filled plugins cache) over ${NAMESPACES} namespaces at ${INTERVAL_SEC} s, run as user \`${ids?.user ?? 'self'}\`; points through the real normaliser into a counting publisher.`,
      '',
      '**A. Scheduled as in the agent** (real Scheduler, run slots, one process group per run)',
      '',
      '| runs | runs/s | latency tick → published point: mean / p50 / p99 | agent CPU | agent CPU per run | event loop busy | RSS peak | failed runs | skipped ticks |',
      '|---:|---:|---|---:|---:|---:|---:|---:|---:|',
      `| ${fmt(runs)} | ${fmt(runs / windowSec, 1)} | ${fmt(scheduled.mean, 2)} / ${fmt(scheduled.p50, 2)} / ${fmt(scheduled.p99, 2)} ms | ${fmt((cpuMs / (windowSec * 1000)) * 100, 1)} % of a core | ${fmt(cpuMs / Math.max(1, runs), 3)} ms | ${fmt(elu * 100, 1)} % | ${fmt(rssBytes / 2 ** 20)} MiB | ${fmt(Number(mstatus.failedRuns))} | ${fmt(Number(mstatus.skippedTicks))} |`,
      '',
      `**B. Back to back, ${fmt(backToBack)} runs each** (same scripts, same user, sequential)`,
      '',
      '| | mean per run | p50 / p99 | agent CPU per run |',
      '|---|---:|---|---:|',
      `| agent (PluginRunner: spawn → parse → published result point) | ${fmt(agentMean, 2)} ms | ${fmt(seq.p50, 2)} / ${fmt(seq.p99, 2)} ms | ${fmt(agentCpuB / backToBack, 3)} ms |`,
      `| plain bash loop (\`cd $d; out=$(bash plugin.sh)\`) | ${fmt(bashMean, 2)} ms | | |`,
      `| **overhead above bash** | **${fmt(overhead, 2)} ms** (target < 3 ms: ${overhead < 3 ? 'met' : 'NOT met'}) | | |`,
    ].join('\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
