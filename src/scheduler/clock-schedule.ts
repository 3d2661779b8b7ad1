// Clock-time schedules ("0 3 * * *", with an optional IANA time zone) for jobs that run at set
// times of day rather than every N seconds, with node-schedule. A second job source beside the
// interval Scheduler, with the same guarantees: a run still going when the next time comes is
// not started twice (the tick is skipped and counted), and a reconcile keeps every job whose key,
// expression and time zone are unchanged, with its next time and any run in progress.
import type { Logger } from 'pino';
import schedule from 'node-schedule';
import { cronProblem } from '../job-timing.ts';
import { isDeclined, type RunDeclined } from './types.ts';

export interface ClockJobSpec {
  /** Stable identity within the owner, e.g. "plugin:<ns>/<name>". */
  key: string;
  namespace: string;
  /** Cron expression: 5 fields (minute first) or 6 (seconds first). */
  cron: string;
  /** IANA time zone the expression is read in; default the host's. */
  timezone?: string;
  run(ctx: { plannedAt: number }): Promise<void | RunDeclined>;
}

export interface ClockJobDescription {
  key: string;
  namespace: string;
  cron: string;
  timezone: string | null;
  /** Next planned time, ms since the epoch; null when the expression has no future time. */
  nextRunAt: number | null;
  running: boolean;
  runs: number;
  /** Times not run: declined by the job, or found the job's own previous run still going. */
  skipped: number;
  /** The part of `skipped` that found the job's own previous run still going (the job was not asked). */
  overlapped: number;
  refused: number;
  failed: number;
}

export interface ClockSchedulerOptions {
  logger: Logger;
}

interface ClockJob {
  spec: ClockJobSpec;
  job: schedule.Job;
  running: Promise<void> | null;
  runs: number;
  skipped: number;
  overlapped: number;
  refused: number;
  failed: number;
  failing: boolean;
}

export class ClockScheduler {
  private readonly log: Logger;
  private readonly owners = new Map<string, Map<string, ClockJob>>();
  private stopped = false;

  constructor(opts: ClockSchedulerOptions) {
    this.log = opts.logger;
  }

  /** Replaces the owner's jobs; unchanged ones (key, cron, time zone) are left running as they are. */
  reconcile(owner: string, specs: readonly ClockJobSpec[]): void {
    if (this.stopped) return;
    const existing = this.owners.get(owner) ?? new Map<string, ClockJob>();
    const next = new Map<string, ClockJob>();
    for (const spec of specs) {
      if (next.has(spec.key)) continue;
      const prev = existing.get(spec.key);
      if (prev && prev.spec.cron === spec.cron && prev.spec.timezone === spec.timezone) {
        prev.spec = spec; // new run function and namespace; same timer
        next.set(spec.key, prev);
        continue;
      }
      const problem = cronProblem(spec.cron, spec.timezone);
      if (problem !== null) {
        this.log.warn({ owner, job: spec.key, problem }, 'clock-time job refused');
        continue;
      }
      const entry = { spec, running: null, runs: 0, skipped: 0, overlapped: 0, refused: 0, failed: 0, failing: false } as Omit<ClockJob, 'job'> as ClockJob;
      entry.job = new schedule.Job((fireDate: Date) => this.fire(owner, entry, fireDate));
      entry.job.schedule(spec.timezone === undefined ? spec.cron : { rule: spec.cron, tz: spec.timezone });
      next.set(spec.key, entry);
    }
    for (const [key, old] of existing) if (next.get(key) !== old) old.job.cancel();
    if (next.size > 0) this.owners.set(owner, next);
    else this.owners.delete(owner);
  }

  describeJob(owner: string, key: string): ClockJobDescription | null {
    const e = this.owners.get(owner)?.get(key);
    if (!e) return null;
    const next = e.job.nextInvocation();
    return {
      key,
      namespace: e.spec.namespace,
      cron: e.spec.cron,
      timezone: e.spec.timezone ?? null,
      nextRunAt: next ? next.getTime() : null,
      running: e.running !== null,
      runs: e.runs,
      skipped: e.skipped,
      overlapped: e.overlapped,
      refused: e.refused,
      failed: e.failed,
    };
  }

  status(): Record<string, unknown> {
    let jobs = 0;
    let runs = 0;
    let skipped = 0;
    let refused = 0;
    let failed = 0;
    for (const m of this.owners.values()) {
      for (const e of m.values()) {
        jobs++;
        runs += e.runs;
        skipped += e.skipped;
        refused += e.refused;
        failed += e.failed;
      }
    }
    return { jobs, runs, skipped, refused, failed };
  }

  /** Cancels every timer; waits for runs in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    const inflight: Array<Promise<void>> = [];
    for (const m of this.owners.values()) {
      for (const e of m.values()) {
        e.job.cancel();
        if (e.running) inflight.push(e.running);
      }
    }
    this.owners.clear();
    await Promise.all(inflight);
  }

  private fire(owner: string, e: ClockJob, fireDate: Date): void {
    if (this.stopped) return;
    if (e.running) {
      e.skipped++;
      e.overlapped++;
      this.log.warn({ owner, job: e.spec.key, namespace: e.spec.namespace, cron: e.spec.cron }, 'clock-time run skipped: the previous run is still going');
      return;
    }
    let result: Promise<void | RunDeclined>;
    try {
      result = Promise.resolve(e.spec.run({ plannedAt: fireDate.getTime() }));
    } catch (err) {
      result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    e.running = result.then(
      (declined) => {
        // A declined time is counted as skipped (or refused), by the same rule as interval ticks.
        if (isDeclined(declined)) {
          if (declined.declined === 'refused') e.refused++;
          else e.skipped++;
          return;
        }
        e.runs++;
        if (e.failing) this.log.info({ owner, job: e.spec.key }, 'clock-time job runs successfully again');
        e.failing = false;
      },
      (err: unknown) => {
        e.runs++;
        e.failed++;
        if (!e.failing) this.log.warn({ err, owner, job: e.spec.key }, 'clock-time job run failed');
        e.failing = true;
      },
    ).finally(() => {
      e.running = null;
    });
  }
}
