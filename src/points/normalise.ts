// Metric → one InfluxDB line, per SPEC §3: host tag, seconds timestamps, numbers as floats,
// PLUGIN.<plugin>.<metric> renames. Pure and synchronous (the clock is injected); a metric that
// cannot be written is refused alone with a reason naming the field, never taking its
// neighbours down. Escaping is left entirely to @influxdata/influxdb-client's Point.
//
// This is the agent's hottest loop (every point passes here once): checks use char codes and
// one pass over each object, and a batch allocates nothing per metric but the Point and its line.
import { Point, type PointSettings } from '@influxdata/influxdb-client';
import type { Clock } from '../clock.ts';
import { LP_CHARS } from '../lp-syntax.ts';
import { INTEGER_FIELDS, MAX_SERIES_KEY_BYTES, MAX_TIMESTAMP_SECONDS, type Rejection } from './metric.ts';

/** Why a metric was refused, as a short stable code (a metrics label); the reason text says more. */
export type RejectCode =
  | 'not_object'
  | 'bad_name'
  | 'bad_timestamp'
  | 'bad_tag'
  | 'bad_field'
  | 'no_fields'
  | 'too_long'
  | 'key_too_long';

export interface NormaliserOptions {
  /** The `host` tag added to points that carry none. */
  hostname: string;
  clock: Clock;
  /**
   * Timestamps above this many seconds are taken as milliseconds, microseconds or nanoseconds
   * and replaced by now. 1e11 s is the year 5138, while "now" in milliseconds is already
   * 1.7e12, so no real seconds timestamp is mistaken for a finer unit.
   */
  maxSecondsTimestamp?: number;
}

export type NormaliseOutcome =
  | { ok: true; line: string; timestampReplaced: boolean }
  | { ok: false; code: RejectCode; reason: string };

export interface NormalisedBatch {
  lines: string[];
  /**
   * Per refused metric (the first `maxListedRejections`): its index in the input, the reason
   * text and the code.
   */
  rejected: Array<Rejection & { code: RejectCode }>;
  /** Every refused metric, listed or not. */
  rejectedCount: number;
  /** Every refused metric by code, listed or not. */
  rejectedByCode: Partial<Record<RejectCode, number>>;
  /** Metrics whose given timestamp (0, negative, not seconds, not finite) was replaced by now. */
  timestampsReplaced: number;
}

export interface NormaliseBatchOptions {
  /** Rename to `PLUGIN.<plugin>.<name>`. */
  plugin?: string;
  /** Lines longer than this many UTF-8 bytes are refused (`too_long`); default: no bound. */
  maxLineBytes?: number;
  /** Refusals listed with their reason; the rest are only counted. Default: all. */
  maxListedRejections?: number;
}

export function emptyBatch(): NormalisedBatch {
  return { lines: [], rejected: [], rejectedCount: 0, rejectedByCode: {}, timestampsReplaced: 0 };
}

export const DEFAULT_MAX_SECONDS_TIMESTAMP = 1e11;

// Local copies: a local constant is cheaper than an imported binding on this hot path.
const { BACKSLASH, HASH, SPACE, COMMA, EQUALS } = LP_CHARS;

/** A refusal on the hot path: a small object, only ever made for bad input. */
class Refusal {
  constructor(
    readonly code: RejectCode,
    readonly reason: string,
  ) {}
}

export class Normaliser {
  /** The `host` tag added to points that carry none. */
  readonly hostname: string;
  private readonly clock: Clock;
  /** Timestamps above this many seconds are replaced by now. */
  readonly maxSeconds: number;
  /** Seconds as given: the lib's default would print nanoseconds (FIELD-NOTES). */
  private readonly settings: Partial<PointSettings> = { convertTime: (t) => (t === undefined ? undefined : String(t)) };
  /** Set by one(): whether the metric's given timestamp was replaced by now. */
  private replaced = false;

