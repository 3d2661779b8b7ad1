// The plugin subsystem: turns the registry's plugin entries into cached clones and scheduler
// jobs, runs them (never twice at once, within the shared run slots), keeps the enable/disable
// state, and answers the operations of the HTTP API (PluginControl). Registry changes are
// reconciled: an unchanged plugin keeps its job, its clone and any run in progress.
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '../clock.ts';
import type { PluginsConfig } from '../config/schema.ts';
import type { MetricSink } from '../points/metric.ts';
import type { PluginEntry } from '../registry/types.ts';
import { ClockScheduler, type ClockJobSpec } from '../scheduler/clock-schedule.ts';
import type { JobScheduler, JobSpec, RunDeclined } from '../scheduler/types.ts';
import { ParamsError, paramsFromArgs } from './builtin.ts';
import { PluginRepoCache, PluginRepoError, type GitFactory } from './git-cache.ts';
import { createPluginRunner, type PluginRunner, type PluginTarget } from './plugin-runner.ts';
import { PluginStateStore } from './plugin-state.ts';
import { checkRef, checkRepoUrl, projectName } from './repo-url.ts';
import { firstUntraversable, resolveRunAs, type RunAsIdentity } from './run-as.ts';
import { RunSlots, SlotUnavailableError } from './run-slots.ts';
import type { BuiltinPluginFn, PluginControl, PluginInfo, PluginOpOutcome, PluginReconciler, PluginRunResult } from './types.ts';

export interface PluginManagerOptions {
  /** The plugins config section, cacheDir absolute (ResolvedConfig['plugins']). */
  config: PluginsConfig;
  /** Where enable/disable is kept, e.g. <dataDir>/plugins-state.json. */
  stateFile: string;
  scheduler: JobScheduler;
  sink: MetricSink;
  /** Built-in plugins by name (goplugins/index.ts). */
  builtins: Readonly<Record<string, BuiltinPluginFn>>;
  logger: Logger;
  clock?: Clock;
  /** scheduler.maxConcurrentRuns; ignored when `slots` is given. */
  maxConcurrentRuns?: number;
  /** A run semaphore shared with other parts; default: one of maxConcurrentRuns. */
  slots?: RunSlots;
  /** Test seams: the git client, the identity plugins run as (skips resolving runAsUser). */
  gitFactory?: GitFactory;
  runAs?: RunAsIdentity | null;
  /** Runs the entries that give `cron`; default: one of this manager's own. */
  clockScheduler?: ClockScheduler;
}

/** Owner name of this part's jobs on the shared scheduler. */
export const PLUGIN_JOB_OWNER = 'plugins';
const MAX_TIMER_MS = 3_600_000;
const MAX_ON_DEMAND_TIMEOUT_SEC = 3600;

interface PluginRecord {
  namespace: string;
  name: string;
  /** The registry's repo URL, or null for a built-in plugin. */
  repo: string | null;
  builtin: string | null;
  /** What enable/disable and the API's `repo` name it by: the URL, or the built-in's name. */
  id: string;
  entry: PluginEntry;
  /** Clone failed, no plugin.sh, unknown built-in, bad params: runs yield a failed result point. */
  problem: string | null;
  /** Cloned (git) or valid (built-in): runs really run. */
  ready: boolean;
  /** The cached clone comes from another URL than the entry's: replace it. */
  needsClone: boolean;
  gitBusy: boolean;
  commit: string | null;
  updateError: string | null;
  running: Promise<PluginRunResult> | null;
  lastRun: PluginRunResult | null;
  skippedTicks: number;
  cloneFailures: number;
}

interface RefusedEntry {
  namespace: string;
  name: string;
  repo: string | null;
  builtin: string | null;
  interval: number;
  problem: string;
}

type RunReply = Awaited<ReturnType<PluginControl['run']>>;

export class PluginManager implements PluginControl, PluginReconciler {
  private readonly cfg: PluginsConfig;
  private readonly scheduler: JobScheduler;
  private readonly clockScheduler: ClockScheduler;
  private readonly ownsClockScheduler: boolean;
  private readonly builtins: Readonly<Record<string, BuiltinPluginFn>>;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly slots: RunSlots;
  private readonly cache: PluginRepoCache;
  private readonly state: PluginStateStore;
  private readonly sink: MetricSink;
  private readonly runAsOverride: RunAsIdentity | null | undefined;
  private runner: PluginRunner | undefined;
  private runAsProblem: string | null = null;

