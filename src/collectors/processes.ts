// `processes`: Telegraf's count of processes by state (running, sleeping, blocked, zombies,
// stopped, …), total and total_threads, from every /proc/<pid>/stat; all integers. `parked`
// (a state of kernels 3.9 to 3.13 only) appears only when such a process exists, as in Telegraf.
import { scanProcesses, type ProcStat } from './proc-table.ts';
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

const STATE_FIELD: Record<string, string> = {
  R: 'running',
  S: 'sleeping',
  D: 'blocked',
  Z: 'zombies',
  X: 'dead',
  T: 'stopped',
  t: 'stopped',
  W: 'paging',
  I: 'idle',
  P: 'parked',
};

export function processCounts(procs: readonly Pick<ProcStat, 'state' | 'numThreads'>[]): Record<string, number> {
  const f: Record<string, number> = {
    blocked: 0,
    zombies: 0,
    stopped: 0,
    running: 0,
    sleeping: 0,
    dead: 0,
    paging: 0,
    idle: 0,
    unknown: 0,
    total: 0,
    total_threads: 0,
  };
  for (const p of procs) {
    const field = STATE_FIELD[p.state] ?? 'unknown';
    f[field] = (f[field] ?? 0) + 1;
    f.total!++;
    if (Number.isFinite(p.numThreads)) f.total_threads! += p.numThreads;
  }
  return f;
}

const PROCESSES_INTEGER_FIELDS: ReadonlySet<string> = new Set([
  'blocked', 'zombies', 'stopped', 'running', 'sleeping', 'dead', 'paging', 'idle', 'parked', 'unknown', 'total', 'total_threads',
]);

export class ProcessesCollector implements Collector {
  readonly name = 'processes';

  constructor(private readonly opts: { hostFs: HostFs }) {}

  async collect(acc: Accumulator): Promise<void> {
    try {
      const scan = await scanProcesses(this.opts.hostFs);
      if (scan.skipped > 0) acc.error('proc', new Error(`${scan.skipped} processes over maxProcesses not counted`));
      acc.add('processes', processCounts(scan.processes), undefined, PROCESSES_INTEGER_FIELDS);
    } catch (err) {
      acc.error('proc', err);
    }
  }
}
