// `system`: Telegraf's load1/load5/load15, n_cpus and uptime (seconds), from /proc/loadavg,
// /proc/stat and /proc/uptime. Telegraf's n_users (from utmp) is not reported.
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

export function parseLoadavg(text: string): { load1: number; load5: number; load15: number } | null {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (![a, b, c].every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  return { load1: a as number, load5: b as number, load15: c as number };
}

/** Online logical CPUs: the numbered cpu lines of /proc/stat. */
export function countCpus(procStat: string): number {
  let n = 0;
  for (const line of procStat.split('\n')) if (/^cpu\d+\s/.test(line)) n++;
  return n;
}

/** Whole seconds since boot, from /proc/uptime's first figure. */
export function parseUptime(text: string): number | null {
  const v = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(v) && v >= 0 ? Math.floor(v) : null;
}

export class SystemCollector implements Collector {
  readonly name = 'system';

  constructor(private readonly opts: { hostFs: HostFs }) {}

  async collect(acc: Accumulator): Promise<void> {
    const fs = this.opts.hostFs;
    const fields: Record<string, number> = {};
    const read = (file: string, use: (text: string) => void) => {
      try {
        use(fs.readSmall(file).text);
      } catch (err) {
        acc.error(file, err);
      }
    };
    read('proc/loadavg', (t) => {
      const l = parseLoadavg(t);
      if (l) Object.assign(fields, l);
      else acc.error('proc/loadavg', new Error(`unexpected content ${JSON.stringify(t.slice(0, 80))}`));
    });
    read('proc/stat', (t) => {
      fields.n_cpus = countCpus(t);
    });
    read('proc/uptime', (t) => {
      const u = parseUptime(t);
      if (u !== null) fields.uptime = u;
    });
    if (Object.keys(fields).length > 0) acc.add('system', fields);
  }
}
