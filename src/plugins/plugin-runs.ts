// Runs plugins, scheduled and on demand: never two runs of one plugin at once, every run within
// the shared run slots, handed to the PluginRunner with what it runs (its tree or built-in
// function, args or params); each result kept on the plugin's record, each declined tick
// counted by reason. Runs as the plugin user; when that user cannot be resolved, git plugin
// runs fail with the reason instead of running as the agent's user.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { PluginsConfig } from '../config/schema.ts';
import type { MetricSink } from '../points/metric.ts';
import type { RunDeclined } from '../scheduler/types.ts';
import { ParamsError, paramsFromArgs } from './builtin.ts';
import type { PluginRepoCache } from './git-cache.ts';
import type { PluginEntries, PluginRecord } from './plugin-entries.ts';
import { createPluginRunner, type PluginRunner, type PluginTarget } from './plugin-runner.ts';
import type { PluginStateStore } from './plugin-state.ts';
import { resolveRunAs, type RunAsIdentity } from './run-as.ts';
import { SlotUnavailableError, type Slots } from '../slots.ts';
import type { BuiltinPluginFn, PluginRunOutcome, PluginRunResult } from './types.ts';

export interface PluginRunsOptions {
  config: PluginsConfig;
  entries: PluginEntries;
  builtins: Readonly<Record<string, BuiltinPluginFn>>;
  /** Where git plugins' trees are. */
  cache: PluginRepoCache;
  /** Enabled plugins only run on their schedule. */
  state: PluginStateStore;
  slots: Slots;
  sink: MetricSink;
  logger: Logger;
  clock: Clock;
  /** The identity plugins run as; undefined: resolve plugins.runAsUser at start. */
  runAs?: RunAsIdentity | null;
  /** Aborted when the agent stops: slot waits give up, no tick runs. */
  stopSignal: AbortSignal;
  /** Aborted when the runs still going are to be ended, as at a timeout. */
  killSignal: AbortSignal;
}

/** The longest on-demand run a caller may ask for. */
const MAX_ON_DEMAND_TIMEOUT_SEC = 3600;

type RunOverride = { args?: string[]; params?: Record<string, unknown> };

export class PluginRuns {
  private readonly cfg: PluginsConfig;
  private readonly log: Logger;
  private runner: PluginRunner | undefined;
  private runAsProblem: string | null = null;
  readonly counters = {
    runs: 0,
    failedRuns: 0,
    skippedTicks: 0,
    skippedWhileCloning: 0,
    /** Scheduled runs refused because the run-slot wait queue was full. */
    refusedNoSlot: 0,
  };

  constructor(private readonly opts: PluginRunsOptions) {
    this.cfg = opts.config;
    this.log = opts.logger;
  }

  /** Resolves the plugin user and makes the runner; answers the user (null: the agent's own). */
  async start(): Promise<RunAsIdentity | null> {
    let runAs: RunAsIdentity | null = null;
    if (this.opts.runAs !== undefined) {
      runAs = this.opts.runAs;
    } else {
      try {
        runAs = await resolveRunAs({ runAsUser: this.cfg.runAsUser, ...(this.cfg.runAsGroup ? { runAsGroup: this.cfg.runAsGroup } : {}) });
      } catch (err) {
        // Never fall back to running plugins as root: every git plugin run fails with this reason.
        this.runAsProblem = (err as Error).message;
        this.log.error({ err: this.runAsProblem }, 'git plugins cannot run');
      }
    }
    this.runner = await createPluginRunner(this.cfg, { sink: this.opts.sink, logger: this.log, clock: this.opts.clock, runAs });
    return runAs;
  }

