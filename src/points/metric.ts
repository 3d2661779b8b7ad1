// The metric shape shared by collectors, plugins, built-in plugins and POST /post, and the
// sink they hand metrics to. Stamping (host, timestamp), renaming and line protocol happen
// once, behind MetricSink, so producers never see NSQ or InfluxDB.

export type FieldValue = number | boolean | string;

/**
 * Marks the fields a trusted producer (the system collectors) writes as InfluxDB integers, as
 * Telegraf does. A symbol, so JSON from plugins and POST /post can never carry it: their
 * numbers stay floats (SPEC §3).
 */
export const INTEGER_FIELDS: unique symbol = Symbol('nsagent.integerFields');

/**
 * One measurement. Producers of the public shape set `value`; collectors that follow
 * Telegraf's multi-field measurements (cpu, mem, …) set `fields` instead. Numbers become
 * float fields, booleans and strings keep their type.
 */
export interface Metric {
  name: string;
  /** Seconds since the epoch; 0, missing, negative or not-seconds → now. */
  timestamp?: number;
  tags?: Record<string, string>;
  value?: FieldValue;
  fields?: Record<string, FieldValue>;
  /** Names of `fields` written as integers (`123i`); the others follow the types above. */
  [INTEGER_FIELDS]?: ReadonlySet<string>;
}

/**
 * `obj[key] = value` for the tags and fields of a Metric built from external keys (line protocol,
 * Open-Falcon tags): a key named "__proto__" becomes data, never a prototype.
 */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** Why one metric was refused; `index` is its position in the batch handed in. */
export interface Rejection {
  index: number;
  reason: string;
}

export interface PushOptions {
  /** Rename to `PLUGIN.<plugin>.<name>` (git and built-in plugins). */
  plugin?: string;
  /** Also return the line protocol of the accepted points (plugin runs report what they published). */
  returnLines?: boolean;
  /** Refusals listed with their reason in the result; the rest are only counted. Default: all. */
  maxListedRejections?: number;
}

export interface PushResult {
  accepted: number;
  /** The refused metrics (the first `maxListedRejections`, by index). */
  rejected: Rejection[];
  /** Every refused metric, listed or not; absent means `rejected.length`. */
  rejectedCount?: number;
  /** Line protocol of the accepted points, when `returnLines` was asked for. */
  lines?: string[];
}

/** Where every producer hands its metrics: normalises, then publishes to the namespace. */
export interface MetricSink {
  /**
   * Resolves once every accepted point is acknowledged (published, spooled or handed to the
   * in-process sender); rejections are per metric and never fail the batch.
   */
  push(namespace: string, metrics: readonly unknown[], opts?: PushOptions): Promise<PushResult>;
}

/**
 * The largest timestamp, in seconds either side of the epoch, InfluxDB stores (int64
 * nanoseconds, the year 2262); a point beyond it is refused by every backend, so at ingest too.
 */
export const MAX_TIMESTAMP_SECONDS = 9_223_372_036;

/**
 * InfluxDB refuses a point when its escaped series key (measurement and tags), plus 4 bytes,
 * plus its longest escaped field key, exceed this many bytes ("max key length exceeded").
 */
export const MAX_SERIES_KEY_BYTES = 65_535;
