// The embedded default (no `nsq` section): the Publisher contract served in-process by handing
// lines straight to a GatewaySender. A failed write is retried with backoff, like the relay's
// requeue; what waits is capped in lines, and what the cap or the retry limit refuses is
// dropped, counted and logged. The sender's own start/stop belong to the composition root.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { backoffMs } from '../backoff.ts';
import { sleep, systemClock, type Clock } from '../clock.ts';
import type { GatewaySender } from '../sender/types.ts';
import { PublishMetrics, type PublishTotals } from './publish-metrics.ts';
import { DroppedError, type Publisher } from './publisher.ts';

export interface InProcessPublisherOptions {
  sender: GatewaySender;
  /** prom-client registry for the nsagent_publish_* metrics. */
  metrics: Registry;
  logger: Logger;
  clock?: Clock;
  /** Lines handed over and not yet accepted; a publish() beyond is dropped (default 200,000). */
  maxPendingLines?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** A write still failing after this long is dropped (default 5 minutes). */
  giveUpAfterMs?: number;
  /** stop() waits this long for writes still retrying, then drops them (default 10 s). */
  stopTimeoutMs?: number;
}

export class InProcessPublisher implements Publisher {
  private readonly sender: GatewaySender;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly metrics: PublishMetrics;
  private readonly maxPending: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly giveUpAfterMs: number;
  private readonly stopTimeoutMs: number;
  private pendingLines = 0;
  private writes = 0;
  private deadLettered = 0;
  private retries = 0;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopPromise: Promise<void> | undefined;
  /** Aborted when stop() gives up on retries: wakes every backoff sleep. */
  private readonly stopRetrying = new AbortController();
  private idleWaiters: Array<() => void> = [];

  constructor(opts: InProcessPublisherOptions) {
    this.sender = opts.sender;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.maxPending = opts.maxPendingLines ?? 200_000;
    this.retryMinMs = opts.retryMinMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    this.giveUpAfterMs = opts.giveUpAfterMs ?? 300_000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
    if (!(this.maxPending >= 1)) throw new Error('InProcessPublisher: maxPendingLines must be at least 1');
    if (!(this.retryMinMs > 0 && this.retryMaxMs >= this.retryMinMs)) {
      throw new Error('InProcessPublisher: need 0 < retryMinMs <= retryMaxMs');
    }
    this.metrics = new PublishMetrics({
      registry: opts.metrics,
      logger: this.log,
      clock: this.clock,
      gauges: {
        inFlightBatches: () => this.writes,
        queuedBatches: () => 0,
        spoolBytes: () => 0,
        spoolOldestAgeSec: () => 0,
        nsqdReady: () => [],
      },
    });
  }

  async start(): Promise<void> {
    if (this.state === 'new') this.state = 'running';
  }

  async publish(namespace: string, lines: readonly string[]): Promise<void> {
    if (this.state !== 'running') throw new Error(`in-process publisher is ${this.state === 'new' ? 'not started' : 'stopped'}; lines not accepted`);
    if (typeof namespace !== 'string' || namespace === '') throw new Error('publish: namespace must be a non-empty string');
    if (lines.length === 0) return;
    if (this.pendingLines + lines.length > this.maxPending) {
      this.metrics.dropped('queue_full', lines.length, { maxPendingLines: this.maxPending });
      throw new DroppedError(`${lines.length} lines dropped: ${this.pendingLines} lines already wait for the sender`, lines.length);
    }
    this.pendingLines += lines.length;
    this.writes++;
    try {
      await this.writeWithRetry(namespace, lines);
    } finally {
      this.pendingLines -= lines.length;
      this.writes--;
      this.wakeIdle();
    }
  }

  status(): Record<string, unknown> {
    const counters: PublishTotals = this.metrics.snapshot();
    return {
      mode: 'in-process',
      pendingLines: this.pendingLines,
      writesInProgress: this.writes,
      retries: this.retries,
      deadLettered: this.deadLettered,
      counters,
    };
  }

  /** Waits (up to stopTimeoutMs) for writes still retrying, then drops them; idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const timer = this.clock.setTimeout(() => {
      this.stopRetrying.abort();
    }, this.stopTimeoutMs);
    while (this.writes > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.clock.clearTimeout(timer);
    this.metrics.flushDropLog();
    this.state = 'stopped';
  }

  private async writeWithRetry(namespace: string, lines: readonly string[]): Promise<void> {
    const startedAt = this.clock.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const outcome = await this.sender.write(namespace, lines);
        this.deadLettered += outcome.deadLettered;
        this.metrics.published(lines.length, 0);
        return;
      } catch (err) {
        const elapsed = this.clock.now() - startedAt;
        if (this.stopRetrying.signal.aborted || elapsed >= this.giveUpAfterMs) {
          const why = this.stopRetrying.signal.aborted ? 'the agent stopped while the sender still failed' : `the sender failed for ${Math.round(elapsed / 1000)} s`;
          this.metrics.dropped('sender_failed', lines.length, { namespace, error: (err as Error).message });
          throw new DroppedError(`${lines.length} lines dropped: ${why}`, lines.length);
        }
        this.retries++;
        if (attempt === 0) this.log.warn({ namespace, error: (err as Error).message }, 'sender refused a write; retrying with backoff');
        const delayMs = backoffMs(attempt, this.retryMinMs, this.retryMaxMs);
        await sleep(this.clock, Math.min(delayMs, Math.max(0, this.giveUpAfterMs - elapsed)), this.stopRetrying.signal);
      }
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
