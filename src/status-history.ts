// The last few minutes of the agent's own counters, for the /ui page's sparklines: every
// intervalMs it reads /me/status (the same object the route serves) and keeps a fixed ring of
// samples per series, so the page and the JSON are one source and no database is needed.
// Counters are kept as totals; the reader derives rates. Memory is fixed: samples × maxSeries.
import type { Clock, TimerHandle } from './clock.ts';

export interface StatusHistoryOptions {
  /** The agent's status(), as /me/status serves it. */
  status: () => Record<string, unknown>;
  clock: Clock;
  /** Sampling period; default 10 s. */
  intervalMs?: number;
  /** Samples kept per series; default 90 (15 minutes at 10 s). */
  samples?: number;
  /** Series kept; the ones first seen later are not recorded (and counted). Default 200. */
  maxSeries?: number;
}

/** `counter`: a running total (the page draws its rate); `gauge`: a level drawn as it is. */
export type SeriesKind = 'counter' | 'gauge';

export interface SeriesSnapshot {
  kind: SeriesKind;
  /** Oldest first, aligned with `t`; null where the series had no value yet. */
  v: Array<number | null>;
}

export interface HistorySnapshot {
  intervalSec: number;
  /** Sample times, ms since the epoch, oldest first; the last one is taken at the request. */
  t: number[];
  series: Record<string, SeriesSnapshot>;
  /** Series not recorded because maxSeries was reached. */
  refusedSeries: number;
}

interface Ring {
  kind: SeriesKind;
  values: Float64Array;
}

