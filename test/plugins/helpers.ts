// Shared by the plugin tests: temp folders the plugin user can enter, real git repositories
// made with the git CLI, and the fakes above the plugin subsystem's seams (clock, scheduler,
// metric sink).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Clock, TimerHandle } from '../../src/clock.ts';
import type { Metric, MetricSink, PushOptions, PushResult } from '../../src/points/metric.ts';
import type { JobScheduler, JobSpec, RunDeclined } from '../../src/scheduler/types.ts';

/** A temp folder with mode 0755 (mkdtemp gives 0700, which shuts the plugin user out). */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `nsagent-${prefix}-`));
  chmodSync(dir, 0o755);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
};

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** A bare repo on disk and a work tree that commits and pushes to it. */
export class TestRepo {
  readonly bare: string;
  readonly work: string;

  constructor(root: string, name: string) {
    this.bare = path.join(root, 'remotes', `${name}.git`);
    this.work = path.join(root, 'work', name);
    mkdirSync(this.bare, { recursive: true });
    mkdirSync(this.work, { recursive: true });
    git(this.bare, 'init', '--quiet', '--bare', '-b', 'main');
    git(this.work, 'init', '--quiet', '-b', 'main');
    git(this.work, 'remote', 'add', 'origin', this.bare);
  }

  get url(): string {
    return `file://${this.bare}`;
  }

  /** Writes the files (null deletes), commits, pushes to `branch`; returns the commit. */
  commit(files: Record<string, string | null>, branch = 'main'): string {
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(this.work, name);
      if (content === null) rmSync(file, { force: true });
      else {
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, content);
      }
    }
    git(this.work, 'add', '-A');
    git(this.work, 'commit', '--quiet', '--allow-empty', '-m', `change ${Object.keys(files).join(',')}`);
    git(this.work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
    return git(this.work, 'rev-parse', 'HEAD');
  }

  tag(name: string): void {
    git(this.work, 'tag', name);
    git(this.work, 'push', '--quiet', 'origin', `refs/tags/${name}`);
  }
}

/** A bare repo on disk whose root holds `plugin.sh` with `script`; returns its file:// URL. */
export function pluginRepo(root: string, name: string, script: string): string {
  const repo = new TestRepo(root, name);
  repo.commit({ 'plugin.sh': script });
  return repo.url;
}

/** The body of a fixture plugin under test/fixtures/plugins/<name>/plugin.sh. */
export function fixture(name: string): string {
  return readFileSync(new URL(`../fixtures/plugins/${name}/plugin.sh`, import.meta.url), 'utf8');
}

/** Poll with a deadline, for states that have no event to await. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Gone, or a zombie nobody reaped yet (it runs no code any more). */
export function processGone(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^State:\s+Z/m.test(status);
  } catch {
    return true;
  }
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2024, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { id } as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete((handle as { id: number }).id);
  }

  pending(): number {
    return this.timers.size;
  }

  /** Moves time forward, firing due timers in order (timers they set fire too when due). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let nextId: number | undefined;
      let next: { at: number; fn: () => void } | undefined;
      for (const [id, timer] of this.timers) if (timer.at <= end && (!next || timer.at < next.at)) [nextId, next] = [id, timer];
      if (!next || nextId === undefined) break;
      this.timers.delete(nextId);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

/** Records the jobs it is given; tests fire them by hand. */
export class FakeScheduler implements JobScheduler {
  jobs = new Map<string, JobSpec>();
  reconciles = 0;

  reconcile(_owner: string, jobs: JobSpec[]): void {
    this.reconciles++;
    this.jobs = new Map(jobs.map((j) => [j.key, j]));
  }

  status(): Record<string, unknown> {
    return { jobs: this.jobs.size };
  }

  fire(key: string): Promise<void | RunDeclined> {
    const job = this.jobs.get(key);
    if (!job) throw new Error(`no job ${key}; there are ${[...this.jobs.keys()].join(', ')}`);
    return job.run({ plannedAt: Date.now() });
  }
}

export interface Pushed {
  namespace: string;
  metrics: Metric[];
  opts: PushOptions | undefined;
}

/**
 * Accepts every metric that has a string name (the real sink validates far more), renames
 * as the real one does, and returns a readable stand-in for line protocol.
 */
export class RecordingSink implements MetricSink {
  readonly pushes: Pushed[] = [];

  async push(namespace: string, metrics: readonly unknown[], opts?: PushOptions): Promise<PushResult> {
    const accepted: Metric[] = [];
    const rejected: PushResult['rejected'] = [];
    metrics.forEach((m, index) => {
      const metric = m as Metric;
      if (metric === null || typeof metric !== 'object' || typeof metric.name !== 'string' || metric.name === '') {
        rejected.push({ index, reason: 'no name' });
      } else {
        accepted.push({ ...metric, name: opts?.plugin ? `PLUGIN.${opts.plugin}.${metric.name}` : metric.name });
      }
    });
    this.pushes.push({ namespace, metrics: accepted, opts });
    return { accepted: accepted.length, rejected, ...(opts?.returnLines ? { lines: accepted.map((m) => m.name) } : {}) };
  }

  /** Every metric pushed to a namespace, in order. */
  metrics(namespace?: string): Metric[] {
    return this.pushes.filter((p) => namespace === undefined || p.namespace === namespace).flatMap((p) => p.metrics);
  }

  resultPoints(name: string): Metric[] {
    return this.metrics().filter((m) => m.name === `PLUGIN.${name}`);
  }
}
