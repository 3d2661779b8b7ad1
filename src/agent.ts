// The composition root: the one place that builds every long-lived part from the config and
// wires them together. Sinks start first and sources last; stop runs in reverse, flushing on
// the way out. SIGHUP's reload comes through reload().
import os from 'node:os';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config/load.ts';
import { maskSecrets } from './config/load.ts';
import { systemClock, type Clock } from './clock.ts';
import { LifecycleGroup } from './lifecycle.ts';
import type { LogStatus } from './log/logger.ts';
import path from 'node:path';
import { builtinPlugins } from '../goplugins/index.ts';
import { createApi } from './http/api.ts';
import { HttpServer } from './http/server.ts';
import { PluginManager } from './plugins/plugin-manager.ts';
import { NamespaceMeter } from './points/namespace-meter.ts';
import { Normaliser } from './points/normalise.ts';
import { Pipeline } from './points/pipeline.ts';
import { InProcessPublisher } from './publish/inprocess.ts';
import type { Publisher } from './publish/publisher.ts';
import { createNsqPublisher } from './publish/replicated-publisher.ts';
import { RegistryClient } from './registry/registry-client.ts';
import { createRelay } from './relay/relay.ts';
import { namespacesFromRegistry } from './relay/topic-source.ts';
import { Reconciler } from './collectors/reconciler.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { FileSink } from './sender/file-sink.ts';
import { StatusHistory } from './status-history.ts';
import { createGatewaySender } from './sender/gateway-sender.ts';
import type { GatewaySender } from './sender/types.ts';
import { VERSION } from './version.ts';

export interface AgentOptions {
  config: ResolvedConfig;
  logger: Logger;
  clock?: Clock;
  /** `agent relay`: only the relay and the sender, no registry, collectors or plugins. */
  role?: 'agent' | 'relay';
  /** The log file's health (createLogger's status), shown in /me/status and /metrics. */
  logStatus?: () => LogStatus;
}

/** Parts that can take a new config without a restart say so by implementing this. */
export interface Reconfigurable {
  reconfigure(config: ResolvedConfig): void;
}