  constructor(opts: NormaliserOptions) {
    if (typeof opts.hostname !== 'string' || opts.hostname === '') {
      throw new Error('Normaliser: hostname must be a non-empty string (config "hostname")');
    }
    if (opts.hostname.endsWith('\\')) throw new Error('Normaliser: hostname must not end with a backslash');
    this.hostname = opts.hostname;
    this.clock = opts.clock;
    this.maxSeconds = opts.maxSecondsTimestamp ?? DEFAULT_MAX_SECONDS_TIMESTAMP;
    if (!(this.maxSeconds > 0)) throw new Error('Normaliser: maxSecondsTimestamp must be positive');
  }

  /** The injected clock's current second, for callers that normalise a batch in slices. */
  nowSec(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  /** Normalises one metric; `nowSec` lets callers share one clock reading. */
  normalise(input: unknown, plugin?: string, nowSec = this.nowSec()): NormaliseOutcome {
    const out = this.one(input, plugin === undefined ? undefined : pluginPrefix(plugin), nowSec);
    if (out instanceof Refusal) return { ok: false, code: out.code, reason: out.reason };
    return { ok: true, line: out, timestampReplaced: this.replaced };
  }

  /** Normalises a batch with one clock reading; refusals keep the metric's index. */
  normaliseBatch(inputs: readonly unknown[], plugin?: string): NormalisedBatch {
    const batch = emptyBatch();
    this.normaliseSlice(inputs, 0, inputs.length, batch, { plugin }, this.nowSec());
    return batch;
  }

  /**
   * Normalises `inputs[from, to)` into `batch`, so a large batch can be done a slice at a time
   * between turns of the event loop; refusals keep the metric's index in `inputs`.
   */
  normaliseSlice(
    inputs: readonly unknown[],
    from: number,
    to: number,
    batch: NormalisedBatch,
    opts: NormaliseBatchOptions,
    nowSec: number,
  ): void {
    const prefix = opts.plugin === undefined ? undefined : pluginPrefix(opts.plugin);
    const maxLineBytes = opts.maxLineBytes ?? Number.POSITIVE_INFINITY;
    const maxListed = opts.maxListedRejections ?? Number.POSITIVE_INFINITY;
    for (let i = from; i < to; i++) {
      let out = this.one(inputs[i], prefix, nowSec);
      // A UTF-16 unit is at most 3 UTF-8 bytes, so most lines need no byte count at all.
      if (typeof out === 'string' && out.length * 3 > maxLineBytes) {
        const bytes = Buffer.byteLength(out);
        if (bytes > maxLineBytes) {
          out = new Refusal('too_long', `metric: its line is ${bytes} bytes, above the ${maxLineBytes}-byte limit (nsq.maxMessageBytes less the header)`);
        }
      }
      if (typeof out === 'string') {
        batch.lines.push(out);
        if (this.replaced) batch.timestampsReplaced++;
      } else {
        batch.rejectedCount++;
        batch.rejectedByCode[out.code] = (batch.rejectedByCode[out.code] ?? 0) + 1;
        if (batch.rejected.length < maxListed) batch.rejected.push({ index: i, reason: out.reason, code: out.code });
      }
    }
  }

  private one(input: unknown, prefix: string | undefined, nowSec: number): string | Refusal {
    this.replaced = false;
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      return new Refusal('not_object', `metric: expected an object, found ${describe(input)}`);
    }
    const m = input as Record<string, unknown>;

    const rawName = m.name;
    if (typeof rawName !== 'string') return new Refusal('bad_name', `name: expected a string, found ${describe(rawName)}`);
    if (rawName === '') return new Refusal('bad_name', 'name: must not be empty');
    let name = rawName;
    // Idempotent, so a plugin that already prints the full name is not renamed twice.
    if (prefix !== undefined && !name.startsWith(prefix)) name = prefix + name;
    // The lib escapes ", \n" but not a trailing backslash, which would escape the next separator.
    if (name.charCodeAt(name.length - 1) === BACKSLASH) return new Refusal('bad_name', 'name: must not end with a backslash');
    // InfluxDB skips a line that starts with "#" as a comment: the point would vanish silently.
    if (name.charCodeAt(0) === HASH) return new Refusal('bad_name', 'name: must not start with "#" (InfluxDB reads the line as a comment)');

    let ts = nowSec;
    const rawTs = m.timestamp;
    if (rawTs !== undefined && rawTs !== null) {
      let n: number;
      if (typeof rawTs === 'number') {
        n = rawTs;
      } else if (typeof rawTs === 'string' && rawTs.trim() !== '') {
        n = Number(rawTs);
        if (Number.isNaN(n)) return new Refusal('bad_timestamp', `timestamp: expected seconds since the epoch, found ${describe(rawTs)}`);
      } else {
        return new Refusal('bad_timestamp', `timestamp: expected seconds since the epoch, found ${describe(rawTs)}`);
      }
      if (n > MAX_TIMESTAMP_SECONDS && n <= this.maxSeconds) {
        // Plainly seconds, yet past what InfluxDB stores: no "now" would be an honest fix-up.
        return new Refusal(
          'bad_timestamp',
          `timestamp: ${n} s is beyond the ${MAX_TIMESTAMP_SECONDS} s InfluxDB can store (the year 2262); send seconds since the epoch`,
        );
      }
      if (n > 0 && n <= this.maxSeconds) ts = Math.floor(n);
      else this.replaced = true;
    }

    const point = new Point(name);
    point.timestamp(ts);

    let hasHost = false;
    const tags = m.tags;
    if (tags !== undefined && tags !== null) {
      if (typeof tags !== 'object' || Array.isArray(tags)) {
        return new Refusal('bad_tag', `tags: expected an object of strings, found ${describe(tags)}`);
      }
      const t = tags as Record<string, unknown>;
      for (const key in t) {
        const raw = t[key];
        let value: string;
        if (typeof raw === 'string') value = raw;
        else if ((typeof raw === 'number' && Number.isFinite(raw)) || typeof raw === 'boolean') value = String(raw);
        else return new Refusal('bad_tag', `tags.${key}: expected a string, found ${describe(raw)}`);
        const problem = keyProblem(key) ?? (value.charCodeAt(value.length - 1) === BACKSLASH ? 'value must not end with a backslash' : undefined);
        if (problem !== undefined) return new Refusal('bad_tag', `tags.${key || '""'}: ${problem}`);
        // Empty values are left out (InfluxDB refuses them; Point and Telegraf skip them too).
        if (value === '') continue;
        if (key === 'host') hasHost = true;
        point.tag(key, value);
      }
    }
    if (!hasHost) point.tag('host', this.hostname);

    let fieldCount = 0;
    const fields = m.fields;
    if (fields !== undefined && fields !== null) {
      if (typeof fields !== 'object' || Array.isArray(fields)) {
        return new Refusal('bad_field', `fields: expected an object, found ${describe(fields)}`);
      }
      const f = fields as Record<string, unknown>;
      const integers = (m as { [INTEGER_FIELDS]?: ReadonlySet<string> })[INTEGER_FIELDS];
      for (const key in f) {
        const problem = addField(point, key, f[key], 'fields.', integers !== undefined && integers.has(key));
        if (problem !== undefined) return new Refusal('bad_field', problem);
        fieldCount++;
      }
    }
    const value = m.value;
    if (value !== undefined) {
      if (fieldCount > 0 && Object.prototype.hasOwnProperty.call(fields, 'value')) {
        return new Refusal('bad_field', 'value: set twice, as "value" and as "fields.value"; keep one');
      }
      const problem = addField(point, 'value', value, '');
      if (problem !== undefined) return new Refusal('bad_field', problem);
      fieldCount++;
    }
    if (fieldCount === 0) return new Refusal('no_fields', 'value: missing (a metric needs "value" or a non-empty "fields")');

    const line = point.toLineProtocol(this.settings);
    // Unreachable after the checks above; kept so a library change cannot drop a point silently.
    if (line === undefined) return new Refusal('no_fields', 'metric: the line-protocol writer refused it');
    // Short lines (the rule, by far) cannot hold an over-long key: a UTF-16 unit is ≤ 3 bytes.
    if (line.length * 3 > MAX_SERIES_KEY_BYTES) {
      const keyBytes = seriesKeyBytes(line, fields, value !== undefined);
      if (keyBytes > MAX_SERIES_KEY_BYTES) {
        return new Refusal(
          'key_too_long',
          `name and tags: the series key is ${keyBytes} bytes (with its longest field key), above the ${MAX_SERIES_KEY_BYTES} InfluxDB allows; shorten the name, tag keys or tag values`,
        );
      }
    }
    return line;
  }
}

