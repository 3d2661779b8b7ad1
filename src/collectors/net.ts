// `net`: Telegraf's cumulative per-interface counters (tag interface) from /proc/net/dev.
// Like Telegraf with no interface list, loopback and interfaces that are down are left out
// (their flags come from /sys/class/net/<if>/flags; unreadable flags keep the interface).
import type { Accumulator, Collector } from './types.ts';
import type { HostFs } from './hostfs.ts';

const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;

export interface NetDevStat {
  iface: string;
  fields: Record<string, number>;
}

export function parseNetDev(text: string): NetDevStat[] {
  const out: NetDevStat[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const iface = line.slice(0, colon).trim();
    const v = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (iface === '' || v.length < 16 || v.some((x) => !Number.isFinite(x))) continue;
    const n = (i: number) => v[i] as number;
    out.push({
      iface,
      fields: {
        bytes_recv: n(0),
        packets_recv: n(1),
        err_in: n(2),
        drop_in: n(3),
        bytes_sent: n(8),
        packets_sent: n(9),
        err_out: n(10),
        drop_out: n(11),
      },
    });
  }
  return out;
}

/** Whether Telegraf's default (no interface list) would report an interface with these flags. */
export function reportedByDefault(flags: number): boolean {
  return (flags & IFF_LOOPBACK) === 0 && (flags & IFF_UP) !== 0;
}

export class NetCollector implements Collector {
  readonly name = 'net';

  constructor(private readonly opts: { hostFs: HostFs }) {}

  async collect(acc: Accumulator): Promise<void> {
    const fs = this.opts.hostFs;
    let stats: NetDevStat[];
    try {
      stats = parseNetDev(fs.readSmall('proc/net/dev').text);
    } catch (err) {
      acc.error('proc/net/dev', err);
      return;
    }
    for (const s of stats) {
      let flags: string | null = null;
      try {
        flags = fs.readSmallOrNull(`sys/class/net/${s.iface}/flags`);
      } catch {
        // Unreadable flags: report the interface rather than hide it.
      }
      if (flags !== null && !reportedByDefault(parseInt(flags.trim(), 16))) continue;
      acc.add('net', s.fields, { interface: s.iface });
    }
  }
}