  /** A tick of a plugin's job: a run, or why not (the scheduler counts it by that reason). */
  async scheduledRun(key: string): Promise<void | RunDeclined> {
    const rec = this.opts.entries.get(key);
    // The job outlived its plugin for a moment (a registry change is being applied).
    if (!rec) return { declined: 'skipped', reason: 'removed' };
    if (this.opts.stopSignal.aborted) return { declined: 'skipped', reason: 'stopping' };
    if (!this.opts.state.isEnabled(rec.namespace, rec.id)) return { declined: 'skipped', reason: 'disabled' };
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
        if (this.opts.stopSignal.aborted) return { declined: 'skipped', reason: 'stopping' };
        this.counters.refusedNoSlot++;
        return { declined: 'refused', reason: 'no_run_slot' };
      }
      throw err;
    }
  }

  /**
   * A caller's run, with its own timeout and params (a built-in plugin's are laid over the
   * registry's; a git plugin's replace them). The plugin is marked running before this returns
   * its promise.
   */
  async runOnDemand(rec: PluginRecord, opts: { timeoutSec?: number; params?: string[] }): Promise<PluginRunOutcome> {
    const namespace = rec.namespace;
    const timeoutSec = opts.timeoutSec ?? rec.entry.timeout ?? this.cfg.onDemandTimeoutSec;
    if (!(Number.isFinite(timeoutSec) && timeoutSec > 0 && timeoutSec <= MAX_ON_DEMAND_TIMEOUT_SEC)) {
      return { ok: false, kind: 'bad-request', message: `timeout must be seconds between 0 and ${MAX_ON_DEMAND_TIMEOUT_SEC}, got ${JSON.stringify(opts.timeoutSec)}` };
    }
    if (rec.running) return { ok: false, kind: 'busy', message: `plugin ${rec.name} of namespace ${namespace} is already running; this request was ignored` };
    if (!rec.ready && rec.gitBusy) return { ok: false, kind: 'busy', message: `plugin ${rec.name} of namespace ${namespace} is still being cloned; try again shortly` };
    let override: RunOverride | undefined;
    if (opts.params && opts.params.length > 0) {
      if (rec.builtin !== null) {
        try {
          const params = { ...(Array.isArray(rec.entry.params) ? {} : rec.entry.params), ...paramsFromArgs(opts.params) };
          this.opts.builtins[rec.builtin]?.checkParams?.(params);
          override = { params };
        } catch (err) {
          return { ok: false, kind: 'bad-request', message: err instanceof ParamsError ? `bad params: ${err.message}` : (err as Error).message };
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
      return { ok: false, kind: 'no-run-slot', message: `not run: ${(err as Error).message}` };
    }
  }

  /** Resolves when the plugin has no run in progress. */
  async idle(rec: PluginRecord): Promise<void> {
    while (rec.running) await rec.running.catch(() => undefined);
  }

  /** The runs in progress. */
  inProgress(): Array<Promise<PluginRunResult>> {
    return [...this.opts.entries.values()].map((p) => p.running).filter((r): r is Promise<PluginRunResult> => r !== null);
  }

  /** Starts a run: marks the plugin running at once (so nothing else starts it), then waits for a slot. */
  private execute(rec: PluginRecord, timeoutMs: number, override: RunOverride | undefined, slotWaitMs?: number): Promise<PluginRunResult> {
    const run = (async (): Promise<PluginRunResult> => {
      let release: () => void;
      try {
        release = await this.opts.slots.acquire({ signal: this.opts.stopSignal, ...(slotWaitMs !== undefined ? { waitMs: slotWaitMs } : {}) });
      } catch (err) {
        throw err instanceof SlotUnavailableError ? err : new SlotUnavailableError((err as Error).message);
      }
      try {
        const result = await (this.runner as PluginRunner).run(this.target(rec, override), { timeoutMs, signal: this.opts.killSignal });
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

  private target(rec: PluginRecord, override: RunOverride | undefined): PluginTarget {
    const base = { namespace: rec.namespace, name: rec.name };
    // A ready plugin with a problem has a registry entry that no longer validates (params, ref).
    if (!rec.ready || rec.problem) return { kind: 'unavailable', ...base, reason: rec.problem ?? 'the plugin is not cloned yet' };
    if (rec.builtin !== null) {
      const registryParams = Array.isArray(rec.entry.params) ? {} : (rec.entry.params ?? {});
      return { kind: 'builtin', ...base, fn: this.opts.builtins[rec.builtin] as BuiltinPluginFn, params: { ...registryParams, ...override?.params } };
    }
    if (this.runAsProblem) return { kind: 'unavailable', ...base, reason: this.runAsProblem };
    const args = override?.args ?? (Array.isArray(rec.entry.params) ? rec.entry.params.map((p) => String(p)) : []);
    return { kind: 'git', ...base, dir: this.opts.cache.dirOf(rec.namespace, rec.name), args };
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
}
