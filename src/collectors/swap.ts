// `swap`: Telegraf's swap fields: total, used, free, used_percent (bytes, from /proc/meminfo)
// and the cumulative in/out traffic (bytes, from /proc/vmstat's pages swapped in and out).
import { parseMeminfo } from './mem.ts';
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

/** Linux swaps in pages of 4 KiB on every architecture gopsutil (and so Telegraf) supports. */
const SWAP_PAGE_BYTES = 4096;

/** "name value" lines of /proc/vmstat. */
export function parseVmstat(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

export function swapFields(meminfo: Map<string, number>, vmstat: Map<string, number> | null): Record<string, number> {
  const total = meminfo.get('SwapTotal') ?? 0;
  const free = meminfo.get('SwapFree') ?? 0;
  const used = total - free;
  const fields: Record<string, number> = { total, used, free, used_percent: total > 0 ? (100 * used) / total : 0 };
  if (vmstat) {
    fields.in = (vmstat.get('pswpin') ?? 0) * SWAP_PAGE_BYTES;
    fields.out = (vmstat.get('pswpout') ?? 0) * SWAP_PAGE_BYTES;
  }
  return fields;
}

export class SwapCollector implements Collector {
  readonly name = 'swap';

  constructor(private readonly opts: { hostFs: HostFs }) {}

  async collect(acc: Accumulator): Promise<void> {
    let meminfo: Map<string, number>;
    try {
      meminfo = parseMeminfo(this.opts.hostFs.readSmall('proc/meminfo').text);
    } catch (err) {
      acc.error('proc/meminfo', err);
      return;
    }
    let vmstat: Map<string, number> | null = null;
    try {
      vmstat = parseVmstat(this.opts.hostFs.readSmall('proc/vmstat').text);
    } catch (err) {
      acc.error('proc/vmstat', err);
    }
    acc.add('swap', swapFields(meminfo, vmstat));
  }
}
