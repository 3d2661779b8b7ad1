// Turns each registry snapshot into scheduler jobs: ONE system-stats job whose batch is copied
// to every current namespace, one checks job per namespace that has checks, and the plugin
// entries handed to the plugin subsystem's hook. Unchanged jobs are left exactly as they are.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.ts';
import type { CollectConfig } from '../config/schema.ts';
import type { Metric, MetricSink } from '../points/metric.ts';
import type { NamespaceChecks, PluginEntry, RegistrySnapshot } from '../registry/types.ts';
import type { JobScheduler, JobSpec } from '../scheduler/types.ts';
import { HostStatsCollector, type SystemCollectorsSettings } from './host-stats.ts';
import { NamespaceChecksCollector } from './namespace-checks.ts';
import { CollectorMetrics, RunningCollector } from './running-collector.ts';
import type { Collector } from './types.ts';

/** Scheduler owners used here; the plugin subsystem uses its own ("plugins"). */
export const SYSTEM_OWNER = 'system';
export const CHECKS_OWNER = 'checks';
/** The system job belongs to no namespace: its batch goes to all of them. */
export const ALL_NAMESPACES = '*';

export type PluginsHook = (plugins: Record<string, PluginEntry[]>) => void;

export interface ReconcilerOptions {
  scheduler: JobScheduler;
  sink: MetricSink;
  /** The `collect` config section (hostRoot absolute, as ResolvedConfig has it). */
  collect: CollectConfig;
  logger: Logger;
  clock?: Clock;
  metrics?: Registry;
  /** The plugin subsystem's hook: every namespace's plugin entries, after each change of them. */
  onPlugins?: PluginsHook;
  /** Replaces the system stats collector (tests, benches). */
  systemCollector?: Collector;
}

interface ChecksEntry {
  collector: NamespaceChecksCollector;
  runner: RunningCollector;
}

export class Reconciler {
  private readonly scheduler: JobScheduler;
  private readonly sink: MetricSink;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly collectorMetrics: CollectorMetrics;
  private readonly customSystem: Collector | undefined;
  private onPlugins: PluginsHook | undefined;
  private collect: CollectConfig;
  private system: RunningCollector;
  private readonly checks = new Map<string, ChecksEntry>();
  private namespaces: readonly string[] = [];
  private last: RegistrySnapshot | null = null;
  private lastPluginsJson: string | null = null;
  private readonly counters = { systemRuns: 0, checkRuns: 0, pointsPushed: 0, pointsRejected: 0, pushFailures: 0 };
  private rejectionLogged = false;
  private pushFailing = false;

  constructor(opts: ReconcilerOptions) {
    this.scheduler = opts.scheduler;
    this.sink = opts.sink;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.collect = opts.collect;
    this.onPlugins = opts.onPlugins;
    this.customSystem = opts.systemCollector;
    this.collectorMetrics = new CollectorMetrics(opts.metrics);
    this.system = this.buildSystem();
  }

  /** Set (or replace) the plugin hook; it is called at once with the plugins in force. */
  setPluginsHook(hook: PluginsHook): void {
    this.onPlugins = hook;
    this.lastPluginsJson = null;
    if (this.last) this.applyPlugins(this.last.plugins);
  }

  /** Apply a snapshot: start what is new, stop what is gone, leave the rest untouched. */
  apply(snapshot: RegistrySnapshot): void {
    this.last = snapshot;
    this.namespaces = [...snapshot.namespaces];

    this.scheduler.reconcile(SYSTEM_OWNER, this.namespaces.length > 0 ? [this.systemJob()] : []);

    const jobs: JobSpec[] = [];
    const wanted = new Set<string>();
    for (const ns of this.namespaces) {
      const checks: NamespaceChecks = Object.hasOwn(snapshot.checks, ns) ? (snapshot.checks[ns] as NamespaceChecks) : { ports: [], processes: [] };
      if (checks.ports.length === 0 && checks.processes.length === 0) continue;
      wanted.add(ns);
      let entry = this.checks.get(ns);
      if (entry) {
        entry.collector.setChecks(checks); // keeps the process checks' restart state
      } else {
        entry = this.buildChecks(ns, checks);
        this.checks.set(ns, entry);
      }
      jobs.push(this.checksJob(ns, entry));
    }
    for (const ns of [...this.checks.keys()]) if (!wanted.has(ns)) this.checks.delete(ns);
    this.scheduler.reconcile(CHECKS_OWNER, jobs);

    this.applyPlugins(snapshot.plugins);
  }

