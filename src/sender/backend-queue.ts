// One backend's side of the gateway sender: batches per namespace, dispatch within a bounded
// number of concurrent writes, retry with backoff, dead-lettering of refused lines, and the
// backend's health (marked down after consecutive failures, probed back with /ping).
//
// Each namespace (database) has its own lane: its batches, and the follow-up requests that find
// which of its lines the backend refused. Lanes take turns at the write slots (round-robin), and
// follow-up requests hold at most half of the slots, so a namespace whose points are refused
// never holds another's writes back. Batching: a batch goes out when it holds batchSize points,
// flushIntervalMs after its first point, or at once when the backend has nothing in flight (so
// an idle backend sees data immediately and a busy one sees full batches). A write's lines are
// settled through its WritePart only when the backend accepted them or they were dead-lettered.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';
import { nothingNamed, type BackendWriter } from './backend-writer.ts';
import type { DeadLetterRecord } from './dead-letter.ts';
import type { BackendCounters } from './sender-metrics.ts';
import { RetryableWriteError } from './types.ts';
import { lineShape } from './line-protocol.ts';
import { RefusalLog } from './refusal-log.ts';
import { matchRejectedLines, refusalKind, type RefusalKind, type WriteErrorReport } from './write-errors.ts';

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

/** One write's share for one backend; `done` settles when all its lines are settled. */
export class WritePart {
  written = 0;
  deadLettered = 0;
  readonly done: Promise<void>;
  private pending: number;
  private failed = false;
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;

  constructor(count: number) {
    this.pending = count;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // The owner awaits `done`; this keeps a part nobody awaits from crashing the process.
    this.done.catch(() => undefined);
    if (count === 0) this.resolveDone();
  }

  accept(n: number): void {
    this.written += n;
    this.settle(n);
  }

  deadLetter(n: number): void {
    this.deadLettered += n;
    this.settle(n);
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.rejectDone(err);
  }

  private settle(n: number): void {
    this.pending -= n;
    if (this.pending <= 0 && !this.failed) this.resolveDone();
  }
}

interface Segment {
  part: WritePart;
  n: number;
}

/** Lines with the parts they belong to, run-length: consecutive lines of one write share a segment. */
interface Slice {
  lines: string[];
  segs: Segment[];
}

/** One namespace (database) on this backend: its own batches and its own turn at the slots. */
interface Lane {
  namespace: string;
  filling: { slice: Slice; timer: TimerHandle | undefined } | undefined;
  /** Batches ready to send, in order. */
  ready: Slice[];
  /** Follow-up requests that narrow down which lines a backend refused. */
  narrowing: Slice[];
  inFlight: number;
  queued: number;
  /** In `turns` (it has work ready). */
  listed: boolean;
}

interface Work {
  lane: Lane;
  slice: Slice;
  narrowing: boolean;
}

export type BackendState = 'up' | 'down';

const MAX_WARNED_NAMESPACES = 1000;
const MISSING_DB_WARN_EVERY_MS = 60_000;
const REFUSAL_WARN_EVERY_MS = 60_000;
/** Dead-lettered lines remembered (by hash) so a redelivered write does not count them again. */
const RECENTLY_DROPPED_MAX = 100_000;

