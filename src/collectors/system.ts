// `system`: Telegraf's three lines: load1/load5/load15 (floats) with n_cpus and n_physical_cpus
// (integers); uptime (integer seconds); uptime_format (a string such as "3 days, 4:05"). From
// /proc/loadavg, /proc/stat, /proc/uptime and the CPU topology in /sys. Telegraf's n_users
// (from utmp, not /proc) is not reported.
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

export function parseLoadavg(text: string): { load1: number; load5: number; load15: number } | null {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (![a, b, c].every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  return { load1: a as number, load5: b as number, load15: c as number };
}

/** Online logical CPUs: the numbered cpu lines of /proc/stat. */
export function countCpus(procStat: string): number {
  return onlineCpus(procStat).length;
}

/**
 * Labels of the numbered cpu lines ("cpu0", "cpu1", …). They open /proc/stat, so the scan stops
 * at the first other line instead of reading the long interrupt lines after them.
 */
function onlineCpus(procStat: string): string[] {
  const labels: string[] = [];
  let start = 0;
  while (procStat.startsWith('cpu', start)) {
    const end = procStat.indexOf('\n', start);
    const line = procStat.slice(start, end < 0 ? procStat.length : end);
    const m = /^(cpu\d+)\s/.exec(line);
    if (m) labels.push(m[1] as string);
    if (end < 0) break;
    start = end + 1;
  }
  return labels;
}

/**
 * Seconds since boot as sysinfo(2) reports them to gopsutil (and so Telegraf): the kernel rounds
 * a started second up; /proc/uptime prints hundredths.
 */
export function parseUptime(text: string): number | null {
  const v = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(v) && v >= 0 ? Math.ceil(v) : null;
}

/** Telegraf's uptime_format: "H:MM" after "N day(s), " when up a day or more; hours padded to 2. */
export function formatUptime(uptimeSec: number): string {
  const days = Math.floor(uptimeSec / 86_400);
  const hours = Math.floor(uptimeSec / 3600) % 24;
  const minutes = Math.floor(uptimeSec / 60) % 60;
  const prefix = days !== 0 ? `${days} day${days > 1 ? 's' : ''}, ` : '';
  return `${prefix}${String(hours).padStart(2, ' ')}:${String(minutes).padStart(2, '0')}`;
}

/**
 * Physical cores as gopsutil counts them: the distinct sibling lists of the CPUs' topology
 * (core_cpus_list, else the older thread_siblings_list); without sysfs, the sum of "cpu cores"
 * per "physical id" in /proc/cpuinfo; 0 when neither can be read.
 */
export function countPhysicalCpus(fs: HostFs, cpuLabels: readonly string[]): number {
  for (const file of ['core_cpus_list', 'thread_siblings_list']) {
    const lists = new Set<string>();
    for (const cpu of cpuLabels) {
      const text = fs.readSmallOrNull(`sys/devices/system/cpu/${cpu}/topology/${file}`);
      if (text !== null && text.trim() !== '') lists.add(text.trim());
    }
    if (lists.size > 0) return lists.size;
  }
  const cpuinfo = fs.readSmallOrNull('proc/cpuinfo');
  return cpuinfo === null ? 0 : physicalFromCpuinfo(cpuinfo);
}

export function physicalFromCpuinfo(text: string): number {
  const coresById = new Map<number, number>();
  for (const section of text.split(/\n\s*\n/)) {
    const id = /^physical id\s*:\s*(\d+)/im.exec(section);
    const cores = /^cpu cores\s*:\s*(\d+)/im.exec(section);
    if (id && cores) coresById.set(Number(id[1]), Number(cores[1]));
  }
  let n = 0;
  for (const c of coresById.values()) n += c;
  return n;
}

const LOAD_INTEGER_FIELDS: ReadonlySet<string> = new Set(['n_cpus', 'n_physical_cpus']);
const UPTIME_INTEGER_FIELDS: ReadonlySet<string> = new Set(['uptime']);

export class SystemCollector implements Collector {
  readonly name = 'system';
  /** The online CPUs the physical count below was read for (it changes only with hot-plug). */
  private physicalFor = '';
  private physical = 0;

  constructor(private readonly opts: { hostFs: HostFs }) {}

  async collect(acc: Accumulator): Promise<void> {
    const fs = this.opts.hostFs;
    const read = (file: string): string | null => {
      try {
        return fs.readSmall(file).text;
      } catch (err) {
        acc.error(file, err);
        return null;
      }
    };
    const loadText = read('proc/loadavg');
    const statText = read('proc/stat');
    const load = loadText === null ? null : parseLoadavg(loadText);
    if (loadText !== null && load === null) acc.error('proc/loadavg', new Error(`unexpected content ${JSON.stringify(loadText.slice(0, 80))}`));
    if (load && statText !== null) {
      const online = onlineCpus(statText);
      const key = online.join(',');
      if (key !== this.physicalFor) {
        this.physical = countPhysicalCpus(fs, online);
        this.physicalFor = key;
      }
      acc.add('system', { ...load, n_cpus: online.length, n_physical_cpus: this.physical }, undefined, LOAD_INTEGER_FIELDS);
    }
    const uptimeText = read('proc/uptime');
    const uptime = uptimeText === null ? null : parseUptime(uptimeText);
    if (uptime !== null) {
      acc.add('system', { uptime }, undefined, UPTIME_INTEGER_FIELDS);
      acc.add('system', { uptime_format: formatUptime(uptime) });
    }
  }
}


