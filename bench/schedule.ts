// `npm run bench -- schedule [--quick] [--compare]`: 10,000 jobs over 100 namespaces every
// 10 s on the real clock. Reports lateness (actual minus planned start) p50/p99/max and the CPU
// share of one core, beside the same scheduler idle in the same run. Full runs (and --compare)
// add node-schedule driving the same jobs on the same grid, the library the issue proposed.
import schedule from 'node-schedule';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { jobPhaseMs, nextAlignedRun } from '../src/job-timing.ts';
import type { JobSpec } from '../src/scheduler/types.ts';
import { silentLogger } from '../src/log/logger.ts';
import { cpuMeter, fmt, machineLine, percentile, type BenchContext } from './lib.ts';

const JOBS = 10_000;
const NAMESPACES = 100;
const INTERVAL_SEC = 10;

interface Row {
  name: string;
  jobs: number;
  windowSec: number;
  runs: number;
  lateness: number[];
  cpuMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Measures CPU and lateness over `windowSec`, after `warmupSec` for the jobs to reach steady state. */
async function measure(name: string, jobs: number, warmupSec: number, windowSec: number, lateness: number[]): Promise<Row> {
  await sleep(warmupSec * 1000);
  lateness.length = 0;
  const cpu = cpuMeter();
  await sleep(windowSec * 1000);
  const cpuMs = cpu();
  return { name, jobs, windowSec, runs: lateness.length, lateness: [...lateness].sort((a, b) => a - b), cpuMs };
}

function jobs(record: (plannedAt: number) => void): JobSpec[] {
  return Array.from({ length: JOBS }, (_, i) => ({
    key: `job-${i}`,
    namespace: `ns-${i % NAMESPACES}`,
    intervalSec: INTERVAL_SEC,
    run: async ({ plannedAt }) => record(plannedAt),
  }));
}

async function ours(warmupSec: number, windowSec: number, idleSec: number): Promise<Row[]> {
  const s = new Scheduler({ hostname: 'bench-host', logger: silentLogger() });
  await s.start();
  const idle = await measure('idle scheduler (no jobs)', 0, 1, idleSec, []);
  const lateness: number[] = [];
  // Owners of 100 jobs each, as a fleet of plugin and check owners would reconcile them.
  const all = jobs((plannedAt) => lateness.push(Date.now() - plannedAt));
  for (let n = 0; n < NAMESPACES; n++) s.reconcile(`owner-${n}`, all.filter((j) => j.namespace === `ns-${n}`));
  const loaded = await measure('ns-agent Scheduler', JOBS, warmupSec, windowSec, lateness);
  await s.stop();
  return [idle, loaded];
}

/** node-schedule with one-shot Date jobs re-armed on the same grid (cron cannot express a ms phase). */
async function nodeSchedule(warmupSec: number, windowSec: number): Promise<Row> {
  const lateness: number[] = [];
  const intervalMs = INTERVAL_SEC * 1000;
  let stopped = false;
  const arm = (key: string, at: number) => {
    schedule.scheduleJob(new Date(at), () => {
      lateness.push(Date.now() - at);
      if (!stopped) arm(key, at + intervalMs);
    });
  };
  const now = Date.now();
  for (let i = 0; i < JOBS; i++) {
    const key = `job-${i}`;
    arm(key, nextAlignedRun(now, intervalMs, jobPhaseMs('bench-host', key, intervalMs)));
  }
  const row = await measure('node-schedule 2.1 (same jobs, same grid)', JOBS, warmupSec, windowSec, lateness);
  stopped = true;
  await schedule.gracefulShutdown();
  return row;
}

function line(r: Row, idleCpuShare: number): string {
  const share = (100 * r.cpuMs) / (r.windowSec * 1000);
  const l = (p: number) => (r.lateness.length ? `${fmt(percentile(r.lateness, p))} ms` : '–');
  const added = r.jobs > 0 ? `${fmt(share - idleCpuShare, 2)} %` : '–';
  return `| ${r.name} | ${fmt(r.jobs)} | ${r.windowSec} s | ${fmt(r.runs)} | ${l(50)} | ${l(99)} | ${l(100)} | ${fmt(share, 2)} % | ${added} |`;
}

export default async function bench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const compare = !quick || ctx.args.includes('--compare');
  const windowSec = quick ? 10 : 60;
  const idleSec = quick ? 5 : 30;
  const warmupSec = INTERVAL_SEC + 1; // every job has run once and is on its grid
  ctx.log(`schedule: ${fmt(JOBS)} jobs / ${NAMESPACES} namespaces / ${INTERVAL_SEC} s; window ${windowSec} s${compare ? ', with node-schedule' : ''}`);
  const rows = await ours(warmupSec, windowSec, idleSec);
  if (compare) rows.push(await nodeSchedule(warmupSec, windowSec));
  const idleShare = (100 * rows[0]!.cpuMs) / (rows[0]!.windowSec * 1000);
  const mine = rows[1]!;
  const p99 = percentile(mine.lateness, 99);
  const added = (100 * mine.cpuMs) / (mine.windowSec * 1000) - idleShare;
  return [
    `## schedule${quick ? ' (quick)' : ''}`,
    '',
    `${fmt(JOBS)} jobs over ${NAMESPACES} namespaces, every ${INTERVAL_SEC} s, on the real clock; each run records`,
    'Date.now() − planned start. CPU is user + system time of the process over the window, as a',
    'share of one core; "added" is beyond the idle scheduler measured first in the same run.',
    `Machine: ${machineLine()}.`,
    '',
    '| run | jobs | window | runs | lateness p50 | p99 | max | CPU | added CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => line(r, idleShare)),
    '',
    `Targets: p99 lateness under 20 ms (${fmt(p99)} ms: ${p99 < 20 ? 'met' : 'NOT met'}), added CPU under 5 % of one core (${fmt(added, 2)} %: ${added < 5 ? 'met' : 'NOT met'}).`,
  ].join('\n');
}
