// Fakes above the HTTP API's seam (test/helpers' RecordingSink, a scripted PluginControl, a fixed
// RegistryView) and a helper that serves createApi() on a free loopback port.
import path from 'node:path';
import { Registry } from 'prom-client';
import { httpSchema, type HttpConfig } from '../../src/config/schema.ts';
import { createApi, type ApiDeps } from '../../src/http/api.ts';
import { HttpServer } from '../../src/http/server.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { PluginControl, PluginInfo, PluginOpOutcome, PluginRunResult } from '../../src/plugins/types.ts';
import type { Publisher } from '../../src/publish/publisher.ts';
import type { PollerStatus, RegistrySnapshot, RegistryView } from '../../src/registry/types.ts';
import { RecordingSink } from '../helpers/recording-sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** A Publisher that keeps what it is given (for the real Pipeline when nsqd is not the point). */
export class MemoryPublisher implements Publisher {
  readonly published: Array<{ namespace: string; lines: string[] }> = [];

  get lines(): string[] {
    return this.published.flatMap((p) => p.lines);
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  async publish(namespace: string, lines: readonly string[]): Promise<void> {
    this.published.push({ namespace, lines: [...lines] });
  }

  status(): Record<string, unknown> {
    return { published: this.lines.length };
  }
}

export interface PluginCall {
  op: 'update' | 'run' | 'enable' | 'disable';
  namespace: string;
  repo: string;
  opts?: { timeoutSec?: number; params?: string[] };
}

export const PLUGIN_REPO = 'git@git.example.com:ops/nginx_status.git';

export function runResult(namespace: string, name: string): PluginRunResult {
  return {
    namespace,
    name,
    startedAt: 1_700_000_000_000,
    durationMs: 12,
    exitCode: 0,
    signal: null,
    timedOut: false,
    success: true,
    metricCount: 1,
    error: null,
    lines: [`PLUGIN.${name}.up value=1 1700000000`],
    stderrTail: '',
  };
}

/** Knows one plugin (ns "web", PLUGIN_REPO); `running` makes run answer busy (409). */
export class FakePlugins implements PluginControl {
  readonly calls: PluginCall[] = [];
  running = false;
  enabled = true;

  private known(namespace: string, repo: string): boolean {
    return namespace === 'web' && repo === PLUGIN_REPO;
  }

  private op(op: PluginCall['op'], namespace: string, repo: string, message: string): PluginOpOutcome {
    this.calls.push({ op, namespace, repo });
    if (!this.known(namespace, repo)) return { ok: false, kind: 'not-found', message: `no plugin ${repo} in namespace ${namespace}` };
    return { ok: true, message };
  }

  list(): PluginInfo[] {
    return [
      {
        namespace: 'web',
        name: 'nginx_status',
        repo: PLUGIN_REPO,
        builtin: null,
        interval: 60,
        enabled: this.enabled,
        disabledUntil: this.enabled ? null : 1_700_086_400_000,
        running: this.running,
        problem: null,
        lastRun: null,
      },
      {
        namespace: 'db',
        name: 'tcp_probe',
        repo: null,
        builtin: 'tcp_probe',
        interval: 30,
        enabled: true,
        disabledUntil: null,
        running: false,
        problem: null,
        lastRun: null,
      },
    ];
  }

  async update(namespace: string, repo: string): Promise<PluginOpOutcome> {
    return this.op('update', namespace, repo, 'updated to 1a2b3c4');
  }

  async enable(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const r = this.op('enable', namespace, repo, 'enabled');
    if (r.ok) this.enabled = true;
    return r;
  }

  async disable(namespace: string, repo: string): Promise<PluginOpOutcome> {
    const r = this.op('disable', namespace, repo, 'disabled for 86400 s');
    if (r.ok) this.enabled = false;
    return r;
  }

  async run(namespace: string, repo: string, opts: { timeoutSec?: number; params?: string[] }) {
    this.calls.push({ op: 'run', namespace, repo, opts });
    if (!this.known(namespace, repo)) return { ok: false as const, kind: 'not-found' as const, message: `no plugin ${repo} in namespace ${namespace}` };
    if (this.running) return { ok: false as const, kind: 'busy' as const, message: 'nginx_status is already running; not started twice' };
    return { ok: true as const, result: runResult(namespace, 'nginx_status') };
  }
}

export class FakeRegistry implements RegistryView {
  polls = 0;
  /** Resolves pollNow(); tests hold it to prove concurrent /update calls share one poll. */
  gate: Promise<void> = Promise.resolve();

  constructor(public namespaces: string[] = ['web', 'db']) {}

  current(): RegistrySnapshot {
    return { namespaces: this.namespaces, checks: {}, plugins: {} };
  }

  async pollNow(): Promise<PollerStatus[]> {
    this.polls++;
    await this.gate;
    return this.status();
  }

  status(): PollerStatus[] {
    return (['namespaces', 'checks', 'plugins'] as const).map((name) => ({
      name,
      lastSuccessAt: 1_700_000_000_000,
      lastError: null,
      lastErrorAt: null,
      nextPollAt: 1_700_000_060_000,
      source: 'registry' as const,
    }));
  }

  onChange(): void {}
}

export interface TestApi {
  url: string;
  sink: RecordingSink;
  plugins: FakePlugins;
  registry: FakeRegistry;
  metrics: Registry;
  logDir: string;
  /** Temp folder holding logDir; removed by close(). */
  root: string;
  close(): Promise<void>;
}

export interface TestApiOptions {
  http?: Partial<HttpConfig>;
  deps?: Partial<ApiDeps>;
}

export function httpConfig(overrides: Partial<HttpConfig> = {}): HttpConfig {
  return { ...httpSchema.parse({}), listen: '127.0.0.1:0', ...overrides };
}

export async function startApi(opts: TestApiOptions = {}): Promise<TestApi> {
  const { dir: root, cleanup } = tempDir('http');
  const logDir = path.join(root, 'log');
  const sink = new RecordingSink();
  const plugins = new FakePlugins();
  const registry = new FakeRegistry();
  const metrics = new Registry();
  const config = httpConfig(opts.http);
  const logger = silentLogger();
  const app = createApi({
    config,
    logDir,
    logger,
    sink,
    registry,
    plugins,
    metrics,
    status: () => ({ version: '0.0.0-test', hostname: 'test-host', uptimeSec: 1 }),
    ...opts.deps,
  });
  const server = new HttpServer({ config, logger, app });
  await server.start();
  return {
    url: `http://${server.address()}`,
    sink,
    plugins,
    registry,
    metrics,
    logDir,
    root,
    async close() {
      await server.stop();
      cleanup();
    },
  };
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed envelope (undefined when the body is not JSON). */
  json: { ok: boolean; data?: any; error?: string; details?: any } | undefined;
}

export async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: Answer['json'];
  try {
    json = JSON.parse(text) as Answer['json'];
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return call(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}
