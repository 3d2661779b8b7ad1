// Shared by the benchmarks: percentiles, CPU and memory sampling, and writing a bench's figures
// into its own section of BENCHMARKS.md (between <!-- bench:NAME --> markers), so benches run
// alone or together keep the others' figures.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/version.ts';

export interface BenchContext {
  /** Extra words after the bench name: `npm run bench -- publish --quick`. */
  args: string[];
  log(line: string): void;
}

export type Bench = (ctx: BenchContext) => Promise<string>;

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** CPU time (user + system, ms) of this process between two calls. */
export function cpuMeter(): () => number {
  const start = process.cpuUsage();
  return () => {
    const d = process.cpuUsage(start);
    return (d.user + d.system) / 1000;
  };
}

/** Samples RSS every `everyMs` until stopped; returns the peak in bytes. */
export function rssPeak(everyMs = 50): () => number {
  let peak = process.memoryUsage.rss();
  const t = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, everyMs);
  return () => {
    clearInterval(t);
    return Math.max(peak, process.memoryUsage.rss());
  };
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} × ${cpu}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

export function writeSection(name: string, markdown: string): void {
  const file = path.join(PACKAGE_ROOT, 'BENCHMARKS.md');
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  text = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

/** Clock ticks per second of /proc/PID/stat's CPU fields (USER_HZ: 100 on Linux). */
const CLK_TCK = 100;

/** CPU of a process from /proc (Linux), ms: its own (user + system) and its reaped children's. */
export function procCpu(pid: number): { ownMs: number; childrenMs: number } {
  return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** The CPU figures of a /proc/PID/stat line, ms. */
export function parseProcStat(text: string): { ownMs: number; childrenMs: number } {
  // Fields after the command name (which may hold spaces): utime, stime, cutime, cstime are 11–14.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ').map(Number);
  const tick = 1000 / CLK_TCK;
  return { ownMs: ((f[11] ?? 0) + (f[12] ?? 0)) * tick, childrenMs: ((f[13] ?? 0) + (f[14] ?? 0)) * tick };
}

/** Own CPU (user + system) of a process in ms; 0 when there is no such process. */
export function procCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return procCpu(pid).ownMs;
  } catch {
    return 0;
  }
}

/** Resident and peak resident memory of a process (VmRSS, VmHWM), bytes. */
export function procMem(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
