// Shared by the plugin tests: real git repositories made with the git CLI, fixture plugins, and
// a scheduler fake above the plugin subsystem's seam (clock, sink, waits and temp folders are in
// test/helpers).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { JobScheduler, JobSpec, RunDeclined } from '../../src/scheduler/types.ts';

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

/** Gone, or a zombie nobody reaped yet (it runs no code any more). */
export function processGone(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^State:\s+Z/m.test(status);
  } catch {
    return true;
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
