// One backend's side of the gateway sender, composed of one part per job: batches per namespace
// (lanes.ts), dispatch within a bounded number of concurrent writes (dispatch.ts), retry with
// backoff (retry.ts), finding and dead-lettering refused lines (refused-lines.ts), and the
// backend's health (breaker.ts). This class holds the queue's count of points and settles them:
// a write's lines are settled through its WritePart only when the backend accepted them or they
// were dead-lettered.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { BackendWriter } from './backend-writer.ts';
import type { DeadLetterRecord } from './dead-letter.ts';
import type { LineBlock } from './line-block.ts';
import type { BackendCounters } from './sender-metrics.ts';
import { RetryableWriteError } from './types.ts';
import { Breaker, type BackendState } from './breaker.ts';
import { Dispatch } from './dispatch.ts';
import { Lanes, type Lane, type Settle } from './lanes.ts';
import { RefusedLines } from './refused-lines.ts';
import { RetryingWriter, stoppedError } from './retry.ts';
import type { Slice, WritePart } from './write-part.ts';

export { WritePart } from './write-part.ts';
export type { BackendState } from './breaker.ts';
export type { BackendWriter } from './backend-writer.ts';

export interface BackendQueueOptions {
  client: BackendWriter;
  batchSize: number;
  flushIntervalMs: number;
  maxConcurrentWrites: number;
  retryMinMs: number;
  retryMaxMs: number;
  downAfterFailures: number;
  probeIntervalMs: number;
  /** On 404 "database not found": CREATE DATABASE, then write again. */
  createDatabase: boolean;
  deadLetter: { append(records: readonly DeadLetterRecord[]): Promise<void> };
  counters: BackendCounters;
  clock: Clock;
  logger: Logger;
  /** Called when the backend is marked down (false) and back up (true). */
  onStateChange(up: boolean): void;
  /** Called after queued points were settled (accepted, dead-lettered or failed). */
  onReleased?(): void;
}

export class BackendQueue {
  readonly name: string;
  private readonly opts: BackendQueueOptions;
  private readonly clock: Clock;
  private readonly lanes: Lanes;
  private readonly breaker: Breaker;
  private readonly dispatch: Dispatch;
  private readonly writer: RetryingWriter;
  private readonly refused: RefusedLines;
  private queued = 0;
  private closed = false;
  private readonly idleWaiters = new Set<() => void>();

  constructor(opts: BackendQueueOptions) {
    for (const k of ['batchSize', 'maxConcurrentWrites', 'downAfterFailures'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`backend queue: ${k} must be an integer >= 1`);
    }
    for (const k of ['flushIntervalMs', 'retryMinMs', 'retryMaxMs', 'probeIntervalMs'] as const) {
      if (!(opts[k] >= 0)) throw new Error(`backend queue: ${k} must be >= 0`);
    }
    this.opts = opts;
    this.name = opts.client.name;
    this.clock = opts.clock;
    const { client, counters, clock, logger } = opts;
    const settle: Settle = {
      accept: (lane, slice, bytes) => this.acceptSlice(lane, slice, bytes),
      fail: (lane, slice, err) => this.failSlice(lane, slice, err),
      deadLettered: (lane, slice) => this.deadLetteredSlice(lane, slice),
    };
    this.lanes = new Lanes({ batchSize: opts.batchSize, flushIntervalMs: opts.flushIntervalMs, clock, onBatchDue: () => this.dispatch.pump() });
    this.breaker = new Breaker({
      name: this.name,
      downAfterFailures: opts.downAfterFailures,
      probeIntervalMs: opts.probeIntervalMs,
      ping: () => client.ping(),
      counters,
      clock,
      logger,
      onDown: () => {
        this.failQueued(this.breaker.downError());
        this.writer.wakeSleepers();
      },
      onStateChange: (up) => {
        opts.onStateChange(up);
        if (up) this.dispatch.pump();
      },
    });
    this.dispatch = new Dispatch({
      name: this.name,
      maxConcurrentWrites: opts.maxConcurrentWrites,
      lanes: this.lanes,
      clock,
      logger,
      canSend: () => !this.closed && !this.breaker.isDown(),
      deliver: (work) => this.writer.deliver(work),
      fail: settle.fail,
    });
    this.refused = new RefusedLines({ name: this.name, client, deadLetter: opts.deadLetter, lanes: this.lanes, settle, counters, clock, logger });
    this.writer = new RetryingWriter({
      client,
      retryMinMs: opts.retryMinMs,
      retryMaxMs: opts.retryMaxMs,
      createDatabase: opts.createDatabase,
      breaker: this.breaker,
      dispatch: this.dispatch,
      settle,
      narrow: (lane, slice, answer) => this.refused.narrow(lane, slice, answer),
      isClosed: () => this.closed,
      counters,
      clock,
      logger,
    });
  }

