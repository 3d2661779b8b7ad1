// Points in and accepted per namespace, counted in front of the Pipeline (a MetricSink around a
// MetricSink), for /me/status, /metrics and the /ui page. The pipeline's own counters are
// host-wide; this is the only per-namespace view, and it is bounded: namespaces beyond
// maxNamespaces share one "(other)" row instead of growing the map and the label set.
import { Counter, type Registry } from 'prom-client';
import type { MetricSink, PushOptions, PushResult } from './metric.ts';

export interface NamespaceMeterOptions {
  inner: MetricSink;
  /** prom-client registry `nsagent_points_namespace_total` is registered on. */
  metrics: Registry;
  /** Distinct namespaces counted by name; the rest share OTHER_NAMESPACE. Default 256. */
  maxNamespaces?: number;
}

export interface NamespaceTotals {
  /** Metrics handed in for the namespace. */
  in: number;
  /** Points the pipeline accepted and the publisher acknowledged. */
  accepted: number;
  /** Metrics refused one by one (invalid), or whole batches the publisher dropped. */
  refused: number;
}

export const OTHER_NAMESPACE = '(other)';

export class NamespaceMeter implements MetricSink {
  private readonly inner: MetricSink;
  private readonly maxNamespaces: number;
  private readonly totals = new Map<string, NamespaceTotals>();
  private readonly counter: Counter<'namespace' | 'outcome'>;

  constructor(opts: NamespaceMeterOptions) {
    this.inner = opts.inner;
    this.maxNamespaces = opts.maxNamespaces ?? 256;
    if (!(this.maxNamespaces >= 1)) throw new Error('NamespaceMeter: maxNamespaces must be at least 1');
    this.counter = new Counter({
      name: 'nsagent_points_namespace_total',
      help: 'Metrics per namespace: handed in (in), accepted and acknowledged (accepted), refused or dropped (refused).',
      labelNames: ['namespace', 'outcome'],
      registers: [opts.metrics],
    });
  }

  async push(namespace: string, metrics: readonly unknown[], opts?: PushOptions): Promise<PushResult> {
    const row = this.row(namespace);
    const n = Array.isArray(metrics) ? metrics.length : 0;
    this.add(row, 'in', n);
    let result: PushResult;
    try {
      result = await this.inner.push(namespace, metrics, opts);
    } catch (err) {
      this.add(row, 'refused', n);
      throw err;
    }
    this.add(row, 'accepted', result.accepted);
    this.add(row, 'refused', n - result.accepted);
    return result;
  }

  status(): Record<string, NamespaceTotals> {
    const out: Record<string, NamespaceTotals> = {};
    for (const [ns, t] of this.totals) out[ns] = { ...t };
    return out;
  }

  private row(namespace: string): { name: string; totals: NamespaceTotals } {
    let name = typeof namespace === 'string' && namespace !== '' ? namespace : OTHER_NAMESPACE;
    let totals = this.totals.get(name);
    if (!totals) {
      if (this.totals.size >= this.maxNamespaces) name = OTHER_NAMESPACE;
      totals = this.totals.get(name);
      if (!totals) {
        totals = { in: 0, accepted: 0, refused: 0 };
        this.totals.set(name, totals);
      }
    }
    return { name, totals };
  }

  private add(row: { name: string; totals: NamespaceTotals }, outcome: keyof NamespaceTotals, n: number): void {
    if (n <= 0) return;
    row.totals[outcome] += n;
    this.counter.inc({ namespace: row.name, outcome }, n);
  }
}