export class BackendQueue {
  readonly name: string;
  private readonly opts: BackendQueueOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly lanes = new Map<string, Lane>();
  /** Lanes with work ready, served round-robin: one namespace's backlog never queues another's. */
  private readonly turns: Lane[] = [];
  /** Lanes with a partial batch, oldest first (an idle backend sends the oldest at once). */
  private readonly fillingLanes = new Set<Lane>();
  private readonly refusals: RefusalLog;
  private readonly recentlyDropped = new Set<string>();
  private inFlight = 0;
  private narrowingInFlight = 0;
  private readonly narrowingSlots: number;
  private queued = 0;
  private stateValue: BackendState = 'up';
  private failures = 0;
  private holdUntil = 0;
  private holdTimer: TimerHandle | undefined;
  private probeTimer: TimerHandle | undefined;
  private pumpScheduled = false;
  private draining = false;
  private closed = false;
  private readonly sleepers = new Set<(completed: boolean) => void>();
  private readonly idleWaiters = new Set<() => void>();
  private readonly deliveries = new Set<Promise<void>>();
  private readonly missingDbWarnedAt = new Map<string, number>();
  private lastError: { message: string; at: number } | undefined;
  private lastSuccessAt: number | undefined;
  private downSince: number | undefined;
  private readonly stats = { requests: 0, batches: 0, bisectRequests: 0, databasesCreated: 0 };

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
    this.log = opts.logger;
    // Narrowing down refused lines never takes more than half the slots: the other namespaces'
    // batches always find one.
    this.narrowingSlots = Math.max(1, Math.floor(opts.maxConcurrentWrites / 2));
    this.refusals = new RefusalLog({ backend: this.name, intervalMs: REFUSAL_WARN_EVERY_MS, clock: this.clock, logger: this.log });
    opts.counters.setUp(true);
  }

  get state(): BackendState {
    return this.stateValue;
  }

  isDown(): boolean {
    return this.stateValue === 'down';
  }

  queuedPoints(): number {
    return this.queued;
  }

  /** Why a write for this backend must be refused now, or undefined when it may be queued. */
  refusal(): RetryableWriteError | undefined {
    if (this.closed) return new RetryableWriteError(`backend "${this.name}": sender stopped`, 'stopped');
    if (this.stateValue === 'down') return this.downError();
    const hold = this.holdUntil - this.clock.now();
    if (hold > this.opts.retryMaxMs) {
      return new RetryableWriteError(`backend "${this.name}" asked to retry after ${hold} ms`, 'retry-after', hold);
    }
    return undefined;
  }

  /** Queues a write's lines for this backend; `part` settles with them. */
  enqueue(namespace: string, lines: readonly string[], part: WritePart): void {
    const n = lines.length;
    this.opts.counters.received(n);
    this.opts.counters.queued(n);
    this.queued += n;
    const lane = this.laneFor(namespace);
    lane.queued += n;
    const { batchSize } = this.opts;
    let i = 0;
    while (i < n) {
      if (!lane.filling) {
        const filling: NonNullable<Lane['filling']> = { slice: { lines: [], segs: [] }, timer: undefined };
        filling.timer = this.clock.setTimeout(() => this.batchDue(lane, filling), this.opts.flushIntervalMs);
        lane.filling = filling;
        this.fillingLanes.add(lane);
      }
      const batch = lane.filling.slice;
      const take = Math.min(batchSize - batch.lines.length, n - i);
      for (let k = 0; k < take; k++) batch.lines.push(lines[i + k] as string);
      batch.segs.push({ part, n: take });
      i += take;
      if (batch.lines.length >= batchSize) this.sealFilling(lane);
    }
    this.schedulePump();
  }

  /**
   * Sends everything queued (not waiting for idle or full batches) until the queue is empty or
   * the deadline passes, then aborts what is left; what was not accepted fails as retryable.
   */
  async stop(deadlineMs: number): Promise<void> {
    if (this.closed) return;
    this.draining = true;
    this.pump();
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
    if (this.probeTimer) this.clock.clearTimeout(this.probeTimer);
    if (this.holdTimer) this.clock.clearTimeout(this.holdTimer);
    this.failQueued(this.stoppedError());
    this.wakeSleepers(false);
    // Aborts the requests in flight; their deliveries then fail their batches as "stopped".
    this.opts.client.close();
    await Promise.allSettled([...this.deliveries]);
    this.refusals.flush();
  }

  status(): Record<string, unknown> {
    const now = this.clock.now();
    let queuedBatches = 0;
    for (const lane of this.lanes.values()) queuedBatches += lane.ready.length + lane.narrowing.length + (lane.filling ? 1 : 0);
    return {
      state: this.stateValue,
      consecutiveFailures: this.failures,
      downSince: this.downSince === undefined ? null : new Date(this.downSince).toISOString(),
      lastError: this.lastError ? { message: this.lastError.message, at: new Date(this.lastError.at).toISOString() } : null,
      lastSuccessAt: this.lastSuccessAt === undefined ? null : new Date(this.lastSuccessAt).toISOString(),
      retryAfterMs: Math.max(0, this.holdUntil - now),
      queuedPoints: this.queued,
      queuedBatches,
      queuedNamespaces: this.lanes.size,
      inFlightRequests: this.inFlight,
      narrowingRequestsInFlight: this.narrowingInFlight,
      ...this.stats,
      counters: this.opts.counters.snapshot(),
    };
  }

  // --- dispatch -------------------------------------------------------------------------------

  private laneFor(namespace: string): Lane {
    let lane = this.lanes.get(namespace);
    if (!lane) {
      lane = { namespace, filling: undefined, ready: [], narrowing: [], inFlight: 0, queued: 0, listed: false };
      this.lanes.set(namespace, lane);
    }
    return lane;
  }

  /** Forgets a lane with nothing queued, so lanes stay as many as namespaces with data in flight. */
  private dropIfIdle(lane: Lane): void {
    if (lane.queued === 0 && lane.inFlight === 0 && !lane.filling && lane.ready.length === 0 && lane.narrowing.length === 0) {
      if (this.lanes.get(lane.namespace) === lane) this.lanes.delete(lane.namespace);
    }
  }

  private list(lane: Lane): void {
    if (lane.listed) return;
    lane.listed = true;
    this.turns.push(lane);
  }

  private sealFilling(lane: Lane): void {
    const filling = lane.filling;
    if (!filling) return;
    if (filling.timer) this.clock.clearTimeout(filling.timer);
    lane.filling = undefined;
    this.fillingLanes.delete(lane);
    lane.ready.push(filling.slice);
    this.list(lane);
  }

  private batchDue(lane: Lane, filling: NonNullable<Lane['filling']>): void {
    filling.timer = undefined;
    if (lane.filling !== filling) return;
    this.sealFilling(lane);
    this.pump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // After the current I/O callbacks: writes arriving together (one socket read of NSQ
    // messages) share a batch instead of the first going out alone.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed || this.stateValue === 'down') return;
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
    const idle = this.inFlight === 0 || this.draining;
    while (this.inFlight < this.opts.maxConcurrentWrites) {
      let work = this.nextWork();
      if (!work && idle) {
        const oldest = this.fillingLanes.values().next();
        if (!oldest.done) {
          this.sealFilling(oldest.value);
          work = this.nextWork();
        }
      }
      if (!work) break;
      this.dispatch(work);
    }
  }

  /** The next lane's next request, round-robin; a narrowing request only while a slot is free for it. */
  private nextWork(): Work | undefined {
    for (let tries = this.turns.length; tries > 0; tries--) {
      const lane = this.turns.shift() as Lane;
      lane.listed = false;
      let work: Work | undefined;
      if (lane.narrowing.length > 0 && this.narrowingInFlight < this.narrowingSlots) {
        work = { lane, slice: lane.narrowing.shift() as Slice, narrowing: true };
      } else if (lane.ready.length > 0) {
        work = { lane, slice: lane.ready.shift() as Slice, narrowing: false };
      }
      if (lane.ready.length > 0 || lane.narrowing.length > 0) this.list(lane);
      if (work) return work;
    }
    return undefined;
  }

  private dispatch(work: Work): void {
    const { lane } = work;
    this.inFlight++;
    lane.inFlight++;
    if (work.narrowing) {
      this.narrowingInFlight++;
      this.stats.bisectRequests++;
    } else {
      this.stats.batches++;
    }
    const delivery = this.deliver(work)
      .catch((err: unknown) => {
        // deliver() settles its lines on every path; this is a bug guard, not a code path.
        this.log.error({ err, backend: this.name }, 'batch delivery failed unexpectedly');
        this.failSlice(lane, work.slice, new RetryableWriteError(`backend "${this.name}": internal error`, 'failed'));
      })
      .finally(() => {
        this.inFlight--;
        lane.inFlight--;
        if (work.narrowing) this.narrowingInFlight--;
        this.deliveries.delete(delivery);
        this.dropIfIdle(lane);
        this.pump();
      });
    this.deliveries.add(delivery);
  }

  // --- one request ------------------------------------------------------------------------------

  private async deliver(work: Work): Promise<void> {
    const { lane, slice } = work;
    const { namespace } = lane;
    const n = slice.lines.length;
    const body = slice.lines.join('\n');
    let triedCreate = false;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) return this.failSlice(lane, slice, this.stoppedError());
      if (this.stateValue === 'down') return this.failSlice(lane, slice, this.downError());
      this.stats.requests++;
      const answer = await this.opts.client.write(namespace, body);
      switch (answer.kind) {
        case 'ok':
          this.opts.counters.request('ok');
          this.succeeded();
          this.acceptSlice(lane, slice, Buffer.byteLength(body));
          return;
        case 'invalid':
          this.opts.counters.request('invalid');
          this.succeeded();
          return this.narrow(lane, slice, answer);
        case 'no-database':
          this.opts.counters.request('no_database');
          if (answer.missing === 'database' && this.opts.createDatabase && this.opts.client.createDatabase && !triedCreate) {
            triedCreate = true;
            if (await this.createDatabase(namespace)) continue;
          }
          this.warnMissingDatabase(namespace, answer.message);
          this.opts.counters.failed(n);
          return this.failSlice(lane, slice, new RetryableWriteError(`backend "${this.name}": ${answer.message}`, 'no-database'));
        case 'aborted':
          return this.failSlice(lane, slice, this.stoppedError());
        case 'retryable': {
          this.opts.counters.request('retryable');
          this.opts.counters.failed(n);
          this.failure(answer.message);
          if (this.isDown()) return this.failSlice(lane, slice, this.downError());
          const after = answer.retryAfterMs;
          if (after !== undefined) this.holdUntil = Math.max(this.holdUntil, this.clock.now() + after);
          if (after !== undefined && after > this.opts.retryMaxMs) {
            // Longer than we hold writes: hand it back so NSQ keeps the data meanwhile.
            return this.failSlice(lane, slice, new RetryableWriteError(`backend "${this.name}": ${answer.message}`, 'retry-after', after));
          }
          const wait = Math.max(after ?? 0, this.backoffMs(attempt));
          this.log.debug({ backend: this.name, namespace, attempt, waitMs: wait, error: answer.message }, 'write failed; retrying');
          if (!(await this.sleep(wait))) {
            return this.failSlice(lane, slice, this.closed ? this.stoppedError() : this.downError());
          }
        }
      }
    }
  }

  /**
   * A 400-class answer. Lines named as unparsable are dead-lettered at once. Of the rest: when
   * the answer says they were all written (parse errors only) they are accepted; when it counts
   * them all as dropped they are dead-lettered. Otherwise the suspects the answer names (lines
   * carrying the conflicting measurement+field type, or the full tag) and the others are each
   * written again as follow-up requests in the namespace's lane, halves when the answer names
   * nothing: each refused line is dead-lettered only once a request holding nothing but refused
   * lines says so (exact counts), and a rewrite of a stored point is harmless (InfluxDB keeps one
   * point per series and timestamp). An all-refused batch costs one request, a batch with one
   * kind of refusal about three, and k scattered refused lines O(k log n).
   */
  private async narrow(lane: Lane, slice: Slice, answer: { status: number; message: string }): Promise<void> {
    const { lines } = slice;
    const report = this.opts.client.readRefusal?.(answer.message) ?? nothingNamed();
    const kind = refusalKind(report);
    const why = `HTTP ${answer.status}: ${answer.message}`;
    const named = matchRejectedLines(lines, report);
    if (named.size === 0 && lines.length === 1) return this.deadLetterSlice(lane, slice, [why], kind);
    const [bad, rest] = partition(slice, (_, i) => named.has(i));
    if (bad.lines.length > 0) {
      const reasons: string[] = [];
      lines.forEach((_, i) => {
        const r = named.get(i);
        if (r !== undefined) reasons.push(`HTTP ${answer.status}: unable to parse: ${r}`);
      });
      await this.deadLetterSlice(lane, bad, reasons, 'unparsable');
    }
    if (rest.lines.length === 0) return;
    const allNamed = named.size === report.unparsable.length;
    if (report.partial && report.onlyParseErrors && allNamed) return this.acceptSlice(lane, rest);
    if (report.partial && allNamed && report.dropped === rest.lines.length) return this.deadLetterSlice(lane, rest, [why], kind);
    let follow: Slice[];
    if (named.size > 0) {
      follow = [rest];
    } else {
      const suspect = suspectTest(report);
      const [suspects, others] = suspect ? partition(rest, suspect) : [rest, emptySlice()];
      if (suspects.lines.length > 0 && others.lines.length > 0) {
        follow = [suspects, others];
      } else {
        follow = halves(rest, report);
      }
    }
    lane.narrowing.unshift(...follow);
    this.list(lane);
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
    this.opts.counters.sent(n, bytes ?? Buffer.byteLength(slice.lines.join('\n')));
    for (const seg of slice.segs) seg.part.accept(seg.n);
    this.release(lane, n);
  }

  private failSlice(lane: Lane, slice: Slice, err: Error): void {
    for (const seg of slice.segs) seg.part.fail(err);
    this.release(lane, slice.lines.length);
  }

  /**
   * Writes refused lines to the dead-letter file and counts them, except lines dead-lettered a
   * short while ago: a write whose other lines failed comes back whole (NSQ redelivers the
   * message), and its refused lines must not be kept and counted twice — as InfluxDB stores a
   * point sent twice once.
   */
  private async deadLetterSlice(lane: Lane, slice: Slice, reasons: readonly string[], kind: RefusalKind): Promise<void> {
    const { namespace } = lane;
    const records: DeadLetterRecord[] = [];
    const keys: string[] = [];
    slice.lines.forEach((line, i) => {
      const key = createHash('sha1').update(namespace).update('\n').update(line).digest('base64');
      if (this.recentlyDropped.has(key)) return;
      keys.push(key);
      records.push({ namespace, backend: this.name, reason: reasons[i] ?? reasons[0] ?? 'refused', line });
    });
    try {
      await this.opts.deadLetter.append(records);
    } catch {
      // Not kept anywhere: refuse to acknowledge, so the data comes back (the log says why).
      this.failSlice(lane, slice, new RetryableWriteError(`backend "${this.name}": the dead-letter file cannot be written`, 'failed'));
      return;
    }
    for (const key of keys) {
      if (this.recentlyDropped.size >= RECENTLY_DROPPED_MAX) this.recentlyDropped.delete(this.recentlyDropped.values().next().value as string);
      this.recentlyDropped.add(key);
    }
    if (records.length > 0) this.opts.counters.dropped(records.length);
    for (const seg of slice.segs) seg.part.deadLetter(seg.n);
    this.release(lane, slice.lines.length);
    if (records.length > 0) this.refusals.note(namespace, kind, records.length, records[0]?.reason ?? 'refused');
  }

  private failQueued(err: Error): void {
    for (const lane of [...this.lanes.values()]) {
      if (lane.filling) {
        if (lane.filling.timer) this.clock.clearTimeout(lane.filling.timer);
        const { slice } = lane.filling;
        lane.filling = undefined;
        this.failSlice(lane, slice, err);
      }
      for (const slice of lane.ready.splice(0)) this.failSlice(lane, slice, err);
      for (const slice of lane.narrowing.splice(0)) this.failSlice(lane, slice, err);
      this.dropIfIdle(lane);
    }
    this.fillingLanes.clear();
  }

  // --- health -----------------------------------------------------------------------------------

  private succeeded(): void {
    this.failures = 0;
    this.lastSuccessAt = this.clock.now();
  }

  private failure(message: string): void {
    this.failures++;
    this.lastError = { message, at: this.clock.now() };
    if (this.stateValue === 'up' && this.failures >= this.opts.downAfterFailures) this.markDown(message);
  }

  private markDown(reason: string): void {
    this.stateValue = 'down';
    this.downSince = this.clock.now();
    this.opts.counters.setUp(false);
    this.log.warn(
      { backend: this.name, consecutiveFailures: this.failures, error: reason, probeIntervalMs: this.opts.probeIntervalMs },
      'backend marked down; writes to it fail fast until /ping answers',
    );
    this.failQueued(this.downError());
    this.wakeSleepers(false);
    this.scheduleProbe();
    this.opts.onStateChange(false);
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    this.probeTimer = this.clock.setTimeout(() => {
      this.probeTimer = undefined;
      // A probe never overlaps the next: the next is scheduled only once this one answered.
      void this.opts.client.ping().then(
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
    this.pump();
  }

  private downError(): RetryableWriteError {
    const last = this.lastError ? ` (last error: ${this.lastError.message})` : '';
    return new RetryableWriteError(`backend "${this.name}" is down${last}`, 'down', this.opts.probeIntervalMs);
  }

  private stoppedError(): RetryableWriteError {
    return new RetryableWriteError(`backend "${this.name}": sender stopped before the write was accepted`, 'stopped');
  }

  private backoffMs(attempt: number): number {
    return Math.min(this.opts.retryMaxMs, this.opts.retryMinMs * 2 ** Math.min(attempt - 1, 30));
  }

  /** Resolves true after `ms`, or false early when the backend goes down or the queue stops. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (completed: boolean): void => {
        this.sleepers.delete(wake);
        this.clock.clearTimeout(timer);
        resolve(completed);
      };
      const timer = this.clock.setTimeout(() => wake(true), ms);
      this.sleepers.add(wake);
    });
  }

  private wakeSleepers(completed: boolean): void {
    for (const wake of [...this.sleepers]) wake(completed);
  }

  private async createDatabase(namespace: string): Promise<boolean> {
    const { client } = this.opts;
    const error = client.createDatabase ? await client.createDatabase(namespace) : 'this storage kind has no databases to create';
    if (error === undefined) {
      this.stats.databasesCreated++;
      this.log.info({ backend: this.name, namespace }, 'database created');
      return true;
    }
    this.log.error({ backend: this.name, namespace, error }, 'cannot create the missing database');
    return false;
  }

  private warnMissingDatabase(namespace: string, message: string): void {
    const now = this.clock.now();
    const last = this.missingDbWarnedAt.get(namespace);
    if (last !== undefined && now - last < MISSING_DB_WARN_EVERY_MS) return;
    if (this.missingDbWarnedAt.size >= MAX_WARNED_NAMESPACES) this.missingDbWarnedAt.clear();
    this.missingDbWarnedAt.set(namespace, now);
    this.log.warn(
      { backend: this.name, namespace, error: message, createDatabase: this.opts.createDatabase },
      'database (or retention policy) missing on the backend; its points wait in NSQ until it exists',
    );
  }
}

function emptySlice(): Slice {
  return { lines: [], segs: [] };
}

/** Splits a slice in two by a test on each line, keeping each line's part. */
function partition(slice: Slice, test: (line: string, index: number) => boolean): [Slice, Slice] {
  const yes = emptySlice();
  const no = emptySlice();
  let i = 0;
  for (const seg of slice.segs) {
    for (let k = 0; k < seg.n; k++, i++) {
      const line = slice.lines[i] as string;
      const into = test(line, i) ? yes : no;
      into.lines.push(line);
      const last = into.segs[into.segs.length - 1];
      if (last && last.part === seg.part) last.n++;
      else into.segs.push({ part: seg.part, n: 1 });
    }
  }
  return [yes, no];
}

/**
 * Two halves of a slice to write again apart. Past max-values-per-tag every line with a new
 * value of the tag is refused and every line with a stored one is not: halves of the values,
 * not of the lines, so each step tells whole values apart.
 */
function halves(slice: Slice, report: WriteErrorReport): [Slice, Slice] {
  const { tagLimit } = report;
  if (tagLimit) {
    const valueOf = slice.lines.map((line) => lineShape(line)?.tags.get(tagLimit.tag));
    const values = [...new Set(valueOf)];
    if (values.length > 1) {
      const first = new Set(values.slice(0, Math.ceil(values.length / 2)));
      return partition(slice, (_, i) => first.has(valueOf[i]));
    }
  }
  const mid = Math.ceil(slice.lines.length / 2);
  return partition(slice, (_, i) => i < mid);
}

/** Lines that may be what the answer refused, going by what it names. */
function suspectTest(report: WriteErrorReport): ((line: string) => boolean) | undefined {
  const { typeConflict, tagLimit } = report;
  if (typeConflict) {
    return (line) => {
      const shape = lineShape(line);
      return shape?.measurement === typeConflict.measurement && shape.fields.get(typeConflict.field) === typeConflict.type;
    };
  }
  if (tagLimit) {
    // Any line adding a value to that tag may be refused, not only the one value named.
    return (line) => {
      const shape = lineShape(line);
      return shape?.measurement === tagLimit.measurement && shape.tags.has(tagLimit.tag);
    };
  }
  return undefined;
}
