// What a publisher counts, shared by the NSQ and the in-process publisher so /metrics and
// /me/status read the same either way: prom-client counters (names prefixed nsagent_publish_)
// on the injected registry, plain totals for status(), and drops logged once per burst.
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock, TimerHandle } from '../clock.ts';

export type DropReason = 'oversize' | 'spool_full' | 'spool_error' | 'expired' | 'refused_by_nsqd' | 'sender_failed' | 'queue_full';

export interface PublishTotals {
  publishedLines: number;
  publishedMessages: number;
  publishedBatches: number;
  spooledLines: number;
  replayedLines: number;
  /** Lines sent again after a connection died with them unanswered: possible duplicates. */
  resentLines: number;
  dropped: Partial<Record<DropReason, number>>;
}

/** Gauges read at scrape time from the publisher's state. */
export interface PublishGaugeSource {
  inFlightBatches(): number;
  queuedBatches(): number;
  spoolBytes(): number;
  spoolOldestAgeSec(): number;
  /** Seconds of nsqd outage the spool can hold at the current offered rate; null: no traffic. */
  spoolOutageSec?(): number | null;
  nsqdReady(): Array<{ nsqd: string; ready: boolean }>;
}

export interface PublishMetricsOptions {
  registry: Registry;
  logger: Logger;
  clock: Clock;
  gauges: PublishGaugeSource;
  /** Drops of one reason within this window are summed into the next log line. */
  dropLogIntervalMs?: number;
}

interface Burst {
  lastLogAtMs: number;
  lines: number;
  events: number;
  timer: TimerHandle | undefined;
}

export class PublishMetrics {
  readonly totals: PublishTotals = {
    publishedLines: 0,
    publishedMessages: 0,
    publishedBatches: 0,
    spooledLines: 0,
    replayedLines: 0,
    resentLines: 0,
    dropped: {},
  };
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private readonly bursts = new Map<DropReason, Burst>();
  private readonly c: {
    publishedLines: Counter;
    publishedMessages: Counter;
    publishedBatches: Counter;
    spooledLines: Counter;
    replayedLines: Counter;
    resentLines: Counter;
    dropped: Counter<'reason'>;
  };

  constructor(opts: PublishMetricsOptions) {
    this.log = opts.logger;
    this.clock = opts.clock;
    this.intervalMs = opts.dropLogIntervalMs ?? 60_000;
    const registers = [opts.registry];
    const counter = (name: string, help: string): Counter => new Counter({ name: `nsagent_publish_${name}`, help, registers });
    this.c = {
      publishedLines: counter('published_lines_total', 'Lines acknowledged by nsqd (or taken by the in-process sender).'),
      publishedMessages: counter('published_messages_total', 'NSQ messages acknowledged by nsqd.'),
      publishedBatches: counter('published_batches_total', 'MPUB commands acknowledged by nsqd.'),
      spooledLines: counter('spooled_lines_total', 'Lines committed to the on-disk spool while no nsqd accepted them.'),
      replayedLines: counter('replayed_lines_total', 'Spooled lines later acknowledged by nsqd.'),
      resentLines: counter('resent_lines_total', 'Lines sent again after nsqd left them unanswered (possible duplicates).'),
      dropped: new Counter({
        name: 'nsagent_publish_dropped_lines_total',
        help: 'Lines a bound refused, by reason (oversize, spool_full, spool_error, expired, refused_by_nsqd, sender_failed, queue_full).',
        labelNames: ['reason'],
        registers,
      }),
    };
    const g = opts.gauges;
    new Gauge({
      name: 'nsagent_publish_inflight_batches',
      help: 'Batches sent to nsqd and not yet answered.',
      registers,
      collect() {
        this.set(g.inFlightBatches());
      },
    });
    new Gauge({
      name: 'nsagent_publish_queued_batches',
      help: 'Sealed batches waiting for a slot or for the spool.',
      registers,
      collect() {
        this.set(g.queuedBatches());
      },
    });
    new Gauge({
      name: 'nsagent_publish_spool_bytes',
      help: 'Unacknowledged bytes in the on-disk spool.',
      registers,
      collect() {
        this.set(g.spoolBytes());
      },
    });
    new Gauge({
      name: 'nsagent_publish_spool_oldest_age_seconds',
      help: 'Age of the oldest spooled batch not yet delivered (0 when the spool is empty).',
      registers,
      collect() {
        this.set(g.spoolOldestAgeSec());
      },
    });
    if (g.spoolOutageSec) {
      const outageSec = g.spoolOutageSec.bind(g);
      new Gauge({
        name: 'nsagent_publish_spool_outage_seconds',
        help: 'Spool room (bytes free, by nsq.spool.maxBytes or the disk) divided by the bytes per second offered to the publisher (decayed average); +Inf with no traffic.',
        registers,
        collect() {
          this.set(outageSec() ?? Number.POSITIVE_INFINITY);
        },
      });
    }
    new Gauge({
      name: 'nsagent_publish_nsqd_ready',
      help: '1 when the connection to this nsqd is ready to publish.',
      labelNames: ['nsqd'],
      registers,
      collect() {
        this.reset();
        for (const s of g.nsqdReady()) this.set({ nsqd: s.nsqd }, s.ready ? 1 : 0);
      },
    });
  }