function pluginPrefix(plugin: string): string {
  return `PLUGIN.${plugin}.`;
}

/** Problems shared by tag keys and field keys. */
function keyProblem(key: string): string | undefined {
  if (key === '') return 'key must not be empty';
  if (key.charCodeAt(key.length - 1) === BACKSLASH) return 'key must not end with a backslash';
  // InfluxDB 1.x refuses the whole point when a tag or field is called "time".
  if (key === 'time') return 'key "time" is reserved by InfluxDB';
  return undefined;
}

/**
 * What InfluxDB counts against its key limit: the escaped measurement and tags (the line up to
 * its first unescaped space), 4 bytes of separator, and the longest escaped field key.
 */
function seriesKeyBytes(line: string, fields: unknown, hasValue: boolean): number {
  let end = 0;
  for (;;) {
    end = line.indexOf(' ', end);
    if (end === -1) return Buffer.byteLength(line);
    let slashes = 0;
    while (line.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) break;
    end++;
  }
  let longestField = hasValue ? 5 : 0;
  if (fields !== undefined && fields !== null) {
    for (const key in fields as Record<string, unknown>) {
      longestField = Math.max(longestField, Buffer.byteLength(key) + (key.match(/[ ,=]/g)?.length ?? 0));
    }
  }
  return Buffer.byteLength(line.slice(0, end)) + 4 + longestField;
}

