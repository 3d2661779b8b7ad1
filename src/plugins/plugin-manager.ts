// The plugin subsystem's coordinator: takes the registry's plugin entries (PluginEntries), has
// their trees brought in (CloneQueue), keeps one scheduler job per enabled plugin whose ticks
// and the API's requests become runs (PluginRuns), keeps the enable/disable state (with
// AutoEnable), and answers the operations of the HTTP API (PluginControl) as outcomes. Registry
// changes are reconciled: an unchanged plugin keeps its job, its clone and any run in progress.
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.ts';
import type { PluginsConfig } from '../config/schema.ts';
import type { MetricSink } from '../points/metric.ts';
import type { PluginEntry } from '../registry/types.ts';
import { ClockScheduler, type ClockJobSpec } from '../scheduler/clock-schedule.ts';
import type { JobScheduler, JobSpec } from '../scheduler/types.ts';
import { AutoEnable } from './auto-enable.ts';
import { CloneQueue } from './clone-queue.ts';
import { PluginRepoCache, type GitFactory } from './git-cache.ts';
import { PluginEntries, recordKey, type PluginRecord } from './plugin-entries.ts';
import { PluginRuns } from './plugin-runs.ts';
import { PluginStateStore } from './plugin-state.ts';
import { firstUntraversable, type RunAsIdentity } from './run-as.ts';
import { Slots } from '../slots.ts';
import type { BuiltinPluginFn, PluginControl, PluginInfo, PluginOpOutcome, PluginReconciler, PluginRunOutcome } from './types.ts';

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
  slots?: Slots;
  /** Test seams: the git client, the identity plugins run as (skips resolving runAsUser). */
  gitFactory?: GitFactory;
  runAs?: RunAsIdentity | null;
  /** Runs the entries that give `cron`; default: one of this manager's own. */
  clockScheduler?: ClockScheduler;
}

/** Owner name of this part's jobs on the shared scheduler. */
export const PLUGIN_JOB_OWNER = 'plugins';

export class PluginManager implements PluginControl, PluginReconciler {
  private readonly cfg: PluginsConfig;
  private readonly scheduler: JobScheduler;
  private readonly clockScheduler: ClockScheduler;
  private readonly ownsClockScheduler: boolean;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly slots: Slots;
  private readonly cache: PluginRepoCache;
  private readonly state: PluginStateStore;
  private readonly entries: PluginEntries;
  private readonly clones: CloneQueue;
  private readonly runs: PluginRuns;
  private readonly autoEnable: AutoEnable;
  /** Aborted when stop() begins: slot waits and git operations give up. */
  private readonly stopController = new AbortController();
  /** Aborted plugins.stopGraceMs later: runs still going are killed then. */
  private readonly killController = new AbortController();
  private startPromise: Promise<void> | undefined;
  private readonly started: Promise<void>;
  private markStarted!: () => void;
  private stopping: Promise<void> | undefined;

