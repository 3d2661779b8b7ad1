// `diskio`: Telegraf's cumulative per-device I/O counters (tag name) from /proc/diskstats:
// operations, bytes, milliseconds. Loop and RAM devices are left out by default.
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

/** /proc/diskstats counts sectors of 512 bytes whatever the device's real sector size. */
const SECTOR_BYTES = 512;

export interface DiskStat {
  name: string;
  fields: Record<string, number>;
}

export function parseDiskstats(text: string): DiskStat[] {
  const out: DiskStat[] = [];
  for (const line of text.split('\n')) {
    const p = line.trim().split(/\s+/);
    if (p.length < 14) continue;
    const n = (i: number) => Number(p[i]);
    out.push({
      name: p[2] as string,
      fields: {
        reads: n(3),
        merged_reads: n(4),
        read_bytes: n(5) * SECTOR_BYTES,
        read_time: n(6),
        writes: n(7),
        merged_writes: n(8),
        write_bytes: n(9) * SECTOR_BYTES,
        write_time: n(10),
        iops_in_progress: n(11),
        io_time: n(12),
        weighted_io_time: n(13),
      },
    });
  }
  return out;
}

export interface DiskIoCollectorOptions {
  hostFs: HostFs;
  /** Device names left out; default: loop and RAM disks. */
  ignoreDevices?: RegExp;
}

export const DEFAULT_IGNORED_DEVICES = /^(loop|ram)\d+$/;

export class DiskIoCollector implements Collector {
  readonly name = 'diskio';
  private readonly ignore: RegExp;

  constructor(private readonly opts: DiskIoCollectorOptions) {
    this.ignore = opts.ignoreDevices ?? DEFAULT_IGNORED_DEVICES;
  }

  async collect(acc: Accumulator): Promise<void> {
    let stats: DiskStat[];
    try {
      stats = parseDiskstats(this.opts.hostFs.readSmall('proc/diskstats').text);
    } catch (err) {
      acc.error('proc/diskstats', err);
      return;
    }
    for (const s of stats) {
      if (!this.ignore.test(s.name)) acc.add('diskio', s.fields, { name: s.name });
    }
  }
}