  get state(): BackendState {
    return this.breaker.state;
  }

  isDown(): boolean {
    return this.breaker.isDown();
  }

  queuedPoints(): number {
    return this.queued;
  }

  /** Why a write for this backend must be refused now, or undefined when it may be queued. */
  refusal(): RetryableWriteError | undefined {
    if (this.closed) return new RetryableWriteError(`backend "${this.name}": sender stopped`, 'stopped');
    if (this.breaker.isDown()) return this.breaker.downError();
    const hold = this.dispatch.holdMs();
    if (hold > this.opts.retryMaxMs) {
      return new RetryableWriteError(`backend "${this.name}" asked to retry after ${hold} ms`, 'retry-after', hold);
    }
    return undefined;
  }

  /** Queues a write's lines for this backend; `part` settles with them. */
  enqueue(namespace: string, lines: LineBlock, part: WritePart): void {
    const n = lines.length;
    this.opts.counters.received(n);
    this.opts.counters.queued(n);
    this.queued += n;
    this.lanes.add(namespace, lines, part);
    this.dispatch.schedulePump();
  }

  /**
   * Sends everything queued (not waiting for idle or full batches) until the queue is empty or
   * the deadline passes, then aborts what is left; what was not accepted fails as retryable.
   */
  async stop(deadlineMs: number): Promise<void> {
    if (this.closed) return;
    this.dispatch.drain();
    if (this.queued > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, Math.max(0, deadlineMs - this.clock.now()));
        this.idleWaiters.add(() => {
          this.clock.clearTimeout(timer);
          resolve();
        });
      });
    }
    this.closed = true;
    this.idleWaiters.clear();
    this.breaker.close();
    this.dispatch.close();
    this.failQueued(stoppedError(this.name));
    this.writer.wakeSleepers();
    // Aborts the requests in flight; their deliveries then fail their batches as "stopped".
    this.opts.client.close();
    await this.dispatch.settled();
    this.refused.flush();
  }

  status(): Record<string, unknown> {
    return {
      ...this.breaker.status(),
      retryAfterMs: Math.max(0, this.dispatch.holdMs()),
      queuedPoints: this.queued,
      queuedBatches: this.lanes.batches(),
      queuedNamespaces: this.lanes.size,
      inFlightRequests: this.dispatch.inFlight,
      narrowingRequestsInFlight: this.dispatch.narrowingInFlight,
      requests: this.writer.stats.requests,
      batches: this.dispatch.stats.batches,
      bisectRequests: this.dispatch.stats.bisectRequests,
      databasesCreated: this.writer.stats.databasesCreated,
      counters: this.opts.counters.snapshot(),
    };
  }

  // --- settling ---------------------------------------------------------------------------------

  private release(lane: Lane, n: number): void {
    this.queued -= n;
    lane.queued -= n;
    this.opts.counters.queued(-n);
    if (this.queued === 0 && this.idleWaiters.size > 0) {
      for (const wake of [...this.idleWaiters]) wake();
      this.idleWaiters.clear();
    }
    this.opts.onReleased?.();
  }

  private acceptSlice(lane: Lane, slice: Slice, bytes?: number): void {
    const n = slice.lines.length;
    this.opts.counters.sent(n, bytes ?? slice.lines.byteLength());
    for (const seg of slice.segs) seg.part.accept(seg.n);
    this.release(lane, n);
  }

  private failSlice(lane: Lane, slice: Slice, err: Error): void {
    for (const seg of slice.segs) seg.part.fail(err);
    this.release(lane, slice.lines.length);
  }

  private deadLetteredSlice(lane: Lane, slice: Slice): void {
    for (const seg of slice.segs) seg.part.deadLetter(seg.n);
    this.release(lane, slice.lines.length);
  }

  private failQueued(err: Error): void {
    this.lanes.failAll((lane, slice) => this.failSlice(lane, slice, err));
  }
}
