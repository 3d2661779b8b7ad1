// The agent's view of the registry (RegistryView): three pollers, one consistent snapshot.
// The snapshot keeps only the checks and plugins of the namespaces this host belongs to, and
// listeners hear of it only when it really changed, so reconciliation runs on real changes.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.ts';
import type { RegistryConfig } from '../config/schema.ts';
import { RegistryCache } from './cache.ts';
import { FileRegistrySource } from './file-source.ts';
import { HttpRegistrySource } from './http-source.ts';
import { RegistryMetrics, RegistryPoller } from './poller.ts';
import type { RegistrySource } from './source.ts';
import type { NamespaceChecks, PluginEntry, PollerStatus, RegistrySnapshot, RegistryView } from './types.ts';
import type { PollerKind } from './validate.ts';

export interface RegistryClientOptions {
  /** The registry key of this host (config `hostname`, else the OS's). */
  hostname: string;
  /** The `registry` config section (file path absolute, as ResolvedConfig has it). */
  config: RegistryConfig;
  /** Folder of the last-good-answer cache: `<dataDir>/registry`. */
  cacheDir: string;
  logger: Logger;
  clock?: Clock;
  metrics?: Registry;
  /** Replaces the source the config names (tests, embedding). */
  source?: RegistrySource;
}

/** The source the `registry` config section names. */
export function createRegistrySource(config: RegistryConfig, hostname: string): RegistrySource {
  if (config.source === 'http') {
    if (!config.url) throw new Error('registry.url is required when registry.source is "http"');
    return new HttpRegistrySource({
      url: config.url,
      hostname,
      ...(config.token ? { token: config.token } : {}),
      timeoutMs: config.timeoutMs,
      maxAnswerBytes: config.maxAnswerBytes,
    });
  }
  return new FileRegistrySource({ file: config.file, hostname, maxAnswerBytes: config.maxAnswerBytes });
}

const EMPTY: RegistrySnapshot = { namespaces: [], checks: {}, plugins: {} };

export class RegistryClient implements RegistryView {
  private readonly hostname: string;
  private readonly cacheDir: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly fixedSource: RegistrySource | undefined;
  private config: RegistryConfig;
  private readonly namespaces: RegistryPoller<'namespaces'>;
  private readonly checks: RegistryPoller<'checks'>;
  private readonly plugins: RegistryPoller<'plugins'>;
  private readonly listeners: Array<(s: RegistrySnapshot) => void> = [];
  private snapshot: RegistrySnapshot = EMPTY;
  private snapshotJson = JSON.stringify(EMPTY);
  private started: Promise<void> | undefined;
  private stopped = false;

  constructor(opts: RegistryClientOptions) {
    if (!opts.hostname) throw new Error('RegistryClient: hostname is required');
    this.hostname = opts.hostname;
    this.cacheDir = opts.cacheDir;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.config = opts.config;
    this.fixedSource = opts.source;
    const source = opts.source ?? createRegistrySource(opts.config, opts.hostname);
    const cache = new RegistryCache({ dir: opts.cacheDir, hostname: opts.hostname, location: source.location });
    const metrics = new RegistryMetrics(opts.metrics);
    const common = { source, cache, hostname: opts.hostname, clock: this.clock, logger: this.log, metrics, onChange: () => this.recompose() };
    this.namespaces = new RegistryPoller({ ...common, kind: 'namespaces', intervalSec: opts.config.namespacesIntervalSec });
    this.checks = new RegistryPoller({ ...common, kind: 'checks', intervalSec: opts.config.checksIntervalSec });
    this.plugins = new RegistryPoller({ ...common, kind: 'plugins', intervalSec: opts.config.pluginsIntervalSec });
  }

  /**
   * Puts the cached answers in force (listeners hear of them at once), then polls all three
   * and resolves when those first polls are applied or failed: after start(), current() is
   * the registry's answer, else the cached one, else empty.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      const loaded = await Promise.all(this.pollers().map((p) => p.loadCache()));
      if (loaded.some(Boolean)) this.recompose();
      await Promise.all(this.pollers().map((p) => p.start()));
      this.log.info({ source: this.describeSource(), namespaces: this.snapshot.namespaces.length }, 'registry pollers started');
    })();
    return this.started;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.pollers()) p.stop();
  }

  current(): RegistrySnapshot {
    return this.snapshot;
  }

  async pollNow(): Promise<PollerStatus[]> {
    return Promise.all(this.pollers().map((p) => p.pollNow()));
  }

  status(): PollerStatus[] {
    return this.pollers().map((p) => p.status());
  }

  onChange(listener: (snapshot: RegistrySnapshot) => void): void {
    this.listeners.push(listener);
  }

  /** A new `registry` config section (SIGHUP): new intervals at once, a new source from the next poll. */
  reconfigure(config: RegistryConfig): void {
    const prev = this.config;
    this.config = config;
    const sourceChanged =
      !this.fixedSource &&
      (['source', 'file', 'url', 'token', 'timeoutMs', 'maxAnswerBytes'] as const).some((k) => prev[k] !== config[k]);
    let source: RegistrySource | undefined;
    let cache: RegistryCache | undefined;
    if (sourceChanged) {
      source = createRegistrySource(config, this.hostname);
      cache = new RegistryCache({ dir: this.cacheDir, hostname: this.hostname, location: source.location });
      this.log.info({ source: `${source.kind} ${source.location}` }, 'registry source changed');
    }
    const intervals: Record<PollerKind, number> = {
      namespaces: config.namespacesIntervalSec,
      checks: config.checksIntervalSec,
      plugins: config.pluginsIntervalSec,
    };
    for (const p of this.pollers()) {
      p.reconfigure({ ...(source ? { source } : {}), ...(cache ? { cache } : {}), intervalSec: intervals[p.kind] });
    }
  }

  private pollers(): [RegistryPoller<'namespaces'>, RegistryPoller<'checks'>, RegistryPoller<'plugins'>] {
    return [this.namespaces, this.checks, this.plugins];
  }

  private describeSource(): string {
    const s = this.namespaces.status();
    return s.location ?? '';
  }

  private recompose(): void {
    if (this.stopped) return; // a poll that finishes after stop() changes nothing any more
    const namespaces = this.namespaces.value() ?? [];
    const checksAnswer = this.checks.value() ?? {};
    const pluginsAnswer = this.plugins.value() ?? {};
    const checks: Record<string, NamespaceChecks> = {};
    const plugins: Record<string, PluginEntry[]> = {};
    for (const ns of namespaces) {
      checks[ns] = Object.hasOwn(checksAnswer, ns) ? (checksAnswer[ns] as NamespaceChecks) : { ports: [], processes: [] };
      plugins[ns] = Object.hasOwn(pluginsAnswer, ns) ? (pluginsAnswer[ns] as PluginEntry[]) : [];
    }
    const next: RegistrySnapshot = { namespaces: [...namespaces], checks, plugins };
    const json = JSON.stringify(next);
    if (json === this.snapshotJson) return;
    const member = new Set(namespaces);
    const ignored = [...new Set([...Object.keys(checksAnswer), ...Object.keys(pluginsAnswer)])].filter((ns) => !member.has(ns));
    if (ignored.length > 0) {
      this.log.info({ namespaces: ignored.slice(0, 20), count: ignored.length }, 'registry lists checks or plugins for namespaces this host is not in; ignored');
    }
    this.snapshot = next;
    this.snapshotJson = json;
    this.log.info({ namespaces: namespaces.length }, 'registry snapshot changed');
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch (err) {
        this.log.error({ err }, 'registry change listener failed');
      }
    }
  }
}
