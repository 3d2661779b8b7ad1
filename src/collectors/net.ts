// `net`: Telegraf's cumulative per-interface counters (tag interface) from /proc/net/dev and the
// link speed in Mbit/s (-1 unknown) from /sys/class/net/<if>/speed, all integers. Like Telegraf
// with no interface list, loopback, interfaces that are down and interfaces the kernel does not
// list in /sys/class/net are left out; with a list, exactly the interfaces it matches. With
// ignoreProtocolStats off, one more line (interface=all) carries /proc/net/snmp's counters.
import { optionalFilter, type NameFilter } from './filter.ts';
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

export const NET_INTEGER_FIELDS: ReadonlySet<string> = new Set([
  'bytes_recv', 'packets_recv', 'err_in', 'drop_in', 'bytes_sent', 'packets_sent', 'err_out', 'drop_out', 'speed',
]);

/** Link speed as Telegraf reads it: the speed file's integer, -1 when absent or unreadable. */
export function parseSpeed(text: string | null): number {
  if (text === null) return -1;
  const t = text.trim();
  return /^-?\d+$/.test(t) ? Number(t) : -1;
}

/**
 * /proc/net/snmp's header/value line pairs as gopsutil's NetProto gives them to Telegraf:
 * "<protocol>_<counter>" in lower case, integers.
 */
export function parseNetSnmp(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const head = (lines[i] as string).trim().split(/\s+/);
    const vals = (lines[i + 1] as string).trim().split(/\s+/);
    const proto = head[0];
    if (!proto?.endsWith(':') || vals[0] !== proto || head.length !== vals.length) continue;
    const prefix = proto.slice(0, -1).toLowerCase();
    for (let k = 1; k < head.length; k++) {
      const v = Number(vals[k]);
      if (Number.isInteger(v)) out[`${prefix}_${(head[k] as string).toLowerCase()}`] = v;
    }
  }
  return out;
}

export interface NetCollectorOptions {
  hostFs: HostFs;
  /** Only interfaces matching one of these globs, whatever their state, when not empty (Telegraf's interfaces). */
  interfaces?: readonly string[];
  /** Leave out the interface=all line of protocol counters; default true, as the reference Telegraf has it. */
  ignoreProtocolStats?: boolean;
}

export class NetCollector implements Collector {
  readonly name = 'net';
  private readonly fs: HostFs;
  private readonly filter: NameFilter | null;
  private readonly ignoreProtocolStats: boolean;
  private snmpIntegers = new Set<string>();

  constructor(opts: NetCollectorOptions) {
    this.fs = opts.hostFs;
    this.filter = optionalFilter(opts.interfaces);
    this.ignoreProtocolStats = opts.ignoreProtocolStats ?? true;
  }

  async collect(acc: Accumulator): Promise<void> {
    const fs = this.fs;
    let stats: NetDevStat[];
    try {
      stats = parseNetDev(fs.readSmall('proc/net/dev').text);
    } catch (err) {
      acc.error('proc/net/dev', err);
      return;
    }
    for (const s of stats) {
      if (this.filter) {
        if (!this.filter.match(s.iface)) continue;
      } else {
        let flags: string | null = null;
        try {
          flags = fs.readSmallOrNull(`sys/class/net/${s.iface}/flags`);
        } catch {
          // Unreadable flags: not an interface Telegraf would find either.
        }
        if (flags === null || !reportedByDefault(parseInt(flags.trim(), 16))) continue;
      }
      let speed: string | null = null;
      try {
        // EINVAL for a link that is down: unknown, as in Telegraf.
        speed = fs.readSmallOrNull(`sys/class/net/${s.iface}/speed`);
      } catch {
        speed = null;
      }
      acc.add('net', { ...s.fields, speed: parseSpeed(speed) }, { interface: s.iface }, NET_INTEGER_FIELDS);
    }
    if (!this.ignoreProtocolStats) {
      try {
        const fields = parseNetSnmp(fs.readSmall('proc/net/snmp').text);
        // The counters a kernel has are the same every time: one set, grown when a kernel adds one.
        for (const k in fields) this.snmpIntegers.add(k);
        if (Object.keys(fields).length > 0) acc.add('net', fields, { interface: 'all' }, this.snmpIntegers);
      } catch (err) {
        acc.error('proc/net/snmp', err);
      }
    }
  }
}
