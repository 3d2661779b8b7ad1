// `diskio`: Telegraf's cumulative per-device I/O counters (tag name, and wwid where the kernel
// has one) from /proc/diskstats: operations, bytes, milliseconds, all integers; from the second
// collection on, io_util (and io_await, io_svctm when the device did I/O) as floats, computed
// between two readings as Telegraf does. Devices whose counters are all zero are left out, as
// gopsutil leaves them out of Telegraf's view.
import { systemClock, type Clock } from '../clock.ts';
import { optionalFilter, type NameFilter } from './filter.ts';
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

/** /proc/diskstats counts sectors of 512 bytes whatever the device's real sector size. */
const SECTOR_BYTES = 512;

export interface DiskStat {
  name: string;
  fields: DiskCounters;
}

export interface DiskCounters {
  reads: number;
  merged_reads: number;
  read_bytes: number;
  read_time: number;
  writes: number;
  merged_writes: number;
  write_bytes: number;
  write_time: number;
  iops_in_progress: number;
  io_time: number;
  weighted_io_time: number;
}

export const DISKIO_INTEGER_FIELDS: ReadonlySet<string> = new Set([
  'reads', 'merged_reads', 'read_bytes', 'read_time', 'writes', 'merged_writes', 'write_bytes', 'write_time',
  'iops_in_progress', 'io_time', 'weighted_io_time',
]);

function allZero(c: DiskCounters): boolean {
  for (const k in c) if (c[k as keyof DiskCounters] !== 0) return false;
  return true;
}

/**
 * Telegraf's derived fields between two readings `intervalMs` apart, or none when a counter went
 * backwards (wrap, device replaced).
 */
export function diskDerived(prev: DiskCounters, cur: DiskCounters, intervalMs: number): Record<string, number> {
  if (cur.reads < prev.reads || cur.writes < prev.writes || cur.read_time < prev.read_time || cur.write_time < prev.write_time || cur.io_time < prev.io_time) {
    return {};
  }
  const out: Record<string, number> = {};
  const ops = cur.reads - prev.reads + (cur.writes - prev.writes);
  const ioTime = cur.io_time - prev.io_time;
  if (ops > 0) {
    out.io_await = (cur.read_time - prev.read_time + (cur.write_time - prev.write_time)) / ops;
    out.io_svctm = ioTime / ops;
  }
  if (intervalMs > 0) out.io_util = (100 * ioTime) / intervalMs;
  return out;
}

export interface DiskIoCollectorOptions {
  hostFs: HostFs;
  /** Only devices matching one of these globs when not empty (Telegraf's devices). */
  devices?: readonly string[];
  clock?: Clock;
}

export class DiskIoCollector implements Collector {
  readonly name = 'diskio';
  private readonly fs: HostFs;
  private readonly filter: NameFilter | null;
  private readonly clock: Clock;
  private prev = new Map<string, DiskCounters>();
  private prevAt = 0;
  /** /sys/block/<dev>/wwid per device seen (null: none); forgotten when the device goes. */
  private wwids = new Map<string, string | null>();

  constructor(opts: DiskIoCollectorOptions) {
    this.fs = opts.hostFs;
    this.filter = optionalFilter(opts.devices);
    this.clock = opts.clock ?? systemClock;
  }

  async collect(acc: Accumulator): Promise<void> {
    let stats: DiskStat[];
    try {
      stats = parseDiskstats(this.fs.readSmall('proc/diskstats').text);
    } catch (err) {
      acc.error('proc/diskstats', err);
      return;
    }
    // Whole milliseconds, as Telegraf's interval is.
    const now = Math.floor(this.clock.now());
    const intervalMs = now - this.prevAt;
    const next = new Map<string, DiskCounters>();
    const wwids = new Map<string, string | null>();
    for (const s of stats) {
      if (allZero(s.fields)) continue;
      if (this.filter && !this.filter.match(s.name)) continue;
      next.set(s.name, s.fields);
      const fields: Record<string, number> = { ...s.fields };
      const prev = this.prev.get(s.name);
      if (prev) Object.assign(fields, diskDerived(prev, s.fields, intervalMs));
      const tags: Record<string, string> = { name: s.name };
      const wwid = this.wwid(s.name);
      wwids.set(s.name, wwid);
      if (wwid !== null) tags.wwid = wwid;
      acc.add('diskio', fields, tags, DISKIO_INTEGER_FIELDS);
    }
    this.prev = next;
    this.prevAt = now;
    this.wwids = wwids;
  }

  private wwid(name: string): string | null {
    const known = this.wwids.get(name);
    if (known !== undefined) return known;
    try {
      const text = this.fs.readSmallOrNull(`sys/block/${name}/wwid`);
      return text === null ? null : text.replace(/\n$/, '') || null;
    } catch {
      return null;
    }
  }
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

