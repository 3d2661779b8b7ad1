// One plugin.sh process, as the plugin launcher (launcher.ts, launcher-child.mjs) runs it: what a
// run is given (folder, arguments, complete environment, deadline, output caps, user) and how it
// ended (exit code or signal, timeout, capped output, stderr tail, duration). The launcher keeps
// every guarantee: own process group, SIGTERM then SIGKILL to the group, stdout cap, stderr ring.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';

export interface PluginProcessOptions {
  /** Working directory: the plugin's folder. */
  dir: string;
  /** Script run with bash, relative to `dir`. Default plugin.sh. */
  script?: string;
  args: readonly string[];
  /** The complete environment (nothing is inherited). */
  env: Record<string, string>;
  timeoutMs: number;
  /** SIGTERM to the group at the timeout; SIGKILL this long after. */
  killGraceMs: number;
  maxOutputBytes: number;
  stderrRingBytes: number;
  /** Set both to run as another user (the agent must be root). */
  uid?: number;
  gid?: number;
  /** Default "bash" (looked up in the PATH of `env`). */
  bashPath?: string;
  /** Aborting ends the run as a timeout does (SIGTERM, then SIGKILL); used when the agent stops. */
  signal?: AbortSignal;
}

export interface PluginProcessOutcome {
  pid: number | null;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** stdout went past maxOutputBytes: reading stopped and the group was killed. */
  outputCapped: boolean;
  /** What was read of stdout (at most maxOutputBytes). */
  stdout: Buffer;
  stderrTail: string;
  durationMs: number;
  /** The process could not be started, or would not die; null otherwise. */
  failure: string | null;
}

/**
 * The absolute path of `name` in `searchPath` (like `command -v`), or `name` itself when not
 * found. Resolved once at start so each spawn does not walk the PATH again.
 */
export async function findExecutable(name: string, searchPath: string | undefined): Promise<string> {
  for (const dir of (searchPath ?? '').split(':')) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return name;
}
