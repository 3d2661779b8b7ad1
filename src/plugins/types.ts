// What the HTTP API and the CLI may ask of the plugin subsystem. Query strings use the full
// git URL (`repo`) as the replaced agent did; built-in plugins are addressed by their name.
// Also the contract of built-in plugins (goplugins/): a function from params to metrics.
import type { Logger } from 'pino';
import type { Metric, Rejection } from '../points/metric.ts';
import type { PluginEntry } from '../registry/types.ts';

export interface PluginRunResult {
  namespace: string;
  name: string;
  startedAt: number;
  durationMs: number;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  success: boolean;
  metricCount: number;
  /** Why the run failed (non-zero exit, bad output, timeout, missing plugin.sh, …). */
  error: string | null;
  /** Line protocol published for this run, including the PLUGIN.<name> result point. */
  lines: string[];
  stderrTail: string;
  /** Metrics the sink refused (the run still succeeds); at most the first 20. */
  rejected?: Rejection[];
  /** Metrics the sink refused, all of them. */
  rejectedCount?: number;
  /** stdout hit plugins.maxOutputBytes: the plugin was killed and its output discarded. */
  outputCapped?: boolean;
}

export interface PluginInfo {
  namespace: string;
  name: string;
  repo: string | null;
  builtin: string | null;
  interval: number;
  /** Clock-time schedule and its time zone, for entries that give `cron`. */
  cron?: string | null;
  timezone?: string | null;
  /** Next scheduled run, ms since the epoch; null when none is scheduled (on demand, disabled). */
  nextRunAt?: number | null;
  enabled: boolean;
  disabledUntil: number | null;
  running: boolean;
  /** Refused entries (duplicate name, bad URL, clone failure) carry the reason here. */
  problem: string | null;
  /** Commit of the cached clone (git plugins), once cloned. */
  commit?: string | null;
  /** Why the last /plugins/update failed (the plugin keeps running its old tree); null after a success. */
  updateError?: string | null;
  /** Scheduled ticks skipped because the previous run was still going. */
  skippedTicks?: number;
  lastRun: Pick<PluginRunResult, 'startedAt' | 'durationMs' | 'exitCode' | 'timedOut' | 'success' | 'error' | 'stderrTail'> | null;
}

/**
 * Why an operation was not done (the HTTP API answers each kind with its own status code):
 * - bad-request: the request, or the plugin's registry entry, cannot be acted on as it is;
 * - not-found: the namespace has no such plugin;
 * - busy: a run, clone or update of the plugin is in progress;
 * - not-saved: the enable/disable state could not be written;
 * - git-failed: a clone or update failed (the old tree stays);
 * - no-run-slot: no run slot came free in time, or the agent is stopping.
 */
export type PluginRefusalKind = 'bad-request' | 'not-found' | 'busy' | 'not-saved' | 'git-failed' | 'no-run-slot';

export interface PluginRefusal<K extends PluginRefusalKind = PluginRefusalKind> {
  ok: false;
  kind: K;
  message: string;
}

export type PluginOpOutcome = { ok: true; message: string } | PluginRefusal<'bad-request' | 'not-found' | 'busy' | 'not-saved' | 'git-failed'>;

export type PluginRunOutcome = { ok: true; result: PluginRunResult } | PluginRefusal<'bad-request' | 'not-found' | 'busy' | 'no-run-slot'>;

export interface PluginControl {
  list(): PluginInfo[];
  update(namespace: string, repo: string): Promise<PluginOpOutcome>;
  run(namespace: string, repo: string, opts: { timeoutSec?: number; params?: string[] }): Promise<PluginRunOutcome>;
  enable(namespace: string, repo: string): Promise<PluginOpOutcome>;
  disable(namespace: string, repo: string): Promise<PluginOpOutcome>;
}

/** The registry reconciler's hook: called with every namespace's plugin entries after a change. */
export interface PluginReconciler {
  /** Never rejects; resolves once new clones are in place (or refused) and jobs are registered. */
  reconcile(plugins: Record<string, PluginEntry[]>): Promise<void>;
}

/** What a built-in plugin gets besides its params. */
export interface BuiltinPluginContext {
  /** Aborted at the run's timeout (and when the agent stops): stop work and reject. */
  signal: AbortSignal;
  timeoutMs: number;
  logger: Logger;
}

/**
 * A built-in plugin: params in, metrics out (named without the PLUGIN.<name>. prefix, which the
 * runner adds). Throw ParamsError for bad params; `checkParams`, when present, lets the agent
 * refuse bad params when the registry names the plugin rather than at its first run.
 */
export type BuiltinPluginFn = ((params: Record<string, unknown>, ctx: BuiltinPluginContext) => Promise<Metric[]>) & {
  checkParams?: (params: Record<string, unknown>) => void;
};
