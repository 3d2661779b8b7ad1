// Runs a collector for its owner (Telegraf's RunningInput): a fresh batch per gather, stamped
// with the tick's time; errors logged once per source when they start and once when they stop
// (not every tick), counted, and the gather time observed.
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { MetricBatch, type Collector } from './types.ts';

export class CollectorMetrics {
  readonly gatherSeconds: Histogram<'collector'>;
  readonly errors: Counter<'collector'>;

  constructor(metrics?: Registry) {
    const registers = metrics ? [metrics] : [];
    this.gatherSeconds = new Histogram({
      name: 'nsagent_collector_gather_seconds',
      help: 'Wall time of one collection',
      labelNames: ['collector'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.errors = new Counter({
      name: 'nsagent_collector_errors_total',
      help: 'Sources a collection could not read (one per source per collection)',
      labelNames: ['collector'],
      registers,
    });
  }
}

export interface RunningCollectorOptions {
  collector: Collector;
  logger: Logger;
  metrics: CollectorMetrics;
}

export class RunningCollector {
  readonly collector: Collector;
  private readonly log: Logger;
  private readonly metrics: CollectorMetrics;
  /** Sources failing at the last gather, with their message: the burst being in progress. */
  private failing = new Map<string, string>();

  constructor(opts: RunningCollectorOptions) {
    this.collector = opts.collector;
    this.log = opts.logger;
    this.metrics = opts.metrics;
  }

  async gather(timestampSec: number): Promise<MetricBatch> {
    const batch = new MetricBatch(timestampSec);
    const started = performance.now();
    try {
      await this.collector.collect(batch);
    } catch (err) {
      batch.error(this.collector.name, err);
    }
    this.metrics.gatherSeconds.observe({ collector: this.collector.name }, (performance.now() - started) / 1000);
    this.report(batch);
    return batch;
  }

  private report(batch: MetricBatch): void {
    const now = new Map<string, string>();
    for (const e of batch.errors) {
      now.set(e.source, e.message);
      this.metrics.errors.inc({ collector: this.collector.name });
      if (!this.failing.has(e.source)) {
        this.log.warn({ collector: this.collector.name, source: e.source, error: e.message }, 'collector source failed');
      }
    }
    for (const source of this.failing.keys()) {
      if (!now.has(source)) this.log.info({ collector: this.collector.name, source }, 'collector source readable again');
    }
    this.failing = now;
  }
}