export class Agent {
  readonly metrics = new Registry();
  private config: ResolvedConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly role: 'agent' | 'relay';
  private readonly parts: LifecycleGroup;
  private readonly reconfigurables: Reconfigurable[] = [];
  private readonly statusProviders = new Map<string, () => unknown>();
  private startedAt = 0;
  private http: HttpServer | undefined;

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.role = opts.role ?? 'agent';
    this.parts = new LifecycleGroup(this.log.child({ component: 'lifecycle' }));
    collectDefaultMetrics({ register: this.metrics, prefix: 'nsagent_' });
    if (opts.logStatus) this.exposeLogStatus(opts.logStatus);
    this.compose();
  }

  /**
   * Builds the parts in start order, sinks first and sources last:
   * sender → publisher → relay → scheduler → plugins → registry → HTTP.
   * The relay role keeps the sender, the relay (with the registry when it names the topics), a
   * publisher and the points pipeline for pushes into the gateway (/post, /api/push), and HTTP.
   */
  private compose(): void {
    const cfg = this.config;
    const clock = this.clock;
    const metrics = this.metrics;
    const child = (component: string) => this.log.child({ component });
    const relayRole = this.role === 'relay';
    const relayHere = relayRole || cfg.relay.enabled;

    // The sender: fed in-process (no nsq section) or by the relay.
    let sender: GatewaySender | undefined;
    if (!cfg.nsq || relayHere) {
      sender =
        cfg.sender.backends.length > 0
          ? createGatewaySender(cfg.sender, { logger: child('sender'), clock, metrics })
          : new FileSink({ ...cfg.sender.fileSink, logger: child('file-sink') });
      this.parts.add('sender', sender);
      this.statusProviders.set('sender', () => sender?.status());
    }

    // Also in the relay role: a data centre's gateway takes its clients' pushes, with the agent's
    // guarantees (through its nsqd when the nsq section names one, else in-process to the sender).
    let pipeline: NamespaceMeter | undefined;
    {
      const publisher: Publisher = cfg.nsq
        ? createNsqPublisher({ ...cfg.nsq, metrics, logger: child('publish'), clock })
        : new InProcessPublisher({
            sender: sender as GatewaySender,
            metrics,
            logger: child('publish'),
            clock,
            maxPendingLines: cfg.sender.maxQueuedPoints,
            retryMinMs: cfg.sender.retryMinMs,
            retryMaxMs: cfg.sender.retryMaxMs,
          });
      this.parts.add('publisher', publisher);
      this.statusProviders.set('publish', () => publisher.status());
      const points = new Pipeline({
        normaliser: new Normaliser({ hostname: cfg.hostname, clock }),
        publisher,
        metrics,
        logger: child('points'),
      });
      const perNamespace = new NamespaceMeter({ inner: points, metrics });
      pipeline = perNamespace;
      this.statusProviders.set('points', () => points.status());
      this.statusProviders.set('namespaces', () => perNamespace.status());
    }

    const needRegistry = !relayRole || (relayHere && cfg.relay.topicsFrom !== 'lookupd');
    const registry = needRegistry
      ? new RegistryClient({
          hostname: cfg.hostname,
          config: cfg.registry,
          cacheDir: path.join(cfg.dataDir, 'registry'),
          logger: child('registry'),
          clock,
          metrics,
        })
      : undefined;

    if (relayHere && sender && (cfg.nsq || cfg.relay.nsqdTcpAddresses.length > 0 || cfg.relay.lookupdHttpAddresses.length > 0)) {
      const relay = createRelay(cfg, {
        sender,
        namespaces: registry ? namespacesFromRegistry(registry) : undefined,
        logger: child('relay'),
        clock,
        metrics,
      });
      this.parts.add('relay', relay);
      this.statusProviders.set('relay', () => relay.status());
    } else if (relayRole) {
      throw new Error('agent relay needs nsqd addresses to consume from: set relay.nsqdTcpAddresses, relay.lookupdHttpAddresses or nsq.nsqdTcpAddresses');
    }

    let plugins: PluginManager | undefined;
    if (pipeline && registry && !relayRole) {
      const scheduler = new Scheduler({ hostname: cfg.hostname, logger: child('scheduler'), clock, metrics });
      const pluginManager = new PluginManager({
        config: cfg.plugins,
        stateFile: path.join(cfg.dataDir, 'plugins-state.json'),
        scheduler,
        sink: pipeline,
        builtins: builtinPlugins,
        logger: child('plugins'),
        clock,
        maxConcurrentRuns: cfg.scheduler.maxConcurrentRuns,
      });
      plugins = pluginManager;
      const reconciler = new Reconciler({
        scheduler,
        sink: pipeline,
        collect: cfg.collect,
        logger: child('collect'),
        clock,
        metrics,
        onPlugins: (p) => void pluginManager.reconcile(p),
      });
      registry.onChange((snapshot) => reconciler.apply(snapshot));
      this.parts.add('scheduler', scheduler);
      this.parts.add('plugins', pluginManager);
      this.statusProviders.set('scheduler', () => scheduler.status());
      this.statusProviders.set('collect', () => reconciler.status());
      this.statusProviders.set('plugins', () => pluginManager.status());
      this.reconfigurables.push({ reconfigure: (c) => reconciler.reconfigure(c.collect) });
    }
    if (registry) {
      this.parts.add('registry', registry);
      this.statusProviders.set('registry', () => registry.status());
      this.reconfigurables.push({ reconfigure: (c) => registry.reconfigure(c.registry) });
    }

    if (cfg.http.enabled) {
      // Sampling starts before HTTP so the page's first answer already has a point.
      const ui = cfg.http.ui;
      const history = ui.enabled
        ? new StatusHistory({ status: () => this.status(), clock, intervalMs: ui.historyIntervalSec * 1000, samples: ui.historySamples })
        : undefined;
      if (history) this.parts.add('history', history);
      this.http = new HttpServer({
        config: cfg.http,
        logger: child('http'),
        app: createApi({
          config: cfg.http,
          hostname: cfg.hostname,
          logDir: cfg.log.dir,
          logger: child('http'),
          sink: pipeline,
          registry,
          plugins,
          status: () => this.status(),
          exposeStatus: (name, read) => this.statusProviders.set(name, read),
          metrics,
          ui: ui.enabled ? { history } : undefined,
        }),
      });
      this.parts.add('http', this.http);
    }
  }

  /** A log folder that cannot be written is not fatal, so it must be visible. */
  private exposeLogStatus(logStatus: () => LogStatus): void {
    this.statusProviders.set('log', logStatus);
    const registers = [this.metrics];
    // Counters kept by the logger, read at scrape time.
    new Counter({
      name: 'nsagent_log_write_failures_total',
      help: 'Writes to the log file that failed (disk full, I/O error); the agent keeps running.',
      registers,
      collect() {
        this.reset();
        this.inc(logStatus().writeFailures);
      },
    });
    new Counter({
      name: 'nsagent_log_dropped_lines_total',
      help: 'Log lines dropped while the log file could not be written and its buffer was full.',
      registers,
      collect() {
        this.reset();
        this.inc(logStatus().droppedLines);
      },
    });
    new Gauge({
      name: 'nsagent_log_writable',
      help: '1 while the log file is written, 0 from a failed write until one succeeds again.',
      registers,
      collect() {
        this.set(logStatus().writable ? 1 : 0);
      },
    });
  }

  /** The HTTP API's bound address, once started. */
  httpAddress(): string | undefined {
    return this.http?.address();
  }

  async start(): Promise<void> {
    this.startedAt = this.clock.now();
    await this.parts.start();
    this.log.info(
      { version: VERSION, hostname: this.config.hostname, role: this.role, nsq: Boolean(this.config.nsq) },
      'agent started',
    );
  }

  async stop(): Promise<void> {
    await this.parts.stop();
  }

  /** Applies a validated new config: log level at once, and whatever the parts accept. */
  reload(next: ResolvedConfig): void {
    const prev = this.config;
    this.config = next;
    if (prev.log.level !== next.log.level) {
      this.log.level = next.log.level;
      this.log.info({ from: prev.log.level, to: next.log.level }, 'log level changed');
    }
    for (const part of this.reconfigurables) part.reconfigure(next);
    const restartOnly = (['hostname', 'dataDir', 'nsq', 'sender', 'http'] as const).filter(
      (k) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]),
    );
    if (restartOnly.length > 0) {
      this.log.warn({ sections: restartOnly }, 'config reloaded; these sections take effect only after a restart');
    } else {
      this.log.info('config reloaded');
    }
  }

  status(): Record<string, unknown> {
    const parts: Record<string, unknown> = {};
    for (const [name, provider] of this.statusProviders) parts[name] = provider();
    return {
      version: VERSION,
      hostname: this.config.hostname,
      role: this.role,
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSec: Math.round((this.clock.now() - this.startedAt) / 1000),
      loadavg: os.loadavg(),
      ...parts,
    };
  }

  resolvedConfig(): unknown {
    return maskSecrets(this.config);
  }
}
