// Runs every periodic job of the agent (system collection, checks, plugins) on one timer: each
// job fires on its own wall-clock grid (interval multiples plus a per-host, per-job phase),
// never overlaps itself (a tick that finds the previous run going is skipped and counted), and
// its lateness is measured. Namespaces are groups inside this one scheduler, not separate ones.
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { systemClock, type Clock, type TimerHandle } from '../clock.ts';
import { DueHeap, type HeapEntry } from './due-heap.ts';
import { LatenessWindow, type LatenessSummary } from './lateness-window.ts';
import { jobPhaseMs, nextAlignedRun } from '../job-timing.ts';
import { isDeclined, type JobScheduler, type JobSpec, type RunDeclined } from './types.ts';

export interface SchedulerOptions {
  /** Seeds every job's phase, so hosts of a fleet fire at different moments. */
  hostname: string;
  logger: Logger;
  clock?: Clock;
  /** Where the lateness histogram and run counters are registered; none: not exported. */
  metrics?: Registry;
  /** Jobs across all owners; jobs beyond it are refused, logged and counted. */
  maxJobs?: number;
  /** Lateness samples kept per namespace (and 8× that overall) for status()'s percentiles. */
  latenessWindowSize?: number;
  /** How long stop() waits for runs in progress before it gives up on them. */
  stopTimeoutMs?: number;
  /** Longest single timer, which bounds how long a wall-clock jump backwards goes unnoticed. */
  maxTimerMs?: number;
  /** Fires handled per timer wake before yielding to the event loop (an overload guard). */
  maxRunsPerWake?: number;
  /**
   * How late a run may start so that runs due close together share one timer wake-up (like
   * Linux's timer slack). Planned times, and so periods, stay exact; only lateness grows, by
   * at most this. 0 wakes for every distinct millisecond.
   */
  timerSlackMs?: number;
}

export const SCHEDULER_DEFAULTS = {
  maxJobs: 100_000,
  latenessWindowSize: 512,
  stopTimeoutMs: 10_000,
  maxTimerMs: 60_000,
  maxRunsPerWake: 10_000,
  timerSlackMs: 5,
} as const;

/** A backwards wall-clock step smaller than this is timer noise, not a clock change. */
const BACKWARD_JUMP_TOLERANCE_MS = 1000;

export interface JobDescription {
  owner: string;
  key: string;
  namespace: string;
  intervalSec: number;
  phaseMs: number;
  /** Planned time (ms since the epoch) of the next run. */
  nextRunAt: number;
  running: boolean;
  runs: number;
  skipped: number;
  missed: number;
  failed: number;
}

interface ScheduledJob extends HeapEntry {
  readonly id: string;
  readonly owner: string;
  readonly key: string;
  namespace: string;
  readonly intervalMs: number;
  readonly phaseMs: number;
  run: JobSpec['run'];
  runs: number;
  skipped: number;
  missed: number;
  failed: number;
  /** Ticks skipped since the last run started: the "burst" logged once. */
  skippedInBurst: number;
  failing: boolean;
}

interface NamespaceStats {
  jobs: number;
  runs: number;
  skipped: number;
  missed: number;
  failed: number;
  lateness: LatenessWindow;
}

interface SchedulerMetrics {
  lateness: Histogram<'owner'>;
  due: Counter<'owner'>;
  runs: Counter<'owner' | 'outcome'>;
  skipped: Counter<'owner' | 'reason'>;
  refusedRuns: Counter<'owner' | 'reason'>;
  refused: Counter;
}

/**
 * Where every tick that came due went: due = ran + Σ skipped + Σ refused + running (ran counts
 * finished runs, failed ones included; running the ones still going).
 */
export interface TickAccount {
  due: number;
  ran: number;
  failed: number;
  /** By reason: overlap (the scheduler's run still going), missed (a whole period lost), and what jobs declined with. */
  skipped: Record<string, number>;
  refused: Record<string, number>;
  running: number;
}

