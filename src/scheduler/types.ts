// The scheduler contract seen by the parts that own jobs (collectors, checks, plugins).

export interface JobSpec {
  /** Stable identity within the owner, e.g. "plugin:<ns>/<name>"; also seeds the job's phase. */
  key: string;
  namespace: string;
  intervalSec: number;
  /**
   * `plannedAt`: the grid time this run was planned for, ms since the epoch (actual start is
   * later by the lateness). Never rejects in practice; a rejection is logged and counted.
   */
  run(ctx: { plannedAt: number }): Promise<void>;
}

export interface JobScheduler {
  /**
   * Replace the set of jobs owned by `owner`. A job whose key and interval are unchanged keeps
   * its phase, its next run time and any run in progress; only its `run` function is swapped.
   */
  reconcile(owner: string, jobs: JobSpec[]): void;
  status(): Record<string, unknown>;
}
