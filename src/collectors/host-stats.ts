// The system stats collected once per tick and copied to every namespace: the list below is
// the collector registry (adding a collector = one new file and one line here). Each member
// runs in turn; one that fails leaves the others' measurements in the batch. Each can be turned
// off and takes Telegraf's options (the `collect` config's per-collector sections).
import type { Clock } from '../clock.ts';
import { collectSchema, type CollectConfig } from '../config/schema.ts';
import { CpuCollector } from './cpu.ts';
import { DiskCollector } from './disk.ts';
import { DiskIoCollector } from './diskio.ts';
import { HostFs, type StatFsResult } from './hostfs.ts';
import { MemCollector } from './mem.ts';
import { NetCollector } from './net.ts';
import { ProcessesCollector } from './processes.ts';
import { SwapCollector } from './swap.ts';
import { SystemCollector } from './system.ts';
import type { Accumulator, Collector } from './types.ts';

/** The per-collector settings (the `collect` config's cpu, mem, …, processes sections). */
export type SystemCollectorsSettings = Pick<CollectConfig, 'cpu' | 'mem' | 'swap' | 'system' | 'disk' | 'diskio' | 'net' | 'processes'>;

export interface HostStatsOptions {
  /** Root of proc/ and sys/ (collect.hostRoot). */
  hostRoot: string;
  /** Which collectors run, with which options; default: Telegraf's defaults (the schema's). */
  settings?: SystemCollectorsSettings;
  clock?: Clock;
  /** Replaces statfs(2): golden tests on a fixture tree. */
  statfs?: (absolutePath: string) => Promise<StatFsResult>;
}

export function hostStatsCollectors(opts: HostStatsOptions): Collector[] {
  const hostFs = new HostFs({ root: opts.hostRoot, ...(opts.statfs ? { statfs: opts.statfs } : {}) });
  const s = opts.settings ?? collectSchema.parse({});
  const clock = opts.clock ? { clock: opts.clock } : {};
  const all: Array<[boolean, () => Collector]> = [
    [s.cpu.enabled, () => new CpuCollector({ hostFs, perCpu: s.cpu.percpu, totalCpu: s.cpu.totalcpu })],
    [s.mem.enabled, () => new MemCollector({ hostFs })],
    [s.swap.enabled, () => new SwapCollector({ hostFs })],
    [s.system.enabled, () => new SystemCollector({ hostFs })],
    [s.disk.enabled, () => new DiskCollector({ hostFs, ignoreFsTypes: s.disk.ignoreFs, mountPoints: s.disk.mountPoints, ...clock })],
    [s.diskio.enabled, () => new DiskIoCollector({ hostFs, devices: s.diskio.devices, ...clock })],
    [s.net.enabled, () => new NetCollector({ hostFs, interfaces: s.net.interfaces, ignoreProtocolStats: s.net.ignoreProtocolStats })],
    [s.processes.enabled, () => new ProcessesCollector({ hostFs })],
  ];
  return all.filter(([on]) => on).map(([, make]) => make());
}

export class HostStatsCollector implements Collector {
  readonly name = 'system';
  readonly members: readonly Collector[];

  constructor(opts: HostStatsOptions) {
    this.members = hostStatsCollectors(opts);
  }

  async collect(acc: Accumulator): Promise<void> {
    for (const c of this.members) {
      try {
        await c.collect(acc);
      } catch (err) {
        acc.error(c.name, err);
      }
    }
  }
}