  constructor(opts: PluginManagerOptions) {
    if (!path.isAbsolute(opts.config.cacheDir)) throw new Error(`plugins.cacheDir must be absolute (resolved), got ${JSON.stringify(opts.config.cacheDir)}`);
    this.cfg = opts.config;
    this.scheduler = opts.scheduler;
    this.clockScheduler = opts.clockScheduler ?? new ClockScheduler({ logger: opts.logger });
    this.ownsClockScheduler = opts.clockScheduler === undefined;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.slots = opts.slots ?? new Slots({ capacity: opts.maxConcurrentRuns ?? 16, what: 'runs' });
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
    this.entries = new PluginEntries({ builtins: opts.builtins, allowLocalRepos: opts.config.allowLocalRepos });
    this.runs = new PluginRuns({
      config: opts.config,
      entries: this.entries,
      builtins: opts.builtins,
      cache: this.cache,
      state: this.state,
      slots: this.slots,
      sink: opts.sink,
      logger: opts.logger,
      clock: this.clock,
      ...(opts.runAs !== undefined ? { runAs: opts.runAs } : {}),
      stopSignal: this.stopController.signal,
      killSignal: this.killController.signal,
    });
    this.clones = new CloneQueue({
      cache: this.cache,
      entries: this.entries,
      maxConcurrentClones: opts.config.maxConcurrentClones,
      cloneRetrySec: opts.config.cloneRetrySec,
      clock: this.clock,
      logger: opts.logger,
      signal: this.stopController.signal,
      waitIdle: (rec) => this.runs.idle(rec),
    });
    this.autoEnable = new AutoEnable({
      state: this.state,
      clock: this.clock,
      logger: opts.logger,
      signal: this.stopController.signal,
      onEnabled: () => this.syncJobs(),
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
    const runAs = await this.runs.start();
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
    this.autoEnable.arm();
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
      this.autoEnable.stop();
      this.clones.stopRetries();
      this.scheduler.reconcile(PLUGIN_JOB_OWNER, []);
      this.clockScheduler.reconcile(PLUGIN_JOB_OWNER, []);
      if (this.ownsClockScheduler) void this.clockScheduler.stop();
      this.stopController.abort();
      this.markStarted(); // a reconcile waiting for start returns now
      const running = this.runs.inProgress();
      if (running.length > 0) {
        this.log.info({ running: running.length, stopGraceMs: this.cfg.stopGraceMs }, 'waiting for plugin runs in progress before stopping them');
      }
      const kill = this.cfg.stopGraceMs > 0 ? this.clock.setTimeout(() => this.killController.abort(), this.cfg.stopGraceMs) : undefined;
      if (!kill) this.killController.abort();
      await Promise.allSettled(running);
      if (kill) this.clock.clearTimeout(kill);
      this.killController.abort();
      await this.clones.idle();
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
    const { removed } = this.entries.replace(plugins);
    for (const r of this.entries.refused) this.log.warn({ namespace: r.namespace, repo: r.repo ?? r.builtin, problem: r.problem }, 'plugin refused');
    if (removed.length > 0) this.log.info({ plugins: removed.map((k) => JSON.parse(k) as unknown) }, 'plugins removed by the registry');
    this.syncJobs();
    await this.clones.bringInAll();
  }

  /** Jobs for every enabled plugin that runs on an interval or on clock times (`cron`). */
  private syncJobs(): void {
    if (this.stopping) return;
    const jobs: JobSpec[] = [];
    const clockJobs: ClockJobSpec[] = [];
    for (const rec of this.entries.values()) {
      if (!this.state.isEnabled(rec.namespace, rec.id)) continue;
      const key = recordKey(rec.namespace, rec.name);
      if (rec.entry.cron !== undefined) {
        clockJobs.push({
          key: jobKey(rec),
          namespace: rec.namespace,
          cron: rec.entry.cron,
          ...(rec.entry.timezone !== undefined ? { timezone: rec.entry.timezone } : {}),
          run: () => this.runs.scheduledRun(key),
        });
      } else if (rec.entry.interval > 0) {
        jobs.push({ key: jobKey(rec), namespace: rec.namespace, intervalSec: rec.entry.interval, run: () => this.runs.scheduledRun(key) });
      }
    }
    this.scheduler.reconcile(PLUGIN_JOB_OWNER, jobs);
    this.clockScheduler.reconcile(PLUGIN_JOB_OWNER, clockJobs);
  }

  /** Next planned run (ms since the epoch) of a scheduled plugin, or null. */
  private nextRunAt(rec: PluginRecord): number | null {
    if (rec.entry.cron !== undefined) return this.clockScheduler.describeJob(PLUGIN_JOB_OWNER, jobKey(rec))?.nextRunAt ?? null;
    return this.scheduler.describeJob?.(PLUGIN_JOB_OWNER, jobKey(rec))?.nextRunAt ?? null;
  }

  /** Ticks that found the plugin running. */
  private skippedTicks(rec: PluginRecord): number {
    if (rec.entry.cron === undefined) return rec.skippedTicks;
    // A clock time the runs declined (still running) is in rec.skippedTicks already; the clock
    // scheduler adds only the times it skipped without asking (its own run still going).
    return rec.skippedTicks + (this.clockScheduler.describeJob(PLUGIN_JOB_OWNER, jobKey(rec))?.overlapped ?? 0);
  }

  // ---- operations (HTTP API, CLI) ---------------------------------------------------------

  list(): PluginInfo[] {
    const out: PluginInfo[] = [];
    for (const rec of this.entries.values()) {
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
        skippedTicks: this.skippedTicks(rec),
        lastRun: last
          ? { startedAt: last.startedAt, durationMs: last.durationMs, exitCode: last.exitCode, timedOut: last.timedOut, success: last.success, error: last.error, stderrTail: last.stderrTail }
          : null,
      });
    }
    for (const r of this.entries.refused) {
      out.push({ ...r, enabled: false, disabledUntil: null, running: false, commit: null, updateError: null, skippedTicks: 0, lastRun: null });
    }
    return out.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  }

  async run(namespace: string, repo: string, opts: { timeoutSec?: number; params?: string[] }): Promise<PluginRunOutcome> {
    const found = this.entries.find(namespace, repo);
    if (!('rec' in found)) return found;
    return this.runs.runOnDemand(found.rec, opts);
  }

  async update(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const found = this.entries.find(namespace, repo);
    if (!('rec' in found)) return found;
    return this.clones.update(found.rec);
  }

  async enable(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const found = this.entries.find(namespace, repo);
    if (!('rec' in found)) return found;
    const rec = found.rec;
    try {
      const was = await this.state.enable(namespace, rec.id);
      this.syncJobs();
      this.autoEnable.arm();
      if (was) this.log.info({ namespace, plugin: rec.name }, 'plugin enabled');
      return { ok: true, message: was ? `enabled ${rec.name} in namespace ${namespace}` : `${rec.name} in namespace ${namespace} was already enabled` };
    } catch (err) {
      return { ok: false, kind: 'not-saved', message: `cannot save the plugin state: ${(err as Error).message}` };
    }
  }

  async disable(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const found = this.entries.find(namespace, repo);
    if (!('rec' in found)) return found;
    const rec = found.rec;
    try {
      const until = await this.state.disable(namespace, rec.id);
      this.syncJobs();
      this.autoEnable.arm();
      this.log.info({ namespace, plugin: rec.name, until: new Date(until).toISOString() }, 'plugin disabled');
      return { ok: true, message: `disabled ${rec.name} in namespace ${namespace} until ${new Date(until).toISOString()} (a run in progress finishes)` };
    } catch (err) {
      return { ok: false, kind: 'not-saved', message: `cannot save the plugin state: ${(err as Error).message}` };
    }
  }

  status(): Record<string, unknown> {
    let running = 0;
    let problems = 0;
    let disabled = 0;
    for (const rec of this.entries.values()) {
      if (rec.running) running++;
      if (rec.problem) problems++;
      if (!this.state.isEnabled(rec.namespace, rec.id)) disabled++;
    }
    return {
      plugins: this.entries.size,
      refused: this.entries.refused.length,
      withProblems: problems,
      disabled,
      running,
      slots: this.slots.status(),
      ...this.runs.counters,
      ...this.clones.counters,
      autoEnabled: this.autoEnable.autoEnabled,
    };
  }
}

/** A plugin's job key on the schedulers. */
function jobKey(rec: PluginRecord): string {
  return `plugin:${rec.namespace}/${rec.name}`;
}