  published(lines: number, messages: number): void {
    this.c.publishedLines.inc(lines);
    this.c.publishedMessages.inc(messages);
    this.c.publishedBatches.inc();
    this.totals.publishedLines += lines;
    this.totals.publishedMessages += messages;
    this.totals.publishedBatches++;
  }

  spooled(lines: number): void {
    this.c.spooledLines.inc(lines);
    this.totals.spooledLines += lines;
  }

  replayed(lines: number): void {
    this.c.replayedLines.inc(lines);
    this.totals.replayedLines += lines;
  }

  resent(lines: number): void {
    this.c.resentLines.inc(lines);
    this.totals.resentLines += lines;
  }

  /** Counts a drop and logs it: at once for the first of a burst, then summed per interval. */
  dropped(reason: DropReason, lines: number, detail: Record<string, unknown> = {}): void {
    if (lines <= 0) return;
    this.c.dropped.inc({ reason }, lines);
    this.totals.dropped[reason] = (this.totals.dropped[reason] ?? 0) + lines;
    const now = this.clock.now();
    let burst = this.bursts.get(reason);
    if (!burst) {
      burst = { lastLogAtMs: Number.NEGATIVE_INFINITY, lines: 0, events: 0, timer: undefined };
      this.bursts.set(reason, burst);
    }
    burst.lines += lines;
    burst.events++;
    if (now - burst.lastLogAtMs >= this.intervalMs) {
      this.logBurst(reason, burst, detail);
    } else if (burst.timer === undefined) {
      // The rest of the burst is summed into one line at the end of the interval.
      const b = burst;
      b.timer = this.clock.setTimeout(() => {
        b.timer = undefined;
        this.logBurst(reason, b, {});
      }, b.lastLogAtMs + this.intervalMs - now);
      b.timer.unref?.();
    }
  }

  /** Logs what the current bursts hold and cancels their timers (at stop), so no drop goes unlogged. */
  flushDropLog(): void {
    for (const [reason, burst] of this.bursts) {
      if (burst.timer !== undefined) this.clock.clearTimeout(burst.timer);
      burst.timer = undefined;
      this.logBurst(reason, burst, {});
    }
  }

  private logBurst(reason: DropReason, burst: Burst, detail: Record<string, unknown>): void {
    if (burst.lines === 0) return;
    this.log.warn({ reason, lines: burst.lines, events: burst.events, ...detail }, 'lines dropped');
    burst.lastLogAtMs = this.clock.now();
    burst.lines = 0;
    burst.events = 0;
  }

  snapshot(): PublishTotals {
    return { ...this.totals, dropped: { ...this.totals.dropped } };
  }
}