function emptyAccount(): TickAccount {
  return { due: 0, ran: 0, failed: 0, skipped: {}, refused: {}, running: 0 };
}

export class Scheduler implements JobScheduler {
  private readonly hostname: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly maxJobs: number;
  private readonly windowSize: number;
  private readonly stopTimeoutMs: number;
  private readonly maxTimerMs: number;
  private readonly maxRunsPerWake: number;
  private readonly timerSlackMs: number;
  private readonly heap = new DueHeap<ScheduledJob>();
  private readonly owners = new Map<string, Map<string, ScheduledJob>>();
  /** Runs in progress by job id; outlives a job removed mid-run so a re-added one cannot overlap it. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly namespaces = new Map<string, NamespaceStats>();
  private readonly overall: LatenessWindow;
  private readonly metrics: SchedulerMetrics;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private timer: TimerHandle | undefined;
  private armedFor = Infinity;
  private lastWakeAt: number | null = null;
  private nextOrder = 0;
  private totals = { runs: 0, failed: 0, skipped: 0, missed: 0, refused: 0 };
  /** Ticks by owner; the overall figure is their sum (owners are few: collect, checks, plugins). */
  private readonly ticks = new Map<string, TickAccount>();
  private stopping: Promise<void> | undefined;

  constructor(opts: SchedulerOptions) {
    if (typeof opts.hostname !== 'string' || opts.hostname === '') throw new Error('Scheduler: hostname must be a non-empty string');
    this.hostname = opts.hostname;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.maxJobs = positiveInt('maxJobs', opts.maxJobs ?? SCHEDULER_DEFAULTS.maxJobs);
    this.windowSize = positiveInt('latenessWindowSize', opts.latenessWindowSize ?? SCHEDULER_DEFAULTS.latenessWindowSize);
    this.stopTimeoutMs = positiveInt('stopTimeoutMs', opts.stopTimeoutMs ?? SCHEDULER_DEFAULTS.stopTimeoutMs);
    this.maxTimerMs = positiveInt('maxTimerMs', opts.maxTimerMs ?? SCHEDULER_DEFAULTS.maxTimerMs);
    this.maxRunsPerWake = positiveInt('maxRunsPerWake', opts.maxRunsPerWake ?? SCHEDULER_DEFAULTS.maxRunsPerWake);
    this.timerSlackMs = opts.timerSlackMs ?? SCHEDULER_DEFAULTS.timerSlackMs;
    if (!(Number.isInteger(this.timerSlackMs) && this.timerSlackMs >= 0)) {
      throw new RangeError(`Scheduler: timerSlackMs must be an integer >= 0, found ${opts.timerSlackMs}`);
    }
    this.overall = new LatenessWindow(this.windowSize * 8);
    const registers = opts.metrics ? [opts.metrics] : [];
    this.metrics = {
      lateness: new Histogram({
        name: 'nsagent_scheduler_lateness_seconds',
        help: 'Actual minus planned start of scheduled runs',
        labelNames: ['owner'],
        buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers,
      }),
      due: new Counter({
        name: 'nsagent_scheduler_due_total',
        help: 'Ticks that came due; each is run, skipped or refused (runs_total + skipped_total + refused_runs_total + running)',
        labelNames: ['owner'],
        registers,
      }),
      refusedRuns: new Counter({
        name: 'nsagent_scheduler_refused_runs_total',
        help: 'Ticks a bound refused to run, by reason (no_run_slot)',
        labelNames: ['owner', 'reason'],
        registers,
      }),
      runs: new Counter({
        name: 'nsagent_scheduler_runs_total',
        help: 'Scheduled runs by outcome (ok, failed)',
        labelNames: ['owner', 'outcome'],
        registers,
      }),
      skipped: new Counter({
        name: 'nsagent_scheduler_skipped_total',
        help: 'Ticks not run, by reason: overlap = the previous run was still going; missed = a whole period was lost; others as the job said (still_running, cloning, disabled, stopping)',
        labelNames: ['owner', 'reason'],
        registers,
      }),
      refused: new Counter({
        name: 'nsagent_scheduler_refused_jobs_total',
        help: 'Job specs refused by reconcile (invalid, duplicate key, over maxJobs)',
        registers,
      }),
    };
    const heap = this.heap;
    new Gauge({
      name: 'nsagent_scheduler_jobs',
      help: 'Jobs scheduled',
      registers,
      collect() {
        this.set(heap.size);
      },
    });
  }

