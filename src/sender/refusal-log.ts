// Warnings for points a backend refused, grouped: a namespace sending 20,000 refused points logs
// one WARN per kind of refusal per interval (the first at once, then a summary with how many were
// refused since), not a line per point. The counts themselves live in the sender's counters.
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';
import type { RefusalKind } from './write-errors.ts';

export interface RefusalLogOptions {
  backend: string;
  /** One warning per namespace and kind of refusal within this interval. */
  intervalMs: number;
  clock: Clock;
  logger: Logger;
}

interface Pending {
  namespace: string;
  kind: RefusalKind;
  warnedAt: number;
  /** Points refused since the last warning. */
  points: number;
  sample: string;
}

/** Past this many (namespace, kind) keys the oldest are summarised and forgotten. */
const MAX_KEYS = 1000;

export class RefusalLog {
  private readonly opts: RefusalLogOptions;
  private readonly entries = new Map<string, Pending>();
  private timer: TimerHandle | undefined;

  constructor(opts: RefusalLogOptions) {
    this.opts = opts;
  }

  /** Points of `namespace` refused for `kind` and dead-lettered; `reason` is the backend's text. */
  note(namespace: string, kind: RefusalKind, points: number, reason: string): void {
    const key = `${kind}\n${namespace}`;
    const now = this.opts.clock.now();
    const entry = this.entries.get(key);
    if (entry) {
      entry.points += points;
      entry.sample = reason;
      if (now - entry.warnedAt >= this.opts.intervalMs) this.warn(entry, now);
      return;
    }
    if (this.entries.size >= MAX_KEYS) this.forgetOldest();
    const fresh: Pending = { namespace, kind, warnedAt: now, points, sample: reason };
    this.entries.set(key, fresh);
    this.warn(fresh, now);
    this.schedule();
  }

  /** Logs what was refused since the last warnings (on stop). */
  flush(): void {
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.opts.clock.now();
    for (const entry of this.entries.values()) if (entry.points > 0) this.warn(entry, now);
    this.entries.clear();
  }

  private warn(entry: Pending, now: number): void {
    const { backend, intervalMs } = this.opts;
    this.opts.logger.warn(
      {
        backend,
        namespace: entry.namespace,
        kind: entry.kind,
        points: entry.points,
        sinceMs: now - entry.warnedAt,
        reason: entry.sample.slice(0, 300),
        warnEveryMs: intervalMs,
      },
      'backend refused points; dead-lettered',
    );
    entry.points = 0;
    entry.warnedAt = now;
  }

  /** One timer for all keys: the counts refused after a warning are reported within an interval. */
  private schedule(): void {
    if (this.timer) return;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      const now = this.opts.clock.now();
      for (const [key, entry] of this.entries) {
        if (now - entry.warnedAt < this.opts.intervalMs) continue;
        if (entry.points > 0) this.warn(entry, now);
        // Quiet for a whole interval: the next refusal warns at once again.
        else this.entries.delete(key);
      }
      if (this.entries.size > 0) this.schedule();
    }, this.opts.intervalMs);
    this.timer.unref?.();
  }

  private forgetOldest(): void {
    const [key, entry] = this.entries.entries().next().value as [string, Pending];
    if (entry.points > 0) this.warn(entry, this.opts.clock.now());
    this.entries.delete(key);
  }
}
