// Runs one plugin.sh process (started with execa) and reports how it ended: in its own process
// group (so a timeout kills its children too), as the plugin user, with stdout capped and stderr
// kept in a small ring. Deadlines, group kills and the cap are ours: execa's timeout/cancelSignal
// signal only the leader and its maxBuffer does not stop the process. It never rejects and always
// resolves, even when a process will not die. Deadlines are real time (node timers).
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { execa as Execa } from 'execa';
import type { PluginLauncher } from './launcher.ts';

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
  /** Start the process through this launcher instead of forking the agent itself. */
  launcher?: PluginLauncher;
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

/** After the leader exits, how long its stdio may stay open (held by an escaped grandchild). */
const DRAIN_AFTER_EXIT_MS = 500;
/** After SIGKILL, how long to wait for the exit before giving up on the process. */
const GIVE_UP_AFTER_KILL_MS = 2000;

/** Starts bash on the plugin script; execa never rejects here (`reject: false`). */
function startPluginProcess(execa: typeof Execa, opts: PluginProcessOptions) {
  return execa(opts.bashPath ?? 'bash', [opts.script ?? 'plugin.sh', ...opts.args], {
    cwd: opts.dir,
    env: opts.env,
    // `env` is the whole environment: nothing from the agent's leaks into a plugin.
    extendEnv: false,
    // Its own process group: the pid is the group id, and kill(-pid) reaches its children. This
    // also turns off execa's `cleanup` (kill on agent exit): stopping goes through `signal`.
    detached: true,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    // We read the pipes ourselves, to cap stdout and keep a ring of stderr.
    buffer: false,
    encoding: 'buffer',
    // A failed start or a non-zero exit is an outcome, not an exception.
    reject: false,
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
}

export async function runPluginProcess(opts: PluginProcessOptions): Promise<PluginProcessOutcome> {
  if (opts.launcher) return opts.launcher.run(opts);
  // Loaded on the first direct start only: the agent starts plugins through its launcher.
  const { execa } = await import('execa');
  return new Promise((resolve) => {
    const started = performance.now();
    const stdoutChunks: Buffer[] = [];
    let stdoutBytes = 0;
    const stderr = new ByteRing(opts.stderrRingBytes);
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    let timedOut = false;
    let outputCapped = false;
    let failure: string | null = null;
    let terminating = false;
    let done = false;
    /** From here the run's outcome is the process's own: a late timeout or stop does not change it. */
    let exited = false;
    const timers: NodeJS.Timeout[] = [];
    let removeAbortListener = (): void => {};

    let child: ReturnType<typeof startPluginProcess>;
    try {
      child = startPluginProcess(execa, opts);
    } catch (err) {
      // execa throws only on options it rejects; spawn failures come back as a result below.
      resolve(outcome(null, `cannot start bash: ${(err as Error).message}`));
      return;
    }
    const pid = child.pid ?? null;

    function outcome(p: number | null, why: string | null): PluginProcessOutcome {
      return {
        pid: p,
        exitCode,
        signal: exitSignal,
        timedOut,
        outputCapped,
        stdout: Buffer.concat(stdoutChunks),
        stderrTail: stderr.text(),
        durationMs: performance.now() - started,
        failure: why,
      };
    }

    function finish(): void {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      removeAbortListener();
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(outcome(pid, failure));
    }

    function killGroup(signal: NodeJS.Signals): void {
      if (pid === null) return;
      try {
        process.kill(-pid, signal);
      } catch {
        // ESRCH: the group is already gone.
      }
    }

    function terminate(): void {
      if (terminating) return;
      terminating = true;
      killGroup('SIGTERM');
      timers.push(
        setTimeout(() => {
          killGroup('SIGKILL');
          timers.push(
            setTimeout(() => {
              failure ??= `the process did not exit ${GIVE_UP_AFTER_KILL_MS} ms after SIGKILL`;
              finish();
            }, GIVE_UP_AFTER_KILL_MS),
          );
        }, opts.killGraceMs),
      );
    }

    child.stdout.on('data', (chunk: Buffer) => {
      if (outputCapped) return;
      if (stdoutBytes + chunk.length > opts.maxOutputBytes) {
        // execa's maxBuffer would only stop buffering; a plugin spewing output must be stopped.
        outputCapped = true;
        stdoutChunks.push(chunk.subarray(0, opts.maxOutputBytes - stdoutBytes));
        stdoutBytes = opts.maxOutputBytes;
        child.stdout.destroy();
        terminate();
        return;
      }
      stdoutChunks.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A destroyed or broken pipe is part of how a run ends, not an error of the agent.
    child.stdout.on('error', () => {});
    child.stderr.on('error', () => {});

    child.on('exit', (code, signal) => {
      exited = true;
      exitCode = code;
      exitSignal = signal;
      // What the plugin left behind in its group dies with it; this also closes the pipes
      // those processes hold, so the run ends now and not when they do.
      killGroup('SIGKILL');
      timers.push(setTimeout(finish, DRAIN_AFTER_EXIT_MS));
    });
    // execa settles once the process has exited and its pipes have closed, or when it could not
    // be started at all (missing bash, working directory not reachable): then there is no pid.
    void child.then((result) => {
      if (pid === null) failure ??= `cannot start the plugin: ${startError(result)}`;
      finish();
    });

    timers.push(
      setTimeout(() => {
        if (exited) return;
        timedOut = true;
        terminate();
      }, opts.timeoutMs),
    );
    if (opts.signal) {
      const onAbort = () => {
        // A process that already exited (its pipes still draining) finished: it was not stopped.
        if (exited) return;
        failure ??= 'stopped: the agent is shutting down';
        terminate();
      };
      if (opts.signal.aborted) onAbort();
      else {
        opts.signal.addEventListener('abort', onAbort, { once: true });
        removeAbortListener = () => opts.signal?.removeEventListener('abort', onAbort);
      }
    }
  });
}

/** execa's reason for a failed start on one line, e.g. an invalid cwd, then `spawn bash ENOENT`. */
function startError(result: { originalMessage?: unknown }): string {
  const why = typeof result.originalMessage === 'string' ? result.originalMessage : '';
  return why.replace(/\.?\n/g, '; ') || 'unknown error';
}

/** Keeps the last `max` bytes written to it. */
export class ByteRing {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    if (this.max <= 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - (this.chunks[0] as Buffer).length >= this.max) {
      this.size -= (this.chunks.shift() as Buffer).length;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
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
