// One run of one plugin, start to published point: runs plugin.sh (or a built-in plugin's
// function), parses what it produced, hands the metrics to the MetricSink renamed
// PLUGIN.<name>.<metric>, then publishes the run's own PLUGIN.<name> result point. Scheduling,
// overlap and concurrency are the caller's; a run never rejects, whatever happens.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { PluginsConfig } from '../config/schema.ts';
import type { Metric, MetricSink, PushResult, Rejection } from '../points/metric.ts';
import { ParamsError } from './builtin.ts';
import { parsePluginOutput } from './plugin-output.ts';
import { PluginLauncher } from './launcher.ts';
import { findExecutable, type PluginProcessOutcome } from './plugin-process.ts';
import type { RunAsIdentity } from './run-as.ts';
import type { BuiltinPluginFn, PluginRunResult } from './types.ts';

export interface PluginRunnerOptions {
  sink: MetricSink;
  logger: Logger;
  clock: Clock;
  killGraceMs: number;
  maxOutputBytes: number;
  stderrRingBytes: number;
  /** null: run as the agent itself. */
  runAs: RunAsIdentity | null;
  /** Default "bash". */
  bashPath?: string;
  /** PATH given to plugins; default the agent's PATH. */
  pluginPath?: string;
}

/** The runner the `plugins` config section describes, with bash looked up on the PATH once. */
export async function createPluginRunner(
  cfg: Pick<PluginsConfig, 'killGraceMs' | 'maxOutputBytes' | 'stderrRingBytes'>,
  deps: Pick<PluginRunnerOptions, 'sink' | 'logger' | 'clock' | 'runAs'>,
): Promise<PluginRunner> {
  return new PluginRunner({
    ...deps,
    killGraceMs: cfg.killGraceMs,
    maxOutputBytes: cfg.maxOutputBytes,
    stderrRingBytes: cfg.stderrRingBytes,
    bashPath: await findExecutable('bash', process.env.PATH),
  });
}

export type PluginTarget =
  | { kind: 'git'; namespace: string; name: string; dir: string; args: readonly string[] }
  | { kind: 'builtin'; namespace: string; name: string; fn: BuiltinPluginFn; params: Record<string, unknown> }
  /** A plugin that cannot run (clone failed, no plugin.sh, …): only its failed result point. */
  | { kind: 'unavailable'; namespace: string; name: string; reason: string };

export interface RunOptions {
  timeoutMs: number;
  /** Aborted when the agent stops: the run ends as at a timeout. */
  signal?: AbortSignal;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_REJECTIONS_KEPT = 20;

/** What a run produced before publishing. */
interface Produced {
  metrics: unknown[];
  success: boolean;
  error: string | null;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  outputCapped: boolean;
  outputBytes: number | null;
  stderrTail: string;
}

export class PluginRunner {
  private readonly opts: PluginRunnerOptions;
  private readonly launcher: PluginLauncher;

  constructor(opts: PluginRunnerOptions) {
    if (!(opts.maxOutputBytes > 0)) throw new Error(`maxOutputBytes must be positive, got ${opts.maxOutputBytes}`);
    if (!(opts.killGraceMs >= 0)) throw new Error(`killGraceMs must be ≥ 0, got ${opts.killGraceMs}`);
    this.opts = opts;
    this.launcher = new PluginLauncher({ logger: opts.logger });
  }

  async run(target: PluginTarget, run: RunOptions): Promise<PluginRunResult> {
    const startedAt = this.opts.clock.now();
    const t0 = performance.now();
    const produced =
      target.kind === 'git'
        ? await this.runGit(target, run)
        : target.kind === 'builtin'
          ? await this.runBuiltin(target, run)
          : unavailable(target.reason);
    const durationMs = performance.now() - t0;
    const lines: string[] = [];
    let accepted = 0;
    let rejected: Rejection[] = [];
    let { success, error } = produced;

    if (produced.metrics.length > 0) {
      try {
        const res = await this.opts.sink.push(target.namespace, produced.metrics, { plugin: target.name, returnLines: true });
        accepted = res.accepted;
        rejected = res.rejected;
        lines.push(...(res.lines ?? []));
      } catch (err) {
        success = false;
        error = `publishing failed: ${(err as Error).message}`;
      }
    }

    const result: PluginRunResult = {
      namespace: target.namespace,
      name: target.name,
      startedAt,
      durationMs: Math.round(durationMs * 1000) / 1000,
      exitCode: produced.exitCode,
      signal: produced.signal,
      timedOut: produced.timedOut,
      success,
      metricCount: accepted,
      error,
      lines,
      stderrTail: produced.stderrTail,
      rejected: rejected.slice(0, MAX_REJECTIONS_KEPT),
      rejectedCount: rejected.length,
      outputCapped: produced.outputCapped,
    };
    const point = resultPoint(result, produced.outputBytes);
    try {
      const res: PushResult = await this.opts.sink.push(target.namespace, [point], { returnLines: true });
      lines.push(...(res.lines ?? []));
      if (res.rejected.length > 0) {
        this.opts.logger.warn({ namespace: target.namespace, plugin: target.name, reason: res.rejected[0]?.reason }, 'plugin result point refused');
      }
    } catch (err) {
      this.opts.logger.warn({ namespace: target.namespace, plugin: target.name, err: (err as Error).message }, 'plugin result point not published');
    }
    return result;
  }

