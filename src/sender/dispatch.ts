// Dispatch for one backend: at most maxConcurrentWrites requests in flight, taken from the lanes
// in turn. Follow-up requests that narrow down refused lines hold at most half of the slots, so
// a namespace whose points are refused never holds another's writes back. A partial batch goes
// out at once when nothing is in flight (an idle backend sees data immediately, a busy one full
// batches), and no request starts while the backend asked to be left alone (Retry-After).
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Lane, Lanes, Work } from './lanes.ts';
import type { Slice } from './write-part.ts';
import { RetryableWriteError } from './types.ts';

export interface DispatchOptions {
  /** The backend's name, for logs and errors. */
  name: string;
  maxConcurrentWrites: number;
  lanes: Lanes;
  clock: Clock;
  logger: Logger;
  /** False once the queue stopped or while the backend is down. */
  canSend(): boolean;
  /** Sends one request and settles its lines on every path. */
  deliver(work: Work): Promise<void>;
  fail(lane: Lane, slice: Slice, err: Error): void;
}

export class Dispatch {
  readonly stats = { batches: 0, bisectRequests: 0 };
  private readonly opts: DispatchOptions;
  private readonly clock: Clock;
  private readonly lanes: Lanes;
  private inFlightValue = 0;
  private narrowingInFlightValue = 0;
  private readonly narrowingSlots: number;
  private holdUntil = 0;
  private holdTimer: TimerHandle | undefined;
  private pumpScheduled = false;
  private draining = false;
  private readonly deliveries = new Set<Promise<void>>();

  constructor(opts: DispatchOptions) {
    this.opts = opts;
    this.clock = opts.clock;
    this.lanes = opts.lanes;
    // Narrowing down refused lines never takes more than half the slots: the other namespaces'
    // batches always find one.
    this.narrowingSlots = Math.max(1, Math.floor(opts.maxConcurrentWrites / 2));
  }

  get inFlight(): number {
    return this.inFlightValue;
  }

  get narrowingInFlight(): number {
    return this.narrowingInFlightValue;
  }

  /** How long no request may start yet (the backend's Retry-After); <= 0 when none. */
  holdMs(): number {
    return this.holdUntil - this.clock.now();
  }

  /** The backend asked to be left alone for `ms`. */
  holdFor(ms: number): void {
    this.holdUntil = Math.max(this.holdUntil, this.clock.now() + ms);
  }

  /** From now on partial batches go out at once, not waiting for an idle backend or full batches. */
  drain(): void {
    this.draining = true;
    this.pump();
  }

  close(): void {
    if (this.holdTimer) this.clock.clearTimeout(this.holdTimer);
  }

  /** Settles when every request started so far has finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.deliveries]);
  }

  schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // After the current I/O callbacks: writes arriving together (one socket read of NSQ
    // messages) share a batch instead of the first going out alone.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  pump(): void {
    if (!this.opts.canSend()) return;
    const wait = this.holdUntil - this.clock.now();
    if (wait > 0) {
      if (!this.holdTimer) {
        this.holdTimer = this.clock.setTimeout(() => {
          this.holdTimer = undefined;
          this.pump();
        }, wait);
      }
      return;
    }
    const idle = this.inFlightValue === 0 || this.draining;
    while (this.inFlightValue < this.opts.maxConcurrentWrites) {
      let work = this.nextWork();
      if (!work && idle && this.lanes.sealOldest()) work = this.nextWork();
      if (!work) break;
      this.dispatch(work);
    }
  }

  /** The next lane's next request, round-robin; a narrowing request only while a slot is free for it. */
  private nextWork(): Work | undefined {
    return this.lanes.next(this.narrowingInFlightValue < this.narrowingSlots);
  }

  private dispatch(work: Work): void {
    const { lane } = work;
    this.inFlightValue++;
    if (work.narrowing) {
      this.narrowingInFlightValue++;
      this.stats.bisectRequests++;
    } else {
      this.stats.batches++;
    }
    const delivery = this.opts
      .deliver(work)
      .catch((err: unknown) => {
        // deliver() settles its lines on every path; this is a bug guard, not a code path.
        this.opts.logger.error({ err, backend: this.opts.name }, 'batch delivery failed unexpectedly');
        this.opts.fail(lane, work.slice, new RetryableWriteError(`backend "${this.opts.name}": internal error`, 'failed'));
      })
      .finally(() => {
        this.inFlightValue--;
        if (work.narrowing) this.narrowingInFlightValue--;
        this.deliveries.delete(delivery);
        this.lanes.dropIfIdle(lane);
        this.pump();
      });
    this.deliveries.add(delivery);
  }
}
