// A MetricSink above the pipeline's seam: it accepts what the real normaliser would (a name, a
// finite value or non-empty fields, string tags), renames plugin metrics as the real one does
// (PLUGIN.<plugin>.<name>) and records every push that accepted something.
import type { Metric, MetricSink, PushOptions, PushResult, Rejection } from '../../src/points/metric.ts';

export interface Push {
  namespace: string;
  metrics: Metric[];
  opts: PushOptions | undefined;
}

export class RecordingSink implements MetricSink {
  readonly pushes: Push[] = [];
  /** When set, push() rejects with it (a sink that fails, such as a full spool). */
  failWith: Error | undefined;

  async push(namespace: string, metrics: readonly unknown[], opts?: PushOptions): Promise<PushResult> {
    if (this.failWith) throw this.failWith;
    const rejected: Rejection[] = [];
    const accepted: Metric[] = [];
    metrics.forEach((m, index) => {
      const reason = invalid(m);
      if (reason) rejected.push({ index, reason });
      else {
        const metric = m as Metric;
        accepted.push(opts?.plugin ? { ...metric, name: `PLUGIN.${opts.plugin}.${metric.name}` } : metric);
      }
    });
    if (accepted.length > 0) this.pushes.push({ namespace, metrics: accepted, opts });
    return { accepted: accepted.length, rejected, ...(opts?.returnLines ? { lines: accepted.map((m) => m.name) } : {}) };
  }

  /** Every metric accepted (for one namespace, or all), in order. */
  metrics(namespace?: string): Metric[] {
    return this.pushes.filter((p) => namespace === undefined || p.namespace === namespace).flatMap((p) => p.metrics);
  }

  /** The result points of plugin `name` (PLUGIN.<name>), in order. */
  resultPoints(name: string): Metric[] {
    return this.metrics().filter((m) => m.name === `PLUGIN.${name}`);
  }
}

function invalid(m: unknown): string | undefined {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'not an object';
  const o = m as Record<string, unknown>;
  if (typeof o.name !== 'string' || o.name === '') return 'no name';
  const okValue = (v: unknown) => (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean' || typeof v === 'string';
  if (o.fields !== undefined) {
    if (typeof o.fields !== 'object' || o.fields === null || Object.keys(o.fields).length === 0) return 'bad fields';
    if (!Object.values(o.fields).every(okValue)) return 'bad field value';
  } else if (!okValue(o.value)) return 'no value';
  if (o.tags !== undefined) {
    if (typeof o.tags !== 'object' || o.tags === null || Array.isArray(o.tags)) return 'bad tags';
    if (!Object.values(o.tags).every((v) => typeof v === 'string' && v !== '')) return 'bad tag';
  }
  return undefined;
}
