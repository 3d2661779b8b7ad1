// Process checks: how many processes match (name = the kernel's comm exactly, or a substring of
// the command line), and whether the matching set changed since the previous check (a pid gone
// or a new one started: a restart). One checker per namespace, since the state is per check.
import type { ProcessCheck } from '../registry/types.ts';
import { scanProcesses, type ProcessEntry } from './proc-table.ts';
import type { HostFs } from './hostfs.ts';
import type { Accumulator } from './types.ts';

/** The kernel keeps 15 bytes of an executable's name (TASK_COMM_LEN - 1). */
const COMM_MAX = 15;

export function processMatches(p: ProcessEntry, check: ProcessCheck): boolean {
  if (check.name !== undefined) return p.comm === check.name.slice(0, COMM_MAX);
  if (check.cmdline !== undefined) return p.cmdline !== undefined && p.cmdline !== '' && p.cmdline.includes(check.cmdline);
  return false;
}

export function checkId(check: ProcessCheck): string {
  return check.name !== undefined ? `name\0${check.name}` : `cmdline\0${check.cmdline ?? ''}`;
}

/** pid + start time: a reused pid is a different process. */
function identity(p: ProcessEntry): string {
  return `${p.pid}:${p.startTime}`;
}

export const PROCESS_RESULT_CODES = { success: 0, not_running: 1, read_failed: 2 } as const;

export class ProcessChecker {
  private previous = new Map<string, Set<string>>();

  constructor(private readonly opts: { hostFs: HostFs; maxProcesses?: number }) {}

  async check(checks: readonly ProcessCheck[], acc: Accumulator): Promise<void> {
    if (checks.length === 0) {
      this.previous.clear();
      return;
    }
    let procs: ProcessEntry[] | null = null;
    try {
      const scan = await scanProcesses(this.opts.hostFs, {
        withCmdline: checks.some((c) => c.cmdline !== undefined),
        ...(this.opts.maxProcesses ? { maxProcesses: this.opts.maxProcesses } : {}),
      });
      if (scan.skipped > 0) acc.error('proc', new Error(`${scan.skipped} processes over maxProcesses not checked`));
      procs = scan.processes;
    } catch (err) {
      acc.error('proc', err);
    }
    const next = new Map<string, Set<string>>();
    for (const c of checks) {
      const tags: Record<string, string> = c.name !== undefined ? { process_name: c.name } : { pattern: c.cmdline ?? '' };
      if (procs === null) {
        acc.add('process_check', { result_code: PROCESS_RESULT_CODES.read_failed }, { ...tags, result: 'read_failed' });
        continue;
      }
      const id = checkId(c);
      const now = new Set(procs.filter((p) => processMatches(p, c)).map(identity));
      const before = this.previous.get(id);
      next.set(id, now);
      let started = 0;
      let exited = 0;
      if (before) {
        for (const k of now) if (!before.has(k)) started++;
        for (const k of before) if (!now.has(k)) exited++;
      }
      const result = now.size > 0 ? 'success' : 'not_running';
      acc.add(
        'process_check',
        {
          count: now.size,
          restarted: started > 0 || exited > 0 ? 1 : 0,
          started,
          exited,
          result_code: PROCESS_RESULT_CODES[result],
        },
        { ...tags, result },
      );
    }
    // Keep the previous sets of checks that could not be evaluated now (read failure).
    if (procs !== null) this.previous = next;
  }
}
