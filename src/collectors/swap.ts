// `swap`: Telegraf's two lines: total, used, free (integer bytes), used_percent (float), from
// /proc/meminfo; then the cumulative in/out traffic (integer bytes, from /proc/vmstat's pages
// swapped in and out). Telegraf writes them apart (a gauge and a counter), and so do we.
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

export function swapFields(meminfo: Map<string, number>): Record<string, number> {
  const total = meminfo.get('SwapTotal') ?? 0;
  const free = meminfo.get('SwapFree') ?? 0;
  const used = total - free;
  return { total, used, free, used_percent: total > 0 ? (100 * used) / total : 0 };
}

export function swapTrafficFields(vmstat: Map<string, number>): Record<string, number> {
  return { in: (vmstat.get('pswpin') ?? 0) * SWAP_PAGE_BYTES, out: (vmstat.get('pswpout') ?? 0) * SWAP_PAGE_BYTES };
}

const SWAP_INTEGER_FIELDS: ReadonlySet<string> = new Set(['total', 'used', 'free']);
const SWAP_TRAFFIC_INTEGER_FIELDS: ReadonlySet<string> = new Set(['in', 'out']);

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
    acc.add('swap', swapFields(meminfo), undefined, SWAP_INTEGER_FIELDS);
    try {
      acc.add('swap', swapTrafficFields(parseVmstat(this.opts.hostFs.readSmall('proc/vmstat').text)), undefined, SWAP_TRAFFIC_INTEGER_FIELDS);
    } catch (err) {
      acc.error('proc/vmstat', err);
    }
  }
}
