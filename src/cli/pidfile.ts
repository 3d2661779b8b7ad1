// The pid file: written by `agent start`, read by `agent stop` and `agent status`. A pid file
// whose process is gone is stale and says so rather than blocking a start.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export type PidState = { state: 'none' } | { state: 'running'; pid: number } | { state: 'stale'; pid: number | null };

export function readPidFile(file: string): PidState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { state: 'none' };
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) return { state: 'stale', pid: null };
  return isAlive(pid) ? { state: 'running', pid } : { state: 'stale', pid };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function writePidFile(file: string, pid: number): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${pid}\n`, { mode: 0o644 });
}

/** Removes the pid file only if it still names `pid` (a newer agent may own it). */
export function removePidFile(file: string, pid: number): void {
  const current = readPidFile(file);
  if (current.state !== 'none' && current.pid !== null && current.pid !== pid) return;
  rmSync(file, { force: true });
}
