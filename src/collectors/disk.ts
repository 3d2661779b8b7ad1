// `disk`: Telegraf's usage per mounted file system (tags path, device, fstype, mode; bytes and
// inodes as integers, the two percentages as floats), from the mount table and statfs(2). A statfs that hangs (a dead NFS server) is given
// up after statfsTimeoutMs and that mount is skipped until the call comes back.
import { systemClock, type Clock, type TimerHandle } from '../clock.ts';
import type { Accumulator, Collector } from './types.ts';
import type { HostFs, StatFsResult } from './hostfs.ts';

export interface MountEntry {
  device: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

/** /proc/<pid>/mounts lines; \040-style octal escapes (spaces, tabs, …) decoded. */
export function parseMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length < 4) continue;
    const [device, mountPoint, fsType, options] = parts.map(unescapeMount) as [string, string, string, string];
    out.push({ device, mountPoint, fsType, options: options.split(',') });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** gopsutil's usage arithmetic: free is what non-root may use, used_percent relative to used + free. */
export function diskFields(st: StatFsResult): Record<string, number> | null {
  const total = st.blocks * st.bsize;
  if (total === 0) return null; // a pseudo file system (Telegraf skips these too)
  const free = st.bavail * st.bsize;
  const used = (st.blocks - st.bfree) * st.bsize;
  const inodesUsed = st.files - st.ffree;
  return {
    total,
    free,
    used,
    used_percent: used + free > 0 ? (100 * used) / (used + free) : 0,
    inodes_total: st.files,
    inodes_free: st.ffree,
    inodes_used: inodesUsed,
    inodes_used_percent: st.files > 0 ? (100 * inodesUsed) / st.files : 0,
  };
}

export const DISK_INTEGER_FIELDS: ReadonlySet<string> = new Set(['total', 'free', 'used', 'inodes_total', 'inodes_free', 'inodes_used']);

/**
 * The mounts to report: in `mountPoints` when that is not empty (Telegraf's mount_points, exact
 * paths), not of an ignored type, each mount point once (the last, visible one).
 */
export function selectMounts(mounts: MountEntry[], ignoreFsTypes: ReadonlySet<string>, mountPoints?: ReadonlySet<string>): MountEntry[] {
  const byPoint = new Map<string, MountEntry>();
  for (const m of mounts) {
    if (ignoreFsTypes.has(m.fsType)) continue;
    if (mountPoints !== undefined && mountPoints.size > 0 && !mountPoints.has(m.mountPoint)) continue;
    byPoint.delete(m.mountPoint); // re-insert so order follows the visible (last) mount
    byPoint.set(m.mountPoint, m);
  }
  return [...byPoint.values()];
}

export interface DiskCollectorOptions {
  hostFs: HostFs;
  /** File system types skipped (Telegraf's ignore_fs). */
  ignoreFsTypes: readonly string[];
  /** Only these mount points when not empty (Telegraf's mount_points). */
  mountPoints?: readonly string[];
  clock?: Clock;
  /** Mounts reported at most; the rest are skipped and reported as an error. */
  maxMounts?: number;
  statfsTimeoutMs?: number;
}

export const DISK_DEFAULTS = { maxMounts: 1000, statfsTimeoutMs: 2000 } as const;

export class DiskCollector implements Collector {
  readonly name = 'disk';
  private readonly hostFs: HostFs;
  private readonly clock: Clock;
  private ignore: Set<string>;
  private readonly mountPoints: Set<string>;
  private readonly maxMounts: number;
  private readonly statfsTimeoutMs: number;
  /** Mount points whose statfs has not returned yet: not asked again until it does. */
  private readonly pending = new Set<string>();

  constructor(opts: DiskCollectorOptions) {
    this.hostFs = opts.hostFs;
    this.clock = opts.clock ?? systemClock;
    this.ignore = new Set(opts.ignoreFsTypes);
    this.mountPoints = new Set(opts.mountPoints ?? []);
    this.maxMounts = opts.maxMounts ?? DISK_DEFAULTS.maxMounts;
    this.statfsTimeoutMs = opts.statfsTimeoutMs ?? DISK_DEFAULTS.statfsTimeoutMs;
  }

  async collect(acc: Accumulator): Promise<void> {
    // PID 1's table is the host's view even when the agent runs in its own mount namespace.
    let text = this.hostFs.readSmallOrNull('proc/1/mounts');
    if (text === null) {
      try {
        text = this.hostFs.readSmall('proc/self/mounts').text;
      } catch (err) {
        acc.error('proc/self/mounts', err);
        return;
      }
    }
    let mounts = selectMounts(parseMounts(text), this.ignore, this.mountPoints);
    if (mounts.length > this.maxMounts) {
      acc.error('mounts', new Error(`${mounts.length - this.maxMounts} mounts over maxMounts=${this.maxMounts} skipped`));
      mounts = mounts.slice(0, this.maxMounts);
    }
    const results = await Promise.all(mounts.map((m) => this.usage(m, acc)));
    for (const [i, fields] of results.entries()) {
      const m = mounts[i] as MountEntry;
      if (!fields) continue;
      acc.add('disk', fields, {
        path: m.mountPoint,
        device: m.device.startsWith('/dev/') ? m.device.slice(5) : m.device,
        fstype: m.fsType,
        mode: m.options.includes('ro') ? 'ro' : 'rw',
      }, DISK_INTEGER_FIELDS);
    }
  }

  private async usage(m: MountEntry, acc: Accumulator): Promise<Record<string, number> | null> {
    if (this.pending.has(m.mountPoint)) {
      acc.error(`statfs ${m.mountPoint}`, new Error('an earlier statfs has not returned; skipped'));
      return null;
    }
    this.pending.add(m.mountPoint);
    const call = this.hostFs.statfs(m.mountPoint).finally(() => this.pending.delete(m.mountPoint));
    let timer: TimerHandle | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = this.clock.setTimeout(() => resolve('timeout'), this.statfsTimeoutMs);
    });
    try {
      const st = await Promise.race([call, timeout]);
      if (st === 'timeout') {
        call.catch(() => undefined); // settles later; nobody waits for it any more
        acc.error(`statfs ${m.mountPoint}`, new Error(`no answer within ${this.statfsTimeoutMs} ms`));
        return null;
      }
      return diskFields(st);
    } catch (err) {
      // A mount point we may not look into (EACCES) or that vanished: not an error of the host.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'ENOENT' && code !== 'EPERM') acc.error(`statfs ${m.mountPoint}`, err);
      return null;
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
    }
  }
}
