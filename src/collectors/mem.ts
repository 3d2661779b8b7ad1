// `mem`: Telegraf's memory fields from /proc/meminfo, computed as gopsutil v4 does (cached
// includes SReclaimable; used = total - available), with Telegraf's types: every byte count an
// integer, the two percentages floats.
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

/** /proc/meminfo as a map; "kB" values converted to bytes, unit-less ones (page counts) kept. */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s+(\d+)(?:\s+(kB))?\s*$/.exec(line);
    if (!m) continue;
    const v = Number(m[2]);
    out.set(m[1] as string, m[3] ? v * 1024 : v);
  }
  return out;
}

export function memFields(info: Map<string, number>): Record<string, number> {
  const g = (k: string) => info.get(k) ?? 0;
  const total = g('MemTotal');
  const free = g('MemFree');
  const buffers = g('Buffers');
  const cached = g('Cached') + g('SReclaimable');
  // Kernels before 3.14 have no MemAvailable: gopsutil's simple estimate then.
  const available = info.has('MemAvailable') ? g('MemAvailable') : free + cached;
  const used = total - available;
  const pct = (v: number) => (total > 0 ? (100 * v) / total : 0);
  return {
    total,
    available,
    used,
    free,
    used_percent: pct(used),
    available_percent: pct(available),
    active: g('Active'),
    inactive: g('Inactive'),
    buffered: buffers,
    cached,
    commit_limit: g('CommitLimit'),
    committed_as: g('Committed_AS'),
    dirty: g('Dirty'),
    high_free: g('HighFree'),
    high_total: g('HighTotal'),
    huge_page_size: g('Hugepagesize'),
    huge_pages_free: g('HugePages_Free'),
    huge_pages_total: g('HugePages_Total'),
    low_free: g('LowFree'),
    low_total: g('LowTotal'),
    mapped: g('Mapped'),
    page_tables: g('PageTables'),
    shared: g('Shmem'),
    slab: g('Slab'),
    sreclaimable: g('SReclaimable'),
    sunreclaim: g('SUnreclaim'),
    swap_cached: g('SwapCached'),
    swap_free: g('SwapFree'),
    swap_total: g('SwapTotal'),
    vmalloc_chunk: g('VmallocChunk'),
    vmalloc_total: g('VmallocTotal'),
    vmalloc_used: g('VmallocUsed'),
    write_back: g('Writeback'),
    write_back_tmp: g('WritebackTmp'),
  };
}

/** Every mem field but the two percentages. */
export const MEM_INTEGER_FIELDS: ReadonlySet<string> = new Set(
  Object.keys(memFields(new Map())).filter((k) => !k.endsWith('_percent')),
);

export class MemCollector implements Collector {
  readonly name = 'mem';

  constructor(private readonly opts: { hostFs: HostFs }) {}

  async collect(acc: Accumulator): Promise<void> {
    try {
      acc.add('mem', memFields(parseMeminfo(this.opts.hostFs.readSmall('proc/meminfo').text)), undefined, MEM_INTEGER_FIELDS);
    } catch (err) {
      acc.error('proc/meminfo', err);
    }
  }
}
