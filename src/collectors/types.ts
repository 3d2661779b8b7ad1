// The collector contract, after Telegraf's inputs: a collector reads one thing and adds
// measurements to an accumulator; it never sees namespaces, NSQ or line protocol. Timing,
// fan-out to namespaces, error logging and self-metrics belong to whoever runs it.
import { INTEGER_FIELDS, type FieldValue, type Metric } from '../points/metric.ts';

export interface Accumulator {
  /**
   * One measurement, stamped with the collection's timestamp. `integerFields` names the fields
   * written as InfluxDB integers (Telegraf's types); other numbers are floats.
   */
  add(measurement: string, fields: Record<string, FieldValue>, tags?: Record<string, string>, integerFields?: ReadonlySet<string>): void;
  /** A source that could not be read; the collection goes on with the others. */
  error(source: string, err: unknown): void;
}

export interface Collector {
  /** Stable name, used in logs and self-metrics ("cpu", "disk", …). */
  readonly name: string;
  /** Reads once. Only a bug rejects: unreadable sources go to acc.error(). */
  collect(acc: Accumulator): Promise<void>;
}

export interface CollectionError {
  source: string;
  message: string;
}

/** The plain accumulator: metrics in a list, all stamped with one timestamp (seconds). */
export class MetricBatch implements Accumulator {
  readonly metrics: Metric[] = [];
  readonly errors: CollectionError[] = [];

  constructor(readonly timestampSec: number) {}

  add(measurement: string, fields: Record<string, FieldValue>, tags?: Record<string, string>, integerFields?: ReadonlySet<string>): void {
    const m: Metric = { name: measurement, timestamp: this.timestampSec, fields };
    if (tags && Object.keys(tags).length > 0) m.tags = tags;
    if (integerFields) m[INTEGER_FIELDS] = integerFields;
    this.metrics.push(m);
  }

  error(source: string, err: unknown): void {
    this.errors.push({ source, message: err instanceof Error ? err.message : String(err) });
  }
}