export class StatusHistory {
  private readonly opts: Required<StatusHistoryOptions>;
  private readonly times: Float64Array;
  private readonly rings = new Map<string, Ring>();
  private readonly refused = new Set<string>();
  /** Samples written so far; the next one goes to `written % samples`. */
  private written = 0;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(opts: StatusHistoryOptions) {
    this.opts = { intervalMs: 10_000, samples: 90, maxSeries: 200, ...opts };
    if (!(this.opts.intervalMs >= 100)) throw new Error('StatusHistory: intervalMs must be at least 100');
    if (!(this.opts.samples >= 2)) throw new Error('StatusHistory: samples must be at least 2');
    this.times = new Float64Array(this.opts.samples);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stored samples plus one taken now, so the newest point is always current. */
  snapshot(): HistorySnapshot {
    const n = Math.min(this.written, this.opts.samples);
    const first = this.written - n;
    const now = this.read();
    const t: number[] = [];
    for (let i = first; i < this.written; i++) t.push(this.times[i % this.opts.samples] as number);
    t.push(this.opts.clock.now());
    const series: Record<string, SeriesSnapshot> = {};
    for (const [name, ring] of this.rings) {
      const v: Array<number | null> = [];
      for (let i = first; i < this.written; i++) {
        const x = ring.values[i % this.opts.samples] as number;
        v.push(Number.isNaN(x) ? null : x);
      }
      v.push(now.get(name)?.value ?? null);
      series[name] = { kind: ring.kind, v };
    }
    // Series that appeared since the last sample (a namespace's first points) show at once.
    let shown = this.rings.size;
    for (const [name, { kind, value }] of now) {
      if (series[name] || shown >= this.opts.maxSeries) continue;
      series[name] = { kind, v: [...Array.from({ length: n }, () => null), value] };
      shown++;
    }
    return { intervalSec: this.opts.intervalMs / 1000, t, series, refusedSeries: this.refused.size };
  }

  private tick(): void {
    if (this.stopped) return;
    try {
      this.record(this.read());
    } catch {
      // A status provider that throws must not stop the sampling; that sample stays empty.
    }
    this.timer = this.opts.clock.setTimeout(() => this.tick(), this.opts.intervalMs);
    this.timer.unref?.();
  }

  private read(): Map<string, { kind: SeriesKind; value: number }> {
    return seriesOf(this.opts.status());
  }

  private record(values: Map<string, { kind: SeriesKind; value: number }>): void {
    const slot = this.written % this.opts.samples;
    this.times[slot] = this.opts.clock.now();
    for (const ring of this.rings.values()) ring.values[slot] = Number.NaN;
    for (const [name, { kind, value }] of values) {
      let ring = this.rings.get(name);
      if (!ring) {
        if (this.rings.size >= this.opts.maxSeries) {
          if (this.refused.size < this.opts.maxSeries) this.refused.add(name);
          continue;
        }
        ring = { kind, values: new Float64Array(this.opts.samples).fill(Number.NaN) };
        this.rings.set(name, ring);
      }
      ring.values[slot] = value;
    }
    this.written++;
  }
}

type Series = Map<string, { kind: SeriesKind; value: number }>;

/**
 * The series drawn by the page, read from a /me/status object. Every path is optional: parts
 * that are absent (relay role, no NSQ) or fields added later are simply missing or picked up.
 *   ns:<namespace>:in|accepted|refused       points per namespace (counters)
 *   backend:<name>:recv|sent|failed|dropped  gateway sender per backend (counters), :queued (gauge)
 *   spool:<field>                             every number in publish.spool (gauges)
 *   drop:<where>                              every drop or refusal counter, by reason
 *   points:in|accepted                        the pipeline's totals (counters)
 */
export function seriesOf(status: Record<string, unknown>): Series {
  const out: Series = new Map();
  const counter = (name: string, v: unknown) => {
    if (typeof v === 'number' && Number.isFinite(v)) out.set(name, { kind: 'counter', value: v });
  };
  const gauge = (name: string, v: unknown) => {
    if (typeof v === 'number' && Number.isFinite(v)) out.set(name, { kind: 'gauge', value: v });
  };

  const points = obj(status.points);
  counter('points:in', points?.pointsIn);
  counter('points:accepted', points?.accepted);

  for (const [ns, t] of entries(status.namespaces)) {
    for (const k of ['in', 'accepted', 'refused']) counter(`ns:${ns}:${k}`, obj(t)?.[k]);
  }

  const sender = obj(status.sender);
  for (const [name, b] of entries(sender?.backends)) {
    const c = obj(obj(b)?.counters);
    counter(`backend:${name}:recv`, count(c?.Recv));
    counter(`backend:${name}:sent`, count(c?.Send));
    counter(`backend:${name}:failed`, count(c?.SendFail));
    counter(`backend:${name}:dropped`, count(c?.SendDrop));
    gauge(`backend:${name}:queued`, c?.SendQueueSize ?? obj(b)?.queuedPoints);
  }
  // The file sink (no backend configured) is the one "backend" of the embedded default.
  if (sender?.mode === 'file') counter('backend:file:sent', sender.linesWritten);

  const publish = obj(status.publish);
  for (const [k, v] of entries(publish?.spool)) gauge(`spool:${k}`, v);

  collectDrops(status, '', 0, out);
  return out;
}

const DROP_KEY = /drop|refus|reject|expired|deadLetter/i;

/** Every counter named like a drop or refusal, at any depth up to 4, flattened by path. */
function collectDrops(node: unknown, path: string, depth: number, out: Series): void {
  if (depth > 4) return;
  for (const [k, v] of entries(node)) {
    const p = path === '' ? k : `${path}.${k}`;
    if (p === 'namespaces' || p.startsWith('namespaces.')) continue;
    const hit = DROP_KEY.test(k) || DROP_KEY.test(path);
    if (hit && typeof v === 'number' && Number.isFinite(v)) out.set(`drop:${p}`, { kind: 'counter', value: v });
    else if (hit && typeof count(v) === 'number') out.set(`drop:${p}`, { kind: 'counter', value: count(v) as number });
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) collectDrops(v, p, depth + 1, out);
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function entries(v: unknown): Array<[string, unknown]> {
  const o = obj(v);
  return o ? Object.entries(o) : [];
}

/** A meter snapshot's running total ({count, rate1, …}), or a plain number. */
function count(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  const c = obj(v)?.count;
  return typeof c === 'number' ? c : undefined;
}
