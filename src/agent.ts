// The composition root: the one place that builds every long-lived part from the config and
// wires them together. Sinks start first and sources last; stop runs in reverse, flushing on
// the way out. SIGHUP's reload comes through reload().
import os from 'node:os';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config/load.ts';
import { maskSecrets } from './config/load.ts';
import { systemClock, type Clock } from './clock.ts';
import { LifecycleGroup } from './lifecycle.ts';
import { createApi } from './http/api.ts';
import { HttpServer } from './http/server.ts';
import { VERSION } from './version.ts';

export interface AgentOptions {
  config: ResolvedConfig;
  logger: Logger;
  clock?: Clock;
  /** `agent relay`: only the relay and the sender, no registry, collectors or plugins. */
  role?: 'agent' | 'relay';
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
    this.compose();
  }

  /** Builds the parts in start order: sinks first, sources last. */
  private compose(): void {
    const cfg = this.config;
    if (cfg.http.enabled) {
      this.http = new HttpServer({
        config: cfg.http,
        logger: this.log.child({ component: 'http' }),
        app: createApi({ status: () => this.status() }),
      });
      this.parts.add('http', this.http);
    }
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