/**
 * InfluxDB (1.6 and 1.8, checked) refuses a field key where an odd run of backslashes comes
 * before a space, comma or "=": the lib escapes the character but not the backslashes, so the
 * server reads an escaped backslash and a bare separator ("invalid field format"). Tag keys,
 * tag values and measurements with the same text are taken.
 */
function fieldKeyProblem(key: string): string | undefined {
  for (let i = key.indexOf('\\'); i !== -1; i = key.indexOf('\\', i)) {
    let run = 0;
    while (key.charCodeAt(i + run) === BACKSLASH) run++;
    const next = key.charCodeAt(i + run);
    if (run % 2 === 1 && (next === SPACE || next === COMMA || next === EQUALS)) {
      return `key must not hold a backslash before ${next === SPACE ? 'a space' : next === COMMA ? 'a comma' : '"="'} (InfluxDB refuses such field keys)`;
    }
    i += run;
  }
  return undefined;
}

/** Largest magnitude an InfluxDB integer field holds (int64), as a double. */
const INT64_LIMIT = 2 ** 63;

/** Adds one field; returns the reason when the value cannot be written. */
function addField(point: Point, key: string, raw: unknown, where: string, integer = false): string | undefined {
  const problem = keyProblem(key) ?? fieldKeyProblem(key);
  if (problem !== undefined) return `${where}${key || '""'}: ${problem}`;
  switch (typeof raw) {
    case 'number':
      if (!Number.isFinite(raw)) return `${where}${key}: ${String(raw)} cannot be stored (finite numbers only)`;
      if (integer) {
        if (!Number.isInteger(raw) || Math.abs(raw) >= INT64_LIMIT) return `${where}${key}: ${String(raw)} is not a 64-bit integer`;
        point.intField(key, raw);
        return undefined;
      }
      point.floatField(key, raw);
      return undefined;
    case 'boolean':
      point.booleanField(key, raw);
      return undefined;
    case 'string':
      // The lib escapes quotes and backslashes but not line breaks, which would split the line:
      // they are written as the two characters "\n" / "\r" instead (documented in the README).
      point.stringField(key, raw.includes('\n') || raw.includes('\r') ? raw.replace(/\r/g, '\\r').replace(/\n/g, '\\n') : raw);
      return undefined;
    default:
      return `${where}${key}: expected a number, boolean or string, found ${describe(raw)}`;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${quote(v)}`;
  if (typeof v === 'number') return String(v);
  return typeof v === 'object' ? 'an object' : typeof v;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}
