// `cpu`: Telegraf's usage_* percentages per CPU (tag cpu=cpu0, …) and overall (cpu=cpu-total),
// from two readings of /proc/stat. The first collection has no previous reading and yields
// nothing, as Telegraf's does. Every field is a float, as in Telegraf.
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

/** Cumulative times of one CPU line, in USER_HZ ticks (the unit cancels out in percentages). */
export interface CpuTimes {
  cpu: string;
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  guest: number;
  guestNice: number;
}

/** The cpu lines of /proc/stat; the aggregate line is named "cpu-total" as in Telegraf. */
export function parseProcStatCpus(text: string): CpuTimes[] {
  const out: CpuTimes[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const parts = line.trim().split(/\s+/);
    const label = parts[0] as string;
    if (!/^cpu\d*$/.test(label) || parts.length < 5) continue;
    const n = (i: number) => {
      const v = Number(parts[i]);
      return Number.isFinite(v) ? v : 0;
    };
    out.push({
      cpu: label === 'cpu' ? 'cpu-total' : label,
      user: n(1),
      nice: n(2),
      system: n(3),
      idle: n(4),
      iowait: n(5),
      irq: n(6),
      softirq: n(7),
      steal: n(8),
      guest: n(9),
      guestNice: n(10),
    });
  }
  return out;
}

/** Telegraf's total: guest time is already inside user (and guest_nice inside nice). */
function total(t: CpuTimes): number {
  return t.user + t.system + t.nice + t.iowait + t.irq + t.softirq + t.steal + t.idle;
}

/**
 * Telegraf's usage_* fields between two readings, or null when no time passed or the counters
 * went backwards (CPU hot-plug, counter reset).
 */
export function cpuUsage(prev: CpuTimes, cur: CpuTimes): Record<string, number> | null {
  const dt = total(cur) - total(prev);
  if (!(dt > 0)) return null;
  const d = (k: keyof Omit<CpuTimes, 'cpu'>) => cur[k] - prev[k];
  const pct = (v: number) => (100 * v) / dt;
  return {
    usage_user: pct(d('user') - d('guest')),
    usage_system: pct(d('system')),
    usage_idle: pct(d('idle')),
    usage_nice: pct(d('nice') - d('guestNice')),
    usage_iowait: pct(d('iowait')),
    usage_irq: pct(d('irq')),
    usage_softirq: pct(d('softirq')),
    usage_steal: pct(d('steal')),
    usage_guest: pct(d('guest')),
    usage_guest_nice: pct(d('guestNice')),
  };
}

export interface CpuCollectorOptions {
  hostFs: HostFs;
  /** Per-CPU points (cpu=cpu0 …); Telegraf's percpu, default true. */
  perCpu?: boolean;
  /** The cpu=cpu-total point; Telegraf's totalcpu, default true. */
  totalCpu?: boolean;
}

export class CpuCollector implements Collector {
  readonly name = 'cpu';
  private readonly hostFs: HostFs;
  private readonly perCpu: boolean;
  private readonly totalCpu: boolean;
  private prev = new Map<string, CpuTimes>();

  constructor(opts: CpuCollectorOptions) {
    this.hostFs = opts.hostFs;
    this.perCpu = opts.perCpu ?? true;
    this.totalCpu = opts.totalCpu ?? true;
  }

  async collect(acc: Accumulator): Promise<void> {
    let cpus: CpuTimes[];
    try {
      cpus = parseProcStatCpus(this.hostFs.readSmall('proc/stat').text);
    } catch (err) {
      acc.error('proc/stat', err);
      return;
    }
    const next = new Map<string, CpuTimes>();
    for (const cur of cpus) {
      next.set(cur.cpu, cur);
      if (!(cur.cpu === 'cpu-total' ? this.totalCpu : this.perCpu)) continue;
      const prev = this.prev.get(cur.cpu);
      const usage = prev && cpuUsage(prev, cur);
      if (usage) acc.add('cpu', usage, { cpu: cur.cpu });
    }
    this.prev = next;
  }
}
