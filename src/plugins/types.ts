// What the HTTP API and the CLI may ask of the plugin subsystem. Query strings use the full
// git URL (`repo`) as the replaced agent did; built-in plugins are addressed by their name.

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
}

export interface PluginInfo {
  namespace: string;
  name: string;
  repo: string | null;
  builtin: string | null;
  interval: number;
  enabled: boolean;
  disabledUntil: number | null;
  running: boolean;
  /** Refused entries (duplicate name, bad URL, clone failure) carry the reason here. */
  problem: string | null;
  lastRun: Pick<PluginRunResult, 'startedAt' | 'durationMs' | 'exitCode' | 'timedOut' | 'success' | 'error'> | null;
}

export type PluginOpOutcome =
  | { ok: true; message: string }
  | { ok: false; status: 400 | 404 | 409 | 500 | 502; message: string };

export interface PluginControl {
  list(): PluginInfo[];
  update(namespace: string, repo: string): Promise<PluginOpOutcome>;
  run(
    namespace: string,
    repo: string,
    opts: { timeoutSec?: number; params?: string[] },
  ): Promise<{ ok: true; result: PluginRunResult } | { ok: false; status: 404 | 409 | 400; message: string }>;
  enable(namespace: string, repo: string): Promise<PluginOpOutcome>;
  disable(namespace: string, repo: string): Promise<PluginOpOutcome>;
}