  /** Arms the timer; every job's next run is placed on its grid from now. */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    const now = this.clock.now();
    this.realign(now);
    this.lastWakeAt = now;
    this.arm();
    this.log.info({ jobs: this.heap.size }, 'scheduler started');
  }

  /** No new runs; waits (at most stopTimeoutMs) for runs in progress. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'stopped';
      this.disarm();
      const inflight = [...this.running.values()];
      if (inflight.length === 0) return;
      let handle: TimerHandle | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        handle = this.clock.setTimeout(() => resolve(true), this.stopTimeoutMs);
      });
      const late = await Promise.race([Promise.all(inflight).then(() => false), timedOut]);
      if (handle !== undefined) this.clock.clearTimeout(handle);
      if (late) this.log.warn({ running: this.running.size, waitedMs: this.stopTimeoutMs }, 'scheduler stopped with runs still going');
    })();
    return this.stopping;
  }

  reconcile(owner: string, jobs: JobSpec[]): void {
    if (typeof owner !== 'string' || owner === '') throw new TypeError('reconcile: owner must be a non-empty string');
    const existing = this.owners.get(owner) ?? new Map<string, ScheduledJob>();
    const problems: string[] = [];
    const wanted = new Map<string, { spec: JobSpec; intervalMs: number }>();
    for (const [i, spec] of jobs.entries()) {
      const problem = specProblem(spec);
      if (problem !== null) {
        problems.push(`job[${i}]: ${problem}`);
      } else if (wanted.has(spec.key)) {
        problems.push(`job[${i}]: duplicate key ${JSON.stringify(spec.key)}; the first one is kept`);
      } else {
        wanted.set(spec.key, { spec, intervalMs: Math.round(spec.intervalSec * 1000) });
      }
    }

    // Removals first, so the jobs they free count towards the maxJobs room of the additions.
    const next = new Map<string, ScheduledJob>();
    let kept = 0;
    let removed = 0;
    for (const [key, job] of existing) {
      const w = wanted.get(key);
      if (w && w.intervalMs === job.intervalMs) {
        // Unchanged: same grid, same next run, same run in progress; only the function is new.
        job.run = w.spec.run;
        if (w.spec.namespace !== job.namespace) {
          this.leaveNamespace(job.namespace);
          job.namespace = w.spec.namespace;
          this.enterNamespace(job.namespace);
        }
        next.set(key, job);
        kept++;
      } else {
        this.heap.remove(job);
        this.leaveNamespace(job.namespace);
        removed++;
      }
    }
    const now = this.clock.now();
    let added = 0;
    let overCap = 0;
    for (const [key, { spec, intervalMs }] of wanted) {
      if (next.has(key)) continue;
      if (this.heap.size >= this.maxJobs) {
        overCap++;
        continue;
      }
      const id = `${owner}\0${key}`;
      const phaseMs = jobPhaseMs(this.hostname, id, intervalMs);
      const job: ScheduledJob = {
        id,
        owner,
        key,
        namespace: spec.namespace,
        intervalMs,
        phaseMs,
        run: spec.run,
        dueAt: nextAlignedRun(now, intervalMs, phaseMs),
        order: this.nextOrder++,
        heapIndex: -1,
        runs: 0,
        skipped: 0,
        missed: 0,
        failed: 0,
        skippedInBurst: 0,
        failing: false,
      };
      this.heap.push(job);
      this.enterNamespace(job.namespace);
      next.set(key, job);
      added++;
    }
    if (next.size > 0) this.owners.set(owner, next);
    else this.owners.delete(owner);

    if (overCap > 0) problems.push(`${overCap} job(s) over maxJobs=${this.maxJobs}`);
    const refused = problems.length === 0 ? 0 : jobs.length - added - kept;
    if (refused > 0) {
      this.totals.refused += refused;
      this.metrics.refused.inc(refused);
      this.log.warn({ owner, refused, problems: problems.slice(0, 5) }, 'scheduler refused jobs');
    }
    this.log.debug({ owner, added, kept, removed, jobs: this.heap.size }, 'jobs reconciled');
    this.arm();
  }

  /** One job's schedule and counters, or null when it is not scheduled. */
  describeJob(owner: string, key: string): JobDescription | null {
    const job = this.owners.get(owner)?.get(key);
    if (!job) return null;
    return {
      owner,
      key,
      namespace: job.namespace,
      intervalSec: job.intervalMs / 1000,
      phaseMs: job.phaseMs,
      nextRunAt: job.dueAt,
      running: this.running.has(job.id),
      runs: job.runs,
      skipped: job.skipped,
      missed: job.missed,
      failed: job.failed,
    };
  }

  status(): Record<string, unknown> {
    const owners: Record<string, number> = {};
    for (const [owner, jobs] of this.owners) owners[owner] = jobs.size;
    const namespaces: Record<string, unknown> = {};
    for (const [ns, s] of this.namespaces) {
      const l = s.lateness.summary();
      namespaces[ns] = { jobs: s.jobs, runs: s.runs, failed: s.failed, skipped: s.skipped, missed: s.missed, latenessP50Ms: l.p50Ms, latenessP99Ms: l.p99Ms };
    }
    const top = this.heap.peek();
    return {
      state: this.state,
      jobs: this.heap.size,
      running: this.running.size,
      owners,
      ...this.totals,
      ticks: this.tickAccount(),
      ticksByOwner: Object.fromEntries([...this.ticks].map(([owner, t]) => [owner, { ...t, skipped: { ...t.skipped }, refused: { ...t.refused } }])),
      lateness: this.latenessSummary(),
      nextRunAt: top ? new Date(top.dueAt).toISOString() : null,
      namespaces,
    };
  }

  /** Every tick due so far, by what became of it; see TickAccount. */
  tickAccount(): TickAccount {
    const sum = emptyAccount();
    for (const t of this.ticks.values()) {
      sum.due += t.due;
      sum.ran += t.ran;
      sum.failed += t.failed;
      sum.running += t.running;
      for (const [r, n] of Object.entries(t.skipped)) sum.skipped[r] = (sum.skipped[r] ?? 0) + n;
      for (const [r, n] of Object.entries(t.refused)) sum.refused[r] = (sum.refused[r] ?? 0) + n;
    }
    return sum;
  }

  private account(owner: string): TickAccount {
    let t = this.ticks.get(owner);
    if (!t) {
      t = emptyAccount();
      this.ticks.set(owner, t);
    }
    return t;
  }

  private countDue(job: ScheduledJob, n: number): void {
    this.account(job.owner).due += n;
    this.metrics.due.inc({ owner: job.owner }, n);
  }

  /** p50/p99/max of the most recent runs' lateness across every namespace. */
  latenessSummary(): LatenessSummary {
    return this.overall.summary();
  }

  private enterNamespace(ns: string): void {
    let s = this.namespaces.get(ns);
    if (!s) {
      s = { jobs: 0, runs: 0, skipped: 0, missed: 0, failed: 0, lateness: new LatenessWindow(this.windowSize) };
      this.namespaces.set(ns, s);
    }
    s.jobs++;
  }

  private leaveNamespace(ns: string): void {
    const s = this.namespaces.get(ns);
    if (s && --s.jobs <= 0) this.namespaces.delete(ns);
  }

  private realign(now: number): void {
    for (const job of this.heap.values()) job.dueAt = nextAlignedRun(now, job.intervalMs, job.phaseMs);
    this.heap.reorder();
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(): void {
    if (this.state !== 'running') return;
    const top = this.heap.peek();
    if (!top) {
      this.disarm();
      return;
    }
    const now = this.clock.now();
    // With slack, wake at the end of the slack window that opens at the earliest due run, so
    // every run due inside that window starts in the same wake-up.
    const wakeAt = Math.min(top.dueAt + this.timerSlackMs, now + this.maxTimerMs);
    if (this.timer !== undefined && this.armedFor <= wakeAt) return;
    this.disarm();
    this.armedFor = wakeAt;
    this.timer = this.clock.setTimeout(() => this.onTimer(), Math.max(0, wakeAt - now));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    if (this.state !== 'running') return;
    try {
      this.runDue();
    } catch (err) {
      // Only a bug gets here (runs are guarded); keep the timer alive whatever happens.
      this.log.error({ err }, 'scheduler tick failed');
    } finally {
      this.arm();
    }
  }

  private runDue(): void {
    let now = this.clock.now();
    if (this.lastWakeAt !== null && now < this.lastWakeAt - BACKWARD_JUMP_TOLERANCE_MS) {
      // Timers run on a monotonic clock, the grid on the wall clock: re-place every job.
      this.log.warn({ jumpMs: this.lastWakeAt - now }, 'wall clock went backwards; jobs re-aligned');
      this.realign(now);
    }
    this.lastWakeAt = now;
    let fired = 0;
    let missedNow = 0;
    let worstLateMs = 0;
    for (;;) {
      const job = this.heap.peek();
      if (!job || job.dueAt > now) break;
      if (fired++ >= this.maxRunsPerWake) {
        // Yield (arm() fires again at once) so I/O callbacks are not starved by a backlog.
        break;
      }
      this.heap.pop();
      const lateMs = now - job.dueAt;
      if (lateMs >= job.intervalMs) {
        // A whole period was lost (blocked event loop, suspended host, clock jumped ahead).
        // Catching up would bunch every job together; wait for the job's next slot instead.
        const lost = Math.floor(lateMs / job.intervalMs) + 1;
        this.countDue(job, lost);
        this.countMissed(job, lost);
        missedNow += lost;
        worstLateMs = Math.max(worstLateMs, lateMs);
        job.dueAt = nextAlignedRun(now, job.intervalMs, job.phaseMs);
      } else {
        const plannedAt = job.dueAt;
        job.dueAt = plannedAt + job.intervalMs;
        this.countDue(job, 1);
        this.fire(job, plannedAt, lateMs);
      }
      this.heap.push(job);
      now = this.clock.now();
    }
    if (missedNow > 0) {
      this.log.warn({ missed: missedNow, lateMs: worstLateMs }, 'runs missed: a whole period passed before they could start');
    }
  }

  private fire(job: ScheduledJob, plannedAt: number, lateMs: number): void {
    const ns = this.namespaces.get(job.namespace);
    if (this.running.has(job.id)) {
      this.countSkipped(job, 'overlap', 1);
      if (job.skippedInBurst++ === 0) {
        this.log.warn(
          { owner: job.owner, job: job.key, namespace: job.namespace, intervalSec: job.intervalMs / 1000 },
          'tick skipped: the previous run is still going',
        );
      }
      return;
    }
    if (job.skippedInBurst > 0) {
      this.log.info({ owner: job.owner, job: job.key, namespace: job.namespace, skipped: job.skippedInBurst }, 'job runs again after skipped ticks');
      job.skippedInBurst = 0;
    }
    this.overall.add(lateMs);
    ns?.lateness.add(lateMs);
    this.metrics.lateness.observe({ owner: job.owner }, lateMs / 1000);

    let result: Promise<void | RunDeclined>;
    try {
      result = Promise.resolve(job.run({ plannedAt }));
    } catch (err) {
      result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const account = this.account(job.owner);
    account.running++;
    const settled = result.then(
      (declined) => {
        account.running--;
        if (isDeclined(declined)) this.declined(job, declined);
        else this.settle(job, false, undefined);
      },
      (err: unknown) => {
        account.running--;
        this.settle(job, true, err);
      },
    );
    this.running.set(job.id, settled);
  }

  /** The job did not run this tick, and said why. */
  private declined(job: ScheduledJob, d: RunDeclined): void {
    this.running.delete(job.id);
    const reason = /^[a-z][a-z0-9_]{0,39}$/.test(d.reason) ? d.reason : 'other';
    if (d.declined === 'refused') {
      const t = this.account(job.owner);
      t.refused[reason] = (t.refused[reason] ?? 0) + 1;
      this.metrics.refusedRuns.inc({ owner: job.owner, reason });
    } else {
      this.countSkipped(job, reason, 1);
    }
  }

  private countSkipped(job: ScheduledJob, reason: string, n: number): void {
    job.skipped += n;
    this.totals.skipped += n;
    const ns = this.namespaces.get(job.namespace);
    if (ns) ns.skipped += n;
    const t = this.account(job.owner);
    t.skipped[reason] = (t.skipped[reason] ?? 0) + n;
    this.metrics.skipped.inc({ owner: job.owner, reason }, n);
  }

  private settle(job: ScheduledJob, failed: boolean, err: unknown): void {
    this.running.delete(job.id);
    try {
      const t = this.account(job.owner);
      t.ran++;
      if (failed) t.failed++;
      job.runs++;
      this.totals.runs++;
      const ns = this.namespaces.get(job.namespace);
      if (ns) ns.runs++;
      this.metrics.runs.inc({ owner: job.owner, outcome: failed ? 'failed' : 'ok' });
      if (failed) {
        job.failed++;
        this.totals.failed++;
        if (ns) ns.failed++;
        if (!job.failing) {
          job.failing = true;
          this.log.warn({ err, owner: job.owner, job: job.key, namespace: job.namespace }, 'job run failed');
        }
      } else if (job.failing) {
        job.failing = false;
        this.log.info({ owner: job.owner, job: job.key, namespace: job.namespace }, 'job runs successfully again');
      }
    } catch (e) {
      this.log.error({ err: e }, 'scheduler bookkeeping failed');
    }
  }

  private countMissed(job: ScheduledJob, lost: number): void {
    job.missed += lost;
    this.totals.missed += lost;
    const ns = this.namespaces.get(job.namespace);
    if (ns) ns.missed += lost;
    const t = this.account(job.owner);
    t.skipped.missed = (t.skipped.missed ?? 0) + lost;
    this.metrics.skipped.inc({ owner: job.owner, reason: 'missed' }, lost);
  }
}

function specProblem(spec: JobSpec): string | null {
  if (typeof spec !== 'object' || spec === null) return 'not an object';
  if (typeof spec.key !== 'string' || spec.key === '') return 'key must be a non-empty string';
  if (typeof spec.namespace !== 'string') return `${JSON.stringify(spec.key)}: namespace must be a string`;
  if (typeof spec.run !== 'function') return `${JSON.stringify(spec.key)}: run must be a function`;
  if (typeof spec.intervalSec !== 'number' || !Number.isFinite(spec.intervalSec) || Math.round(spec.intervalSec * 1000) < 1) {
    return `${JSON.stringify(spec.key)}: intervalSec must be a positive number, found ${String(spec.intervalSec)}`;
  }
  return null;
}

function positiveInt(name: string, v: number): number {
  if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`Scheduler: ${name} must be an integer >= 1, found ${v}`);
  return v;
}