  private plugins = new Map<string, PluginRecord>();
  private refused: RefusedEntry[] = [];
  private readonly cloneQueue: PluginRecord[] = [];
  private clonesActive = 0;
  private readonly cloneWaiters: Array<() => void> = [];
  private autoEnableTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  /** Aborted when stop() begins: slot waits and git operations give up. */
  private readonly stopController = new AbortController();
  /** Aborted plugins.stopGraceMs later: runs still going are killed then. */
  private readonly killController = new AbortController();
  private startPromise: Promise<void> | undefined;
  private readonly started: Promise<void>;
  private markStarted!: () => void;
  private stopping: Promise<void> | undefined;
  private readonly counters = {
    runs: 0,
    failedRuns: 0,
    skippedTicks: 0,
    skippedWhileCloning: 0,
    /** Scheduled runs refused because the run-slot wait queue was full. */
    refusedNoSlot: 0,
    clones: 0,
    cloneFailures: 0,
    updates: 0,
    updateFailures: 0,
    autoEnabled: 0,
  };

  constructor(opts: PluginManagerOptions) {
    if (!path.isAbsolute(opts.config.cacheDir)) throw new Error(`plugins.cacheDir must be absolute (resolved), got ${JSON.stringify(opts.config.cacheDir)}`);
    this.cfg = opts.config;
    this.scheduler = opts.scheduler;
    this.clockScheduler = opts.clockScheduler ?? new ClockScheduler({ logger: opts.logger });
    this.ownsClockScheduler = opts.clockScheduler === undefined;
    this.builtins = opts.builtins;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.sink = opts.sink;
    this.slots = opts.slots ?? new RunSlots({ maxConcurrentRuns: opts.maxConcurrentRuns ?? 16 });
    this.runAsOverride = opts.runAs;
    this.cache = new PluginRepoCache({
      cacheDir: opts.config.cacheDir,
      allowLocalRepos: opts.config.allowLocalRepos,
      gitTimeoutSec: opts.config.gitTimeoutSec,
      logger: opts.logger,
      ...(opts.gitFactory ? { gitFactory: opts.gitFactory } : {}),
    });
    this.state = new PluginStateStore({
      file: opts.stateFile,
      autoEnableAfterSec: opts.config.autoEnableAfterSec,
      clock: this.clock,
      logger: opts.logger,
    });
    // Every run in progress or waiting for a slot listens for the stop, one listener each, and
    // removes it when done: their number is bounded by the plugins, not by a fixed 10.
    setMaxListeners(0, this.stopController.signal);
    setMaxListeners(0, this.killController.signal);
    this.started = new Promise((resolve) => {
      this.markStarted = resolve;
    });
  }

