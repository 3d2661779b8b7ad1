// The system stats collected once per tick and copied to every namespace: the list below is
// the collector registry (adding a collector = one new file and one line here). Each member
// runs in turn; one that fails leaves the others' measurements in the batch.
import type { Clock } from '../clock.ts';
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

export interface HostStatsOptions {
  /** Root of proc/ and sys/ (collect.hostRoot). */
  hostRoot: string;
  /** File system types the disk collector skips (collect.ignoreFsTypes). */
  ignoreFsTypes: readonly string[];
  clock?: Clock;
  /** Per-CPU `cpu` points besides cpu-total (Telegraf's percpu); default true. */
  perCpu?: boolean;
  /** Replaces statfs(2): golden tests on a fixture tree. */
  statfs?: (absolutePath: string) => Promise<StatFsResult>;
}

export function hostStatsCollectors(opts: HostStatsOptions): Collector[] {
  const hostFs = new HostFs({ root: opts.hostRoot, ...(opts.statfs ? { statfs: opts.statfs } : {}) });
  return [
    new CpuCollector({ hostFs, perCpu: opts.perCpu ?? true }),
    new MemCollector({ hostFs }),
    new SwapCollector({ hostFs }),
    new SystemCollector({ hostFs }),
    new DiskCollector({ hostFs, ignoreFsTypes: opts.ignoreFsTypes, ...(opts.clock ? { clock: opts.clock } : {}) }),
    new DiskIoCollector({ hostFs }),
    new NetCollector({ hostFs }),
    new ProcessesCollector({ hostFs }),
  ];
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