  /** A new `collect` section (SIGHUP): intervals, root and limits apply from the next run. */
  reconfigure(collect: CollectConfig): void {
    const prev = this.collect;
    this.collect = collect;
    if (prev.hostRoot !== collect.hostRoot || JSON.stringify(systemSettings(prev)) !== JSON.stringify(systemSettings(collect))) {
      this.system = this.buildSystem();
    }
    if (prev.hostRoot !== collect.hostRoot || prev.portConnectTimeoutMs !== collect.portConnectTimeoutMs) {
      this.checks.clear(); // rebuilt by apply(); restart detection starts afresh
    }
    if (this.last) this.apply(this.last);
  }

  status(): Record<string, unknown> {
    return { namespaces: this.namespaces.length, checkJobs: this.checks.size, ...this.counters };
  }

  private applyPlugins(plugins: Record<string, PluginEntry[]>): void {
    if (!this.onPlugins) return;
    const json = JSON.stringify(plugins);
    if (json === this.lastPluginsJson) return;
    this.lastPluginsJson = json;
    try {
      this.onPlugins(plugins);
    } catch (err) {
      this.log.error({ err }, 'plugins hook failed');
    }
  }

  private buildSystem(): RunningCollector {
    const collector =
      this.customSystem ??
      new HostStatsCollector({ hostRoot: this.collect.hostRoot, settings: systemSettings(this.collect), clock: this.clock });
    return new RunningCollector({ collector, logger: this.log, metrics: this.collectorMetrics });
  }

  private buildChecks(ns: string, checks: NamespaceChecks): ChecksEntry {
    const collector = new NamespaceChecksCollector({
      hostRoot: this.collect.hostRoot,
      connectTimeoutMs: this.collect.portConnectTimeoutMs,
      checks,
      clock: this.clock,
    });
    return { collector, runner: new RunningCollector({ collector, logger: this.log.child({ namespace: ns }), metrics: this.collectorMetrics }) };
  }

  private systemJob(): JobSpec {
    return {
      key: 'system',
      namespace: ALL_NAMESPACES,
      intervalSec: this.collect.systemIntervalSec,
      run: async ({ plannedAt }) => {
        // Read at run time: a namespace added since the last reconcile gets this tick's copy.
        const namespaces = this.namespaces;
        if (namespaces.length === 0) return;
        const batch = await this.system.gather(Math.floor(plannedAt / 1000));
        this.counters.systemRuns++;
        if (batch.metrics.length > 0) await Promise.all(namespaces.map((ns) => this.push(ns, batch.metrics)));
      },
    };
  }

  private checksJob(ns: string, entry: ChecksEntry): JobSpec {
    return {
      key: `checks:${ns}`,
      namespace: ns,
      intervalSec: this.collect.checksIntervalSec,
      run: async ({ plannedAt }) => {
        // The entry in force at run time: a reconfigure may have rebuilt it.
        const current = this.checks.get(ns) ?? entry;
        const batch = await current.runner.gather(Math.floor(plannedAt / 1000));
        this.counters.checkRuns++;
        if (batch.metrics.length > 0) await this.push(ns, batch.metrics);
      },
    };
  }

  /** Never rejects: a sink failure is counted and logged, and the next tick tries again. */
  private async push(ns: string, metrics: readonly Metric[]): Promise<void> {
    try {
      const r = await this.sink.push(ns, metrics);
      this.counters.pointsPushed += r.accepted;
      if (this.pushFailing) {
        this.pushFailing = false;
        this.log.info({ namespace: ns }, 'the sink accepts collected points again');
      }
      if (r.rejected.length > 0) {
        this.counters.pointsRejected += r.rejected.length;
        // A collector emitting an unwritable point is a bug: say it once, not every tick.
        if (!this.rejectionLogged) {
          this.rejectionLogged = true;
          this.log.warn({ namespace: ns, rejected: r.rejected.length, first: r.rejected[0]?.reason }, 'collected points rejected by the sink');
        }
      }
    } catch (err) {
      this.counters.pushFailures++;
      // The sink counts what it drops; a full spool would otherwise log once per namespace per tick.
      if (!this.pushFailing) {
        this.pushFailing = true;
        this.log.warn({ err, namespace: ns, points: metrics.length }, 'collected points not accepted by the sink');
      }
    }
  }
}

function systemSettings(c: CollectConfig): SystemCollectorsSettings {
  return { cpu: c.cpu, mem: c.mem, swap: c.swap, system: c.system, disk: c.disk, diskio: c.diskio, net: c.net, processes: c.processes };
}