  /** Resolves the plugin user, prepares the cache, loads the enable/disable state. */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    let runAs: RunAsIdentity | null = null;
    if (this.runAsOverride !== undefined) {
      runAs = this.runAsOverride;
    } else {
      try {
        runAs = await resolveRunAs({ runAsUser: this.cfg.runAsUser, ...(this.cfg.runAsGroup ? { runAsGroup: this.cfg.runAsGroup } : {}) });
      } catch (err) {
        // Never fall back to running plugins as root: every git plugin run fails with this reason.
        this.runAsProblem = (err as Error).message;
        this.log.error({ err: this.runAsProblem }, 'git plugins cannot run');
      }
    }
    this.runner = await createPluginRunner(this.cfg, { sink: this.sink, logger: this.log, clock: this.clock, runAs });
    await this.cache.prepare();
    if (runAs) {
      // Runs still work (the working directory is entered before privileges drop, and
      // plugin.sh is opened relative to it), but a plugin using $PLUGIN_DIR would not.
      const blocked = await firstUntraversable(this.cfg.cacheDir, runAs.uid, runAs.gid);
      if (blocked) {
        this.log.warn(
          { dir: blocked, user: runAs.user },
          'a folder above plugins.cacheDir is closed to the plugin user: plugins that use absolute paths to their folder will fail (chmod o+x it, or move the cache)',
        );
      }
    }
    await this.state.load();
    this.armAutoEnable();
    this.markStarted();
    this.log.info({ cacheDir: this.cfg.cacheDir, runAs: runAs ? runAs.user : 'agent user', maxConcurrentRuns: this.slots.capacity }, 'plugins ready');
  }

  /**
   * Removes the jobs, gives up runs still waiting for a slot, lets runs in progress finish for
   * up to plugins.stopGraceMs (the publisher stops after this part, so what they produce is
   * published), then ends the rest as at a timeout and waits for them; idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.autoEnableTimer) this.clock.clearTimeout(this.autoEnableTimer);
      if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
      this.scheduler.reconcile(PLUGIN_JOB_OWNER, []);
      this.clockScheduler.reconcile(PLUGIN_JOB_OWNER, []);
      if (this.ownsClockScheduler) void this.clockScheduler.stop();
      this.stopController.abort();
      this.cloneQueue.length = 0;
      this.markStarted(); // a reconcile waiting for start returns now
      const running = [...this.plugins.values()].map((p) => p.running).filter((r): r is Promise<PluginRunResult> => r !== null);
      if (running.length > 0) {
        this.log.info({ running: running.length, stopGraceMs: this.cfg.stopGraceMs }, 'waiting for plugin runs in progress before stopping them');
      }
      const kill = this.cfg.stopGraceMs > 0 ? this.clock.setTimeout(() => this.killController.abort(), this.cfg.stopGraceMs) : undefined;
      if (!kill) this.killController.abort();
      await Promise.allSettled(running);
      if (kill) this.clock.clearTimeout(kill);
      this.killController.abort();
      while (this.clonesActive > 0) await new Promise<void>((r) => this.cloneWaiters.push(r));
    })();
    return this.stopping;
  }

  // ---- registry side ----------------------------------------------------------------------

  async reconcile(plugins: Record<string, PluginEntry[]>): Promise<void> {
    await this.started;
    if (this.stopping) return;
    try {
      await this.apply(plugins);
    } catch (err) {
      // The registry's hook must not fail: log it; the next registry change tries again.
      this.log.error({ err }, 'plugin reconcile failed');
    }
  }

  private async apply(plugins: Record<string, PluginEntry[]>): Promise<void> {
    const next = new Map<string, PluginRecord>();
    const refused: RefusedEntry[] = [];
    for (const [namespace, entries] of Object.entries(plugins)) {
      for (const entry of entries ?? []) {
        const id = this.identify(namespace, entry);
        if ('refused' in id) {
          refused.push(id.refused);
          continue;
        }
        const key = recordKey(namespace, id.name);
        const taken = next.get(key);
        if (taken) {
          refused.push({
            namespace,
            name: id.name,
            repo: entry.repo ?? null,
            builtin: entry.builtin ?? null,
            interval: entry.interval,
            problem: `namespace ${JSON.stringify(namespace)} already has a plugin named ${JSON.stringify(id.name)} (from ${taken.id}); two plugins of one name cannot share a namespace`,
          });
          continue;
        }
        next.set(key, this.carryOver(namespace, id.name, entry, id.problem));
      }
    }
    const removed = [...this.plugins.keys()].filter((k) => !next.has(k));
    this.plugins = next;
    this.refused = refused;
    for (const r of refused) this.log.warn({ namespace: r.namespace, repo: r.repo ?? r.builtin, problem: r.problem }, 'plugin refused');
    if (removed.length > 0) this.log.info({ plugins: removed.map((k) => JSON.parse(k) as unknown) }, 'plugins removed by the registry');
    this.syncJobs();

    const work: Array<Promise<void>> = [];
    for (const rec of next.values()) {
      if (rec.repo !== null && (!rec.ready || rec.needsClone) && !rec.gitBusy && rec.problem === null) work.push(this.bringIn(rec));
    }
    await Promise.all(work);
  }

  /** Validates one entry: its name, or why it is refused outright. */
  private identify(namespace: string, entry: PluginEntry): { name: string; problem: string | null } | { refused: RefusedEntry } {
    const refuse = (name: string, problem: string) => ({
      refused: { namespace, name, repo: entry.repo ?? null, builtin: entry.builtin ?? null, interval: entry.interval, problem },
    });
    if (namespace === '') return refuse(entry.builtin ?? entry.repo ?? '?', 'the namespace is empty');
    if (!Number.isInteger(entry.interval) || entry.interval < 0) return refuse(entry.builtin ?? entry.repo ?? '?', `interval must be a whole number of seconds ≥ 0, got ${JSON.stringify(entry.interval)}`);
    if (entry.timeout !== undefined && !(entry.timeout > 0)) return refuse(entry.builtin ?? entry.repo ?? '?', `timeout must be a positive number of seconds, got ${JSON.stringify(entry.timeout)}`);
    if (entry.repo !== undefined && entry.builtin !== undefined) return refuse(entry.builtin, 'an entry names either a repo or a builtin, not both');
    if (entry.builtin !== undefined) {
      const fn = this.builtins[entry.builtin];
      if (!fn || !Object.hasOwn(this.builtins, entry.builtin)) {
        return refuse(entry.builtin, `no built-in plugin ${JSON.stringify(entry.builtin)}; there are: ${Object.keys(this.builtins).sort().join(', ')}`);
      }
      if (Array.isArray(entry.params)) return { name: entry.builtin, problem: 'params of a built-in plugin are an object (name → value), not a list' };
      try {
        fn.checkParams?.(entry.params ?? {});
      } catch (err) {
        return { name: entry.builtin, problem: `bad params: ${(err as Error).message}` };
      }
      return { name: entry.builtin, problem: null };
    }
    if (entry.repo === undefined) return refuse('?', 'an entry names a repo (git URL) or a builtin');
    const checked = checkRepoUrl(entry.repo, { allowLocalRepos: this.cfg.allowLocalRepos });
    if (!checked.ok) return refuse(projectName(entry.repo) || '?', checked.reason);
    if (entry.ref !== undefined) {
      const ref = checkRef(entry.ref);
      if (!ref.ok) return { name: checked.name, problem: ref.reason };
    }
    if (entry.params !== undefined && !Array.isArray(entry.params)) {
      return { name: checked.name, problem: 'params of a git plugin are a list of arguments, not an object' };
    }
    if (Array.isArray(entry.params) && entry.params.some((p) => typeof p === 'object' && p !== null)) {
      return { name: checked.name, problem: 'params of a git plugin are strings, numbers or booleans' };
    }
    return { name: checked.name, problem: null };
  }

  /** The record for an entry, keeping state (clone, runs, counters) from the one before. */
  private carryOver(namespace: string, name: string, entry: PluginEntry, problem: string | null): PluginRecord {
    const prev = this.plugins.get(recordKey(namespace, name));
    const repo = entry.repo ?? null;
    const builtin = entry.builtin ?? null;
    const sameKind = prev !== undefined && (prev.repo === null) === (repo === null) && prev.builtin === builtin;
    if (prev && sameKind) {
      prev.entry = entry;
      if (builtin !== null) {
        prev.problem = problem;
        prev.ready = problem === null;
      } else if (problem !== null) {
        prev.problem = problem;
      } else if (prev.repo !== repo) {
        // Another URL for the same name: clone it aside; the old tree runs until it is ready.
        prev.needsClone = prev.ready;
        prev.problem = null;
      } else if (!prev.ready && !prev.gitBusy) {
        prev.problem = null; // cloned again below
      }
      prev.repo = repo;
      prev.id = repo ?? (builtin as string);
      return prev;
    }
    return {
      namespace,
      name,
      repo,
      builtin,
      id: repo ?? (builtin as string),
      entry,
      problem,
      ready: builtin !== null && problem === null,
      needsClone: false,
      gitBusy: false,
      commit: null,
      updateError: null,
      running: prev?.running ?? null,
      lastRun: null,
      skippedTicks: 0,
      cloneFailures: 0,
    };
  }

  /** Uses the cached clone when there is one (no network), else clones, within maxConcurrentClones. */
  private async bringIn(rec: PluginRecord): Promise<void> {
    rec.gitBusy = true;
    try {
      if (!rec.ready) {
        const cached = await this.cache.readCached(rec.namespace, rec.name);
        if (cached && (cached.url === null || cached.url === rec.repo)) {
          rec.ready = true;
          rec.commit = cached.commit;
          rec.problem = null;
          return;
        }
        if (cached) {
          // Cloned from another URL by an earlier registry: usable until the new clone is in.
          rec.ready = true;
          rec.commit = cached.commit;
          rec.needsClone = true;
        }
      }
      await this.cloneSlot();
      try {
        if (this.stopping || this.plugins.get(recordKey(rec.namespace, rec.name)) !== rec) return;
        const clone = await this.cache.clone(rec.namespace, rec.name, rec.repo as string, rec.entry.ref, {
          waitIdle: () => this.idle(rec),
          signal: this.stopController.signal,
        });
        this.counters.clones++;
        rec.ready = true;
        rec.needsClone = false;
        rec.commit = clone.commit;
        rec.problem = null;
        rec.cloneFailures = 0;
      } catch (err) {
        if (this.stopping) return;
        this.counters.cloneFailures++;
        rec.cloneFailures++;
        const why = err instanceof PluginRepoError ? err.message : `clone failed: ${(err as Error).message}`;
        if (!rec.ready) rec.problem = why;
        else rec.updateError = why; // still running the clone from the old URL
        this.log.warn({ namespace: rec.namespace, plugin: rec.name, repo: rec.repo, err: why, retryInSec: this.cfg.cloneRetrySec }, 'plugin clone failed');
        this.armCloneRetry();
      } finally {
        this.releaseCloneSlot();
      }
    } finally {
      rec.gitBusy = false;
    }
  }

  private async cloneSlot(): Promise<void> {
    while (this.clonesActive >= this.cfg.maxConcurrentClones) await new Promise<void>((r) => this.cloneWaiters.push(r));
    this.clonesActive++;
  }

  private releaseCloneSlot(): void {
    this.clonesActive--;
    this.cloneWaiters.shift()?.();
  }

  private armCloneRetry(): void {
    if (this.retryTimer || this.stopping) return;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.stopping) return;
      for (const rec of this.plugins.values()) {
        const failed = rec.repo !== null && !rec.gitBusy && ((!rec.ready && rec.cloneFailures > 0) || rec.needsClone);
        if (failed) {
          rec.problem = null;
          this.bringIn(rec).catch((err: unknown) => this.log.error({ err }, 'plugin clone retry failed'));
        }
      }
    }, Math.min(this.cfg.cloneRetrySec * 1000, MAX_TIMER_MS));
    this.retryTimer.unref?.();
  }

  /** Jobs for every enabled plugin that runs on an interval or on clock times (`cron`). */
  private syncJobs(): void {
    if (this.stopping) return;
    const jobs: JobSpec[] = [];
    const clockJobs: ClockJobSpec[] = [];
    for (const [key, rec] of this.plugins) {
      if (!this.state.isEnabled(rec.namespace, rec.id)) continue;
      const jobKey = `plugin:${rec.namespace}/${rec.name}`;
      if (rec.entry.cron !== undefined) {
        clockJobs.push({
          key: jobKey,
          namespace: rec.namespace,
          cron: rec.entry.cron,
          ...(rec.entry.timezone !== undefined ? { timezone: rec.entry.timezone } : {}),
          run: () => this.scheduledRun(key),
        });
      } else if (rec.entry.interval > 0) {
        jobs.push({ key: jobKey, namespace: rec.namespace, intervalSec: rec.entry.interval, run: () => this.scheduledRun(key) });
      }
    }
    this.scheduler.reconcile(PLUGIN_JOB_OWNER, jobs);
    this.clockScheduler.reconcile(PLUGIN_JOB_OWNER, clockJobs);
  }

  /** Next planned run (ms since the epoch) of a scheduled plugin, or null. */
  private nextRunAt(rec: PluginRecord): number | null {
    const jobKey = `plugin:${rec.namespace}/${rec.name}`;
    if (rec.entry.cron !== undefined) return this.clockScheduler.describeJob(PLUGIN_JOB_OWNER, jobKey)?.nextRunAt ?? null;
    return this.scheduler.describeJob?.(PLUGIN_JOB_OWNER, jobKey)?.nextRunAt ?? null;
  }

  /** A tick of a plugin's job: a run, or why not (the scheduler counts it by that reason). */
  private async scheduledRun(key: string): Promise<void | RunDeclined> {
    const rec = this.plugins.get(key);
    // The job outlived its plugin for a moment (a registry change is being applied).
    if (!rec) return { declined: 'skipped', reason: 'removed' };
    if (this.stopping) return { declined: 'skipped', reason: 'stopping' };
    if (!this.state.isEnabled(rec.namespace, rec.id)) return { declined: 'skipped', reason: 'disabled' };
    if (rec.running) {
      // An on-demand run (or a run of the plugin's previous job) is still going.
      rec.skippedTicks++;
      this.counters.skippedTicks++;
      this.log.debug({ namespace: rec.namespace, plugin: rec.name }, 'tick skipped: the previous run is still going');
      return { declined: 'skipped', reason: 'still_running' };
    }
    if (!rec.ready && rec.gitBusy) {
      this.counters.skippedWhileCloning++;
      return { declined: 'skipped', reason: 'cloning' };
    }
    // A cron entry has no interval: its runs default to the on-demand timeout.
    const timeoutSec = rec.entry.timeout ?? (rec.entry.interval > 0 ? rec.entry.interval : this.cfg.onDemandTimeoutSec);
    try {
      // Only the agent stopping (or a full wait queue) makes a scheduled run give up its slot wait.
      await this.execute(rec, timeoutSec * 1000, undefined);
      return undefined;
    } catch (err) {
      if (err instanceof SlotUnavailableError) {
        if (this.stopping) return { declined: 'skipped', reason: 'stopping' };
        this.counters.refusedNoSlot++;
        return { declined: 'refused', reason: 'no_run_slot' };
      }
      throw err;
    }
  }

  /** Starts a run: marks the plugin running at once (so nothing else starts it), then waits for a slot. */
  private execute(rec: PluginRecord, timeoutMs: number, override: { args?: string[]; params?: Record<string, unknown> } | undefined, slotWaitMs?: number): Promise<PluginRunResult> {
    const run = (async (): Promise<PluginRunResult> => {
      let release: () => void;
      try {
        release = await this.slots.acquire({ signal: this.stopController.signal, ...(slotWaitMs !== undefined ? { waitMs: slotWaitMs } : {}) });
      } catch (err) {
        throw err instanceof SlotUnavailableError ? err : new SlotUnavailableError((err as Error).message);
      }
      try {
        const result = await (this.runner as PluginRunner).run(this.target(rec, override), { timeoutMs, signal: this.killController.signal });
        this.recordRun(rec, result);
        return result;
      } finally {
        release();
      }
    })();
    rec.running = run;
    const clear = () => {
      if (rec.running === run) rec.running = null;
    };
    run.then(clear, clear);
    return run;
  }

  private target(rec: PluginRecord, override: { args?: string[]; params?: Record<string, unknown> } | undefined): PluginTarget {
    const base = { namespace: rec.namespace, name: rec.name };
    // A ready plugin with a problem has a registry entry that no longer validates (params, ref).
    if (!rec.ready || rec.problem) return { kind: 'unavailable', ...base, reason: rec.problem ?? 'the plugin is not cloned yet' };
    if (rec.builtin !== null) {
      const registryParams = Array.isArray(rec.entry.params) ? {} : (rec.entry.params ?? {});
      return { kind: 'builtin', ...base, fn: this.builtins[rec.builtin] as BuiltinPluginFn, params: { ...registryParams, ...override?.params } };
    }
    if (this.runAsProblem) return { kind: 'unavailable', ...base, reason: this.runAsProblem };
    const args = override?.args ?? (Array.isArray(rec.entry.params) ? rec.entry.params.map((p) => String(p)) : []);
    return { kind: 'git', ...base, dir: this.cache.dirOf(rec.namespace, rec.name), args };
  }

  private recordRun(rec: PluginRecord, result: PluginRunResult): void {
    this.counters.runs++;
    if (!result.success) this.counters.failedRuns++;
    const before = rec.lastRun?.success;
    rec.lastRun = result;
    // One line when a plugin starts or stops failing, not one per run.
    if (!result.success && before !== false) {
      this.log.warn({ namespace: rec.namespace, plugin: rec.name, err: result.error, exitCode: result.exitCode }, 'plugin run failed');
    } else if (result.success && before === false) {
      this.log.info({ namespace: rec.namespace, plugin: rec.name }, 'plugin runs again');
    }
  }

  /** Resolves when the plugin has no run in progress. */
  private async idle(rec: PluginRecord): Promise<void> {
    while (rec.running) await rec.running.catch(() => undefined);
  }

  // ---- operations (HTTP API, CLI) ---------------------------------------------------------

  list(): PluginInfo[] {
    const out: PluginInfo[] = [];
    for (const rec of this.plugins.values()) {
      const last = rec.lastRun;
      out.push({
        namespace: rec.namespace,
        name: rec.name,
        repo: rec.repo,
        builtin: rec.builtin,
        interval: rec.entry.interval,
        cron: rec.entry.cron ?? null,
        timezone: rec.entry.timezone ?? null,
        nextRunAt: this.nextRunAt(rec),
        enabled: this.state.isEnabled(rec.namespace, rec.id),
        disabledUntil: this.state.disabledUntil(rec.namespace, rec.id),
        running: rec.running !== null,
        problem: rec.problem ?? (rec.repo !== null && !rec.ready && rec.gitBusy ? 'being cloned' : null),
        commit: rec.commit,
        updateError: rec.updateError,
        // A clock time the manager declined (still running) is in rec.skippedTicks already; the
        // clock scheduler adds only the times it skipped without asking (its own run still going).
        skippedTicks: rec.skippedTicks + (rec.entry.cron !== undefined ? (this.clockScheduler.describeJob(PLUGIN_JOB_OWNER, `plugin:${rec.namespace}/${rec.name}`)?.overlapped ?? 0) : 0),
        lastRun: last
          ? { startedAt: last.startedAt, durationMs: last.durationMs, exitCode: last.exitCode, timedOut: last.timedOut, success: last.success, error: last.error, stderrTail: last.stderrTail }
          : null,
      });
    }
    for (const r of this.refused) {
      out.push({ ...r, enabled: false, disabledUntil: null, running: false, commit: null, updateError: null, skippedTicks: 0, lastRun: null });
    }
    return out.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  }

  async run(namespace: string, repo: string, opts: { timeoutSec?: number; params?: string[] }): Promise<RunReply> {
    const found = this.find(namespace, repo);
    if ('status' in found) return { ok: false, status: found.status, message: found.message };
    const rec = found.rec;
    const timeoutSec = opts.timeoutSec ?? rec.entry.timeout ?? this.cfg.onDemandTimeoutSec;
    if (!(Number.isFinite(timeoutSec) && timeoutSec > 0 && timeoutSec <= MAX_ON_DEMAND_TIMEOUT_SEC)) {
      return { ok: false, status: 400, message: `timeout must be seconds between 0 and ${MAX_ON_DEMAND_TIMEOUT_SEC}, got ${JSON.stringify(opts.timeoutSec)}` };
    }
    if (rec.running) return { ok: false, status: 409, message: `plugin ${rec.name} of namespace ${namespace} is already running; this request was ignored` };
    if (!rec.ready && rec.gitBusy) return { ok: false, status: 409, message: `plugin ${rec.name} of namespace ${namespace} is still being cloned; try again shortly` };
    let override: { args?: string[]; params?: Record<string, unknown> } | undefined;
    if (opts.params && opts.params.length > 0) {
      if (rec.builtin !== null) {
        try {
          const params = { ...(Array.isArray(rec.entry.params) ? {} : rec.entry.params), ...paramsFromArgs(opts.params) };
          this.builtins[rec.builtin]?.checkParams?.(params);
          override = { params };
        } catch (err) {
          return { ok: false, status: 400, message: err instanceof ParamsError ? `bad params: ${err.message}` : (err as Error).message };
        }
      } else {
        override = { args: opts.params };
      }
    }
    try {
      // An on-demand caller waits for a slot no longer than the run itself may take.
      const result = await this.execute(rec, timeoutSec * 1000, override, timeoutSec * 1000);
      return { ok: true, result };
    } catch (err) {
      return { ok: false, status: 503, message: `not run: ${(err as Error).message}` };
    }
  }

  async update(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const found = this.find(namespace, repo);
    if ('status' in found) return { ok: false, status: found.status, message: found.message };
    const rec = found.rec;
    if (rec.repo === null) return { ok: false, status: 400, message: `${rec.name} is a built-in plugin: there is nothing to update` };
    if (rec.gitBusy) return { ok: false, status: 409, message: `a clone or update of ${rec.name} in namespace ${namespace} is already in progress` };
    if (!rec.ready || rec.needsClone) {
      const problem = this.identify(namespace, rec.entry);
      if ('refused' in problem || problem.problem) return { ok: false, status: 400, message: 'refused' in problem ? problem.refused.problem : (problem.problem as string) };
      rec.problem = null;
      rec.cloneFailures = 0;
      await this.bringIn(rec);
      if (!rec.ready || rec.needsClone) return { ok: false, status: 502, message: rec.problem ?? rec.updateError ?? 'clone failed' };
      return { ok: true, message: `cloned ${rec.repo} at ${shortSha(rec.commit)}` };
    }
    rec.gitBusy = true;
    try {
      const out = await this.cache.update(namespace, rec.name, rec.repo, rec.entry.ref, {
        waitIdle: () => this.idle(rec),
        signal: this.stopController.signal,
      });
      this.counters.updates++;
      rec.commit = out.to;
      rec.updateError = null;
      rec.problem = null;
      return { ok: true, message: out.changed ? `updated from ${shortSha(out.from)} to ${shortSha(out.to)}` : `already at ${shortSha(out.to)}` };
    } catch (err) {
      this.counters.updateFailures++;
      const message = err instanceof PluginRepoError ? err.message : `update failed: ${(err as Error).message}`;
      rec.updateError = message;
      this.log.warn({ namespace, plugin: rec.name, repo: rec.repo, err: message }, 'plugin update failed; the old tree stays');
      return { ok: false, status: 502, message };
    } finally {
      rec.gitBusy = false;
    }
  }

  async enable(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const found = this.find(namespace, repo);
    if ('status' in found) return { ok: false, status: found.status, message: found.message };
    const rec = found.rec;
    try {
      const was = await this.state.enable(namespace, rec.id);
      this.syncJobs();
      this.armAutoEnable();
      if (was) this.log.info({ namespace, plugin: rec.name }, 'plugin enabled');
      return { ok: true, message: was ? `enabled ${rec.name} in namespace ${namespace}` : `${rec.name} in namespace ${namespace} was already enabled` };
    } catch (err) {
      return { ok: false, status: 500, message: `cannot save the plugin state: ${(err as Error).message}` };
    }
  }

  async disable(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const found = this.find(namespace, repo);
    if ('status' in found) return { ok: false, status: found.status, message: found.message };
    const rec = found.rec;
    try {
      const until = await this.state.disable(namespace, rec.id);
      this.syncJobs();
      this.armAutoEnable();
      this.log.info({ namespace, plugin: rec.name, until: new Date(until).toISOString() }, 'plugin disabled');
      return { ok: true, message: `disabled ${rec.name} in namespace ${namespace} until ${new Date(until).toISOString()} (a run in progress finishes)` };
    } catch (err) {
      return { ok: false, status: 500, message: `cannot save the plugin state: ${(err as Error).message}` };
    }
  }

  status(): Record<string, unknown> {
    let running = 0;
    let problems = 0;
    let disabled = 0;
    for (const rec of this.plugins.values()) {
      if (rec.running) running++;
      if (rec.problem) problems++;
      if (!this.state.isEnabled(rec.namespace, rec.id)) disabled++;
    }
    return {
      plugins: this.plugins.size,
      refused: this.refused.length,
      withProblems: problems,
      disabled,
      running,
      slots: this.slots.status(),
      ...this.counters,
    };
  }

  /**
   * The plugin a request names: `repo` is the registry's URL (exact, or differing only by a
   * trailing "/" or ".git"), a built-in plugin's name, or the plugin's name.
   */
  private find(namespace: string, repo: string): { rec: PluginRecord } | { status: 400 | 404; message: string } {
    if (!namespace || !repo) return { status: 400, message: 'name the plugin with ns=<namespace> and repo=<git URL or built-in plugin name>' };
    const inNs = [...this.plugins.values()].filter((p) => p.namespace === namespace);
    const wanted = normaliseRepo(repo);
    const rec =
      inNs.find((p) => p.id === repo) ??
      inNs.find((p) => p.repo !== null && normaliseRepo(p.repo) === wanted) ??
      inNs.find((p) => p.name === repo);
    if (rec) return { rec };
    const refused = this.refused.find((r) => r.namespace === namespace && (r.repo === repo || r.builtin === repo));
    if (refused) return { status: 400, message: `refused: ${refused.problem}` };
    return { status: 404, message: `namespace ${JSON.stringify(namespace)} has no plugin ${JSON.stringify(repo)} (see /plugins/list)` };
  }

  /** One timer, for the earliest auto-enable; it re-arms itself. */
  private armAutoEnable(): void {
    if (this.autoEnableTimer) this.clock.clearTimeout(this.autoEnableTimer);
    this.autoEnableTimer = undefined;
    if (this.stopping) return;
    const next = this.state.nextExpiry();
    if (next === null) return;
    const delay = Math.max(0, Math.min(next - this.clock.now(), MAX_TIMER_MS));
    this.autoEnableTimer = this.clock.setTimeout(() => {
      this.autoEnableTimer = undefined;
      // Long waits are cut into hours (timers cannot wait a day reliably); not due yet: re-arm.
      const due = this.state.nextExpiry();
      if (due === null || due > this.clock.now()) {
        this.armAutoEnable();
        return;
      }
      this.state
        .expireDue()
        .then((due) => {
          for (const d of due) {
            this.counters.autoEnabled++;
            this.log.info({ namespace: d.namespace, repo: d.repo, disabledAt: new Date(d.disabledAt).toISOString() }, 'plugin enabled again by itself');
          }
          if (due.length > 0) this.syncJobs();
        })
        .catch((err: unknown) => this.log.error({ err }, 'cannot save the plugin state after auto-enable'))
        .finally(() => this.armAutoEnable());
    }, delay);
    this.autoEnableTimer.unref?.();
  }
}

function recordKey(namespace: string, name: string): string {
  return JSON.stringify([namespace, name]);
}

function normaliseRepo(url: string): string {
  return url.replace(/\/+$/, '').replace(/\.git$/, '');
}

function shortSha(sha: string | null): string {
  return sha ? sha.slice(0, 12) : 'an unknown commit';
}
