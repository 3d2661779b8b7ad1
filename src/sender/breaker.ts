// One backend's health: marked down after downAfterFailures consecutive failed requests (writes
// to it then fail fast), probed with /ping every probeIntervalMs while down, and back up once a
// probe answers, half-open: one more failure marks it down again at once.
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';
import type { BackendCounters } from './sender-metrics.ts';
import { RetryableWriteError } from './types.ts';

export type BackendState = 'up' | 'down';

export interface BreakerOptions {
  /** The backend's name, for logs and errors. */
  name: string;
  downAfterFailures: number;
  probeIntervalMs: number;
  ping(): Promise<boolean>;
  counters: BackendCounters;
  clock: Clock;
  logger: Logger;
  /** Called once marked down, before probing starts: what waits for this backend gives up. */
  onDown(): void;
  /** Called when the backend is marked down (false) and back up (true). */
  onStateChange(up: boolean): void;
}

export class Breaker {
  private readonly opts: BreakerOptions;
  private readonly name: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private stateValue: BackendState = 'up';
  private failures = 0;
  private probeTimer: TimerHandle | undefined;
  private closed = false;
  private lastError: { message: string; at: number } | undefined;
  private lastSuccessAt: number | undefined;
  private downSince: number | undefined;

  constructor(opts: BreakerOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.clock = opts.clock;
    this.log = opts.logger;
    opts.counters.setUp(true);
  }

  get state(): BackendState {
    return this.stateValue;
  }

  isDown(): boolean {
    return this.stateValue === 'down';
  }

  /** The backend answered a request (accepted or refused it). */
  succeeded(): void {
    this.failures = 0;
    this.lastSuccessAt = this.clock.now();
  }

  /** A request failed in a retryable way; marks the backend down after downAfterFailures in a row. */
  failure(message: string): void {
    this.failures++;
    this.lastError = { message, at: this.clock.now() };
    if (this.stateValue === 'up' && this.failures >= this.opts.downAfterFailures) this.markDown(message);
  }

  downError(): RetryableWriteError {
    const last = this.lastError ? ` (last error: ${this.lastError.message})` : '';
    return new RetryableWriteError(`backend "${this.name}" is down${last}`, 'down', this.opts.probeIntervalMs);
  }

  /** Stops probing; the state stays as it is. */
  close(): void {
    this.closed = true;
    if (this.probeTimer) this.clock.clearTimeout(this.probeTimer);
  }

  status(): Record<string, unknown> {
    return {
      state: this.stateValue,
      consecutiveFailures: this.failures,
      downSince: this.downSince === undefined ? null : new Date(this.downSince).toISOString(),
      lastError: this.lastError ? { message: this.lastError.message, at: new Date(this.lastError.at).toISOString() } : null,
      lastSuccessAt: this.lastSuccessAt === undefined ? null : new Date(this.lastSuccessAt).toISOString(),
    };
  }

  private markDown(reason: string): void {
    this.stateValue = 'down';
    this.downSince = this.clock.now();
    this.opts.counters.setUp(false);
    this.log.warn(
      { backend: this.name, consecutiveFailures: this.failures, error: reason, probeIntervalMs: this.opts.probeIntervalMs },
      'backend marked down; writes to it fail fast until /ping answers',
    );
    this.opts.onDown();
    this.scheduleProbe();
    this.opts.onStateChange(false);
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    this.probeTimer = this.clock.setTimeout(() => {
      this.probeTimer = undefined;
      // A probe never overlaps the next: the next is scheduled only once this one answered.
      void this.opts.ping().then(
        (ok) => this.probed(ok),
        () => this.probed(false),
      );
    }, this.opts.probeIntervalMs);
  }

  private probed(ok: boolean): void {
    if (this.closed || this.stateValue === 'up') return;
    if (!ok) return this.scheduleProbe();
    this.stateValue = 'up';
    // Half-open: one more failure marks it down again at once.
    this.failures = this.opts.downAfterFailures - 1;
    this.opts.counters.setUp(true);
    this.log.info({ backend: this.name, downForMs: this.clock.now() - (this.downSince ?? this.clock.now()) }, 'backend is back up');
    this.downSince = undefined;
    this.opts.onStateChange(true);
  }
}
