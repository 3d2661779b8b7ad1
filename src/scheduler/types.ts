// The scheduler contract seen by the parts that own jobs (collectors, checks, plugins).

export interface JobSpec {
  /** Stable identity within the owner, e.g. "plugin:<ns>/<name>"; also seeds the job's phase. */
  key: string;
  namespace: string;
  intervalSec: number;
  /**
   * `plannedAt`: the grid time this run was planned for, ms since the epoch (actual start is
   * later by the lateness). Never rejects in practice; a rejection is logged and counted.
   * A job that decides not to run this tick says so with a RunDeclined, so every tick due is
   * counted as run, skipped or refused, by reason.
   */
  run(ctx: { plannedAt: number }): Promise<void | RunDeclined>;
}

/**
 * A tick the job did not run: `skipped` when there was a reason not to (still running, being
 * cloned, disabled, the agent stopping), `refused` when a bound said no (no run slot).
 * `reason` is a short snake_case label (a /metrics label value).
 */
export interface RunDeclined {
  declined: 'skipped' | 'refused';
  reason: string;
}

/** Whether what a job's run answered is a RunDeclined (anything else counts as a run). */
export function isDeclined(v: unknown): v is RunDeclined {
  return typeof v === 'object' && v !== null && ((v as RunDeclined).declined === 'skipped' || (v as RunDeclined).declined === 'refused') && typeof (v as RunDeclined).reason === 'string';
}

export interface JobScheduler {
  /**
   * Replace the set of jobs owned by `owner`. A job whose key and interval are unchanged keeps
   * its phase, its next run time and any run in progress; only its `run` function is swapped.
   */
  reconcile(owner: string, jobs: JobSpec[]): void;
  status(): Record<string, unknown>;
  /** A job's next planned run (ms since the epoch), when the scheduler can tell. */
  describeJob?(owner: string, key: string): { nextRunAt: number | null } | null;
}
