// The process table: one pass over /proc/<pid>/stat (and, when asked, cmdline), shared by the
// `processes` collector and the process checks. Reads synchronously in slices and yields to
// the event loop between slices, so a host with many thousands of processes never stalls it.
import type { HostFs } from './hostfs.ts';

export interface ProcStat {
  pid: number;
  /** Executable name as the kernel keeps it: at most 15 characters. */
  comm: string;
  /** One letter: R, S, D, Z, T, t, W, X, I, P, … */
  state: string;
  ppid: number;
  numThreads: number;
  /** Clock ticks after boot: with the pid, identifies one process across pid reuse. */
  startTime: number;
}

export interface ProcessEntry extends ProcStat {
  /** Arguments joined by spaces; only when the scan was asked for command lines. */
  cmdline?: string;
}

/** /proc/<pid>/stat; the name sits in parentheses and may itself hold spaces and ")". */
export function parsePidStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ', 20); // only up to starttime: the rest is not needed
  // rest[0] is field 3 (state) of proc(5); num_threads is field 20, starttime field 22.
  if (!Number.isInteger(pid) || rest.length < 20) return null;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0] as string,
    ppid: Number(rest[1]),
    numThreads: Number(rest[17]),
    startTime: Number(rest[19]),
  };
}

/** /proc/<pid>/cmdline: NUL-separated arguments, as one space-separated string. */
export function parseCmdline(raw: string): string {
  return raw.replace(/\0+$/, '').replace(/\0/g, ' ');
}

export interface ProcessScanOptions {
  withCmdline: boolean;
  /** Processes read at most; the rest are counted in `skipped`. */
  maxProcesses: number;
  /** Bytes of a command line read at most (Java class paths run to hundreds of KiB). */
  maxCmdlineBytes: number;
  /** Processes read between two yields to the event loop. */
  sliceSize: number;
}

export const PROCESS_SCAN_DEFAULTS: ProcessScanOptions = {
  withCmdline: false,
  maxProcesses: 100_000,
  maxCmdlineBytes: 64 * 1024,
  sliceSize: 256,
};

export interface ProcessScan {
  processes: ProcessEntry[];
  /** Over maxProcesses, not read. */
  skipped: number;
}

export async function scanProcesses(fs: HostFs, opts: Partial<ProcessScanOptions> = {}): Promise<ProcessScan> {
  const o = { ...PROCESS_SCAN_DEFAULTS, ...opts };
  const pids = fs.listDir('proc').filter((n) => /^\d+$/.test(n));
  const skipped = Math.max(0, pids.length - o.maxProcesses);
  const processes: ProcessEntry[] = [];
  for (let i = 0; i < pids.length - skipped; i++) {
    if (i > 0 && i % o.sliceSize === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const pid = pids[i] as string;
    let entry: ProcessEntry | null;
    try {
      const stat = fs.readSmallOrNull(`proc/${pid}/stat`, undefined, { wholeOnOpen: true });
      entry = stat === null ? null : parsePidStat(stat);
      if (entry && o.withCmdline) {
        const raw = fs.readSmallOrNull(`proc/${pid}/cmdline`, o.maxCmdlineBytes);
        if (raw === null) entry = null;
        else entry.cmdline = parseCmdline(raw);
      }
    } catch {
      // A process we may not read (hidepid) or one that exited mid-read: not in the table.
      entry = null;
    }
    if (entry) processes.push(entry);
  }
  return { processes, skipped };
}