  private async runGit(target: Extract<PluginTarget, { kind: 'git' }>, run: RunOptions): Promise<Produced> {
    const { runAs } = this.opts;
    const env: Record<string, string> = {
      PATH: this.opts.pluginPath ?? process.env.PATH ?? DEFAULT_PATH,
      NS: target.namespace,
      PLUGIN_NAME: target.name,
      PLUGIN_TIMEOUT: String(Math.max(1, Math.ceil(run.timeoutMs / 1000))),
      PLUGIN_DIR: target.dir,
      HOME: runAs?.home ?? process.env.HOME ?? '/',
    };
    for (const key of ['LANG', 'LC_ALL', 'TZ']) {
      const v = process.env[key];
      if (v !== undefined) env[key] = v;
    }
    if (runAs) {
      env.USER = runAs.user;
      env.LOGNAME = runAs.user;
    }
    const out: PluginProcessOutcome = await this.launcher.run({
      dir: target.dir,
      args: target.args,
      env,
      timeoutMs: run.timeoutMs,
      killGraceMs: this.opts.killGraceMs,
      maxOutputBytes: this.opts.maxOutputBytes,
      stderrRingBytes: this.opts.stderrRingBytes,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      ...(this.opts.bashPath ? { bashPath: this.opts.bashPath } : {}),
      ...(run.signal ? { signal: run.signal } : {}),
    });
    const base = {
      exitCode: out.exitCode,
      signal: out.signal,
      timedOut: out.timedOut,
      outputCapped: out.outputCapped,
      outputBytes: out.stdout.length,
      stderrTail: out.stderrTail,
    };
    const fail = (error: string): Produced => ({ ...base, metrics: [], success: false, error });
    if (out.timedOut) return fail(`timed out after ${run.timeoutMs / 1000} s; the process group was killed${lastLine(out.stderrTail)}`);
    if (out.failure) return fail(`${out.failure}${lastLine(out.stderrTail)}`);
    if (out.outputCapped) {
      return fail(`stdout went past plugins.maxOutputBytes (${this.opts.maxOutputBytes} bytes); the plugin was killed and its output discarded`);
    }
    if (out.exitCode !== 0) {
      const how = out.signal ? `killed by ${out.signal}` : `exit code ${out.exitCode}`;
      return fail(`${how}${lastLine(out.stderrTail)}`);
    }
    const parsed = parsePluginOutput(out.stdout);
    if (!parsed.ok) return fail(parsed.error);
    return { ...base, metrics: parsed.metrics, success: true, error: null };
  }

  private async runBuiltin(target: Extract<PluginTarget, { kind: 'builtin' }>, run: RunOptions): Promise<Produced> {
    const base = { exitCode: null, signal: null, outputCapped: false, outputBytes: null, stderrTail: '' };
    const controller = new AbortController();
    const onStop = () => controller.abort(new Error('stopped: the agent is shutting down'));
    run.signal?.addEventListener('abort', onStop, { once: true });
    let timer: NodeJS.Timeout | undefined;
    // The plugin is told through the signal; the race ends the run even if it does not listen.
    const deadline = new Promise<'timeout' | 'stopped'>((resolve) => {
      timer = setTimeout(() => {
        resolve('timeout'); // first: the abort below also settles this promise
        controller.abort(new Error(`timed out after ${run.timeoutMs / 1000} s`));
      }, run.timeoutMs);
      controller.signal.addEventListener('abort', () => resolve('stopped'), { once: true });
    });
    try {
      const work = target.fn(target.params, { signal: controller.signal, timeoutMs: run.timeoutMs, logger: this.opts.logger });
      work.catch(() => {}); // a rejection after the deadline has nobody left to tell
      const outcome = await Promise.race([work, deadline]);
      if (outcome === 'timeout') return { ...base, exitCode: 1, metrics: [], success: false, timedOut: true, error: `timed out after ${run.timeoutMs / 1000} s` };
      if (outcome === 'stopped') return { ...base, exitCode: 1, metrics: [], success: false, timedOut: false, error: 'stopped: the agent is shutting down' };
      if (!Array.isArray(outcome)) throw new Error(`returned ${typeof outcome}, not an array of metrics`);
      return { ...base, exitCode: 0, metrics: outcome, success: true, timedOut: false, error: null };
    } catch (err) {
      const why = err instanceof ParamsError ? `bad params: ${err.message}` : (err as Error).message || String(err);
      return { ...base, exitCode: 1, metrics: [], success: false, timedOut: false, error: why };
    } finally {
      clearTimeout(timer);
      run.signal?.removeEventListener('abort', onStop);
    }
  }
}

/**
 * The run's own point, `PLUGIN.<name>`: success, exit_code (-1: none, killed by a signal or not
 * started; built-in plugins 0 or 1), duration_ms, timed_out, metric_count (accepted),
 * rejected_count, error ("" when none); git plugins add output_bytes and output_capped.
 */
export function resultPoint(r: PluginRunResult, outputBytes: number | null): Metric {
  const fields: Record<string, number | boolean | string> = {
    success: r.success,
    exit_code: r.exitCode ?? -1,
    duration_ms: r.durationMs,
    timed_out: r.timedOut,
    metric_count: r.metricCount,
    rejected_count: r.rejectedCount ?? 0,
    error: r.error ?? '',
  };
  if (outputBytes !== null) {
    fields.output_bytes = outputBytes;
    fields.output_capped = r.outputCapped ?? false;
  }
  return { name: `PLUGIN.${r.name}`, timestamp: Math.floor(r.startedAt / 1000), fields };
}

function unavailable(reason: string): Produced {
  return { metrics: [], success: false, error: reason, exitCode: null, signal: null, timedOut: false, outputCapped: false, outputBytes: null, stderrTail: '' };
}

/** "; stderr: <last non-empty line>" when there is one. */
function lastLine(stderrTail: string): string {
  const line = stderrTail
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .pop();
  if (!line) return '';
  return `; stderr: ${JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}…` : line)}`;
}
