// The agent's side of the plugin launcher (launcher-child.mjs): one small long-lived process,
// started with execa on the first run, that forks the plugin processes. Forking the agent itself
// per run copies the page tables of its whole heap, which costs the agent and each child more
// than the plugin's own work (measured in BENCHMARKS.md, "Footprint"). Every guarantee of a run
// is kept by the launcher: own process group, SIGTERM then SIGKILL to the group at the deadline,
// the plugin user, stdout cap, stderr tail, exit code, duration. If the launcher dies, the runs
// in flight are reported as failed (their groups are killed here) and the next run starts a new
// launcher.
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { PluginProcessOptions, PluginProcessOutcome } from './plugin-process.ts';
import { PACKAGE_ROOT } from '../version.ts';

export interface PluginLauncherOptions {
  logger?: Logger;
  /** Default: the agent's own node binary. */
  nodePath?: string;
}

/** The launcher's script: plain JavaScript, the same file from src/ and from dist/. */
const CHILD_SCRIPT = path.join(PACKAGE_ROOT, 'src', 'plugins', 'launcher-child.mjs');
/** How much of the launcher's own stderr is kept for the log when it dies. */
const STDERR_KEPT_CHARS = 2000;

interface Pending {
  resolve(outcome: PluginProcessOutcome): void;
  pid: number | null;
  started: number;
}

interface DoneMessage {
  pid: number | null;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  outputCapped: boolean;
  stdout: string;
  stderrTail: string;
  durationMs: number;
  failure: string | null;
}

interface Child {
  write(line: string): void;
  ref(): void;
  unref(): void;
}

export class PluginLauncher {
  private readonly opts: PluginLauncherOptions;
  private child: Promise<Child> | undefined;
  /** The started launcher, once `child` has resolved. */
  private live: Child | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(opts: PluginLauncherOptions = {}) {
    this.opts = opts;
  }

  /** Runs one plugin process through the launcher; never rejects. */
  async run(opts: PluginProcessOptions): Promise<PluginProcessOutcome> {
    const started = performance.now();
    let child: Child;
    try {
      child = await (this.child ??= this.start());
    } catch (err) {
      this.child = undefined;
      return failed(null, started, `cannot start the plugin launcher: ${(err as Error).message}`);
    }
    const id = this.nextId++;
    const outcome = new Promise<PluginProcessOutcome>((resolve) => this.pending.set(id, { resolve, pid: null, started }));
    if (this.pending.size === 1) child.ref();
    child.write(
      JSON.stringify({
        op: 'run',
        id,
        bash: opts.bashPath ?? 'bash',
        script: opts.script ?? 'plugin.sh',
        args: opts.args,
        dir: opts.dir,
        env: opts.env,
        ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
        timeoutMs: opts.timeoutMs,
        killGraceMs: opts.killGraceMs,
        maxOutputBytes: opts.maxOutputBytes,
        stderrRingBytes: opts.stderrRingBytes,
      }),
    );
    const onAbort = () => child.write(JSON.stringify({ op: 'stop', id }));
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await outcome;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async start(): Promise<Child> {
    const { execa } = await import('execa');
    const proc = execa(this.opts.nodePath ?? process.execPath, ['--max-semi-space-size=1', CHILD_SCRIPT], {
      // Nothing of the agent's environment: each run carries its own complete one.
      env: {},
      extendEnv: false,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      encoding: 'utf8',
      reject: false,
      // Killed with the agent; it also exits by itself when its stdin closes.
      cleanup: true,
    });
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer | string) => {
      stderr = (stderr + chunk.toString()).slice(-STDERR_KEPT_CHARS);
    });
    proc.stdin.on('error', () => {});
    proc.stdout.on('error', () => {});
    proc.stderr.on('error', () => {});
    const lines = createInterface({ input: proc.stdout });
    lines.on('line', (line) => this.onMessage(line));
    let exited = false;
    void proc.then((result) => {
      exited = true;
      this.child = undefined;
      this.live = undefined;
      const how = result.signal ? `killed by ${result.signal}` : `exit code ${String(result.exitCode)}`;
      if (this.pending.size > 0 || result.signal || result.exitCode !== 0) {
        this.opts.logger?.error({ how, runsInFlight: this.pending.size, stderr: stderr.trim() || undefined }, 'the plugin launcher exited; the next run starts a new one');
      }
      // Its runs cannot be followed any more: their groups are ended here and each is a failure.
      for (const [id, p] of this.pending) {
        if (p.pid !== null) {
          try {
            process.kill(-p.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        this.pending.delete(id);
        p.resolve(failed(p.pid, p.started, `the plugin launcher exited (${how}) during the run`));
      }
    });
    if (proc.pid === undefined) {
      await proc;
      throw new Error(`${this.opts.nodePath ?? process.execPath} ${CHILD_SCRIPT} did not start`);
    }
    const handles = [proc, proc.stdin, proc.stdout, proc.stderr] as unknown as Array<{ ref?(): void; unref?(): void }>;
    const child: Child = {
      write: (line) => {
        if (!exited) proc.stdin.write(`${line}\n`);
      },
      // An idle launcher must not keep the agent (or a one-shot command) alive.
      ref: () => handles.forEach((h) => h.ref?.()),
      unref: () => handles.forEach((h) => h.unref?.()),
    };
    child.unref();
    this.live = child;
    return child;
  }

  /** Process ids of the runs in flight that the launcher has reported started. */
  startedPids(): number[] {
    const pids: number[] = [];
    for (const p of this.pending.values()) if (p.pid !== null) pids.push(p.pid);
    return pids;
  }

  private onMessage(line: string): void {
    let msg: { id?: number; started?: number; done?: DoneMessage };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      this.opts.logger?.warn({ line: line.slice(0, 200) }, 'the plugin launcher wrote a line that is not JSON');
      return;
    }
    const p = msg.id === undefined ? undefined : this.pending.get(msg.id);
    if (!p) return;
    if (msg.started !== undefined) p.pid = msg.started;
    if (msg.done) {
      this.pending.delete(msg.id as number);
      if (this.pending.size === 0) this.live?.unref();
      p.resolve({ ...msg.done, stdout: Buffer.from(msg.done.stdout, 'base64') });
    }
  }
}

function failed(pid: number | null, started: number, failure: string): PluginProcessOutcome {
  return {
    pid,
    exitCode: null,
    signal: null,
    timedOut: false,
    outputCapped: false,
    stdout: Buffer.alloc(0),
    stderrTail: '',
    durationMs: performance.now() - started,
    failure,
  };
}
