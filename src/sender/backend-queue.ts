// One backend's side of the gateway sender: batches per namespace, dispatch within a bounded
// number of concurrent writes, retry with backoff, dead-lettering of invalid lines, and the
// backend's health (marked down after consecutive failures, probed back with /ping).
//
// Batching: a batch goes out when it holds batchSize points, flushIntervalMs after its first
// point, or at once when the backend has nothing in flight (so an idle backend sees data
// immediately and a busy one sees full batches). A write's lines are settled through its
// WritePart only when the backend accepted them or they were dead-lettered.
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';
import type { WriteAnswer } from './backend-client.ts';
import type { DeadLetterRecord } from './dead-letter.ts';
import type { BackendCounters } from './sender-metrics.ts';
import { RetryableWriteError } from './types.ts';
import { matchRejectedLines, readWriteError } from './write-errors.ts';

/** What the queue needs of a backend client (BackendClient; a fake in tests). */
export interface BackendWriter {
  readonly name: string;
  write(namespace: string, body: string): Promise<WriteAnswer>;
  ping(): Promise<boolean>;
  createDatabase(namespace: string): Promise<string | undefined>;
  close(): void;
}

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

interface Batch {
  namespace: string;
  lines: string[];
  segs: Segment[];
  timer: TimerHandle | undefined;
}

/** Lines with the part each belongs to, for settling line by line. */
interface Slice {
  lines: string[];
  owners: WritePart[];
}

export type BackendState = 'up' | 'down';

const MAX_WARNED_NAMESPACES = 1000;
const MISSING_DB_WARN_EVERY_MS = 60_000;

export class BackendQueue {
  readonly name: string;
  private readonly opts: BackendQueueOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly filling = new Map<string, Batch>();
  private readonly ready: Batch[] = [];
  private inFlight = 0;
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
    const { batchSize } = this.opts;
    let i = 0;
    while (i < n) {
      let batch = this.filling.get(namespace);
      if (!batch) {
        batch = { namespace, lines: [], segs: [], timer: undefined };
        const created = batch;
        batch.timer = this.clock.setTimeout(() => this.batchDue(created), this.opts.flushIntervalMs);
        this.filling.set(namespace, batch);
      }
      const take = Math.min(batchSize - batch.lines.length, n - i);
      for (let k = 0; k < take; k++) batch.lines.push(lines[i + k] as string);
      batch.segs.push({ part, n: take });
      i += take;
      if (batch.lines.length >= batchSize) {
        this.filling.delete(namespace);
        this.clearTimer(batch);
        this.ready.push(batch);
      }
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
  }

  status(): Record<string, unknown> {
    const now = this.clock.now();
    return {
      state: this.stateValue,
      consecutiveFailures: this.failures,
      downSince: this.downSince === undefined ? null : new Date(this.downSince).toISOString(),
      lastError: this.lastError ? { message: this.lastError.message, at: new Date(this.lastError.at).toISOString() } : null,
      lastSuccessAt: this.lastSuccessAt === undefined ? null : new Date(this.lastSuccessAt).toISOString(),
      retryAfterMs: Math.max(0, this.holdUntil - now),
      queuedPoints: this.queued,
      queuedBatches: this.ready.length + this.filling.size,
      inFlightRequests: this.inFlight,
      ...this.stats,
      counters: this.opts.counters.snapshot(),
    };
  }

  // --- dispatch -------------------------------------------------------------------------------

  private batchDue(batch: Batch): void {
    batch.timer = undefined;
    if (this.filling.get(batch.namespace) !== batch) return;
    this.filling.delete(batch.namespace);
    this.ready.push(batch);
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
      const batch = this.ready.shift() ?? (idle ? this.takeOldestFilling() : undefined);
      if (!batch) break;
      this.inFlight++;
      this.stats.batches++;
      const delivery = this.deliver(batch)
        .catch((err: unknown) => {
          // deliver() settles its batch on every path; this is a bug guard, not a code path.
          this.log.error({ err, backend: this.name }, 'batch delivery failed unexpectedly');
          this.failSegs(batch, new RetryableWriteError(`backend "${this.name}": internal error`, 'failed'));
        })
        .finally(() => {
          this.inFlight--;
          this.deliveries.delete(delivery);
          this.pump();
        });
      this.deliveries.add(delivery);
    }
  }

  private takeOldestFilling(): Batch | undefined {
    const first = this.filling.values().next();
    if (first.done) return undefined;
    const batch = first.value;
    this.filling.delete(batch.namespace);
    this.clearTimer(batch);
    return batch;
  }

  // --- one batch --------------------------------------------------------------------------------

  private async deliver(batch: Batch): Promise<void> {
    const { namespace } = batch;
    const n = batch.lines.length;
    const body = batch.lines.join('\n');
    const bytes = Buffer.byteLength(body);
    let triedCreate = false;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) return this.failSegs(batch, this.stoppedError());
      if (this.stateValue === 'down') return this.failSegs(batch, this.downError());
      this.stats.requests++;
      const answer = await this.opts.client.write(namespace, body);
      switch (answer.kind) {
        case 'ok':
          this.opts.counters.request('ok');
          this.succeeded();
          this.opts.counters.sent(n, bytes);
          for (const seg of batch.segs) seg.part.accept(seg.n);
          this.release(n);
          return;
        case 'invalid':
          this.opts.counters.request('invalid');
          this.succeeded();
          return this.resolveInvalid(namespace, expand(batch), answer);
        case 'no-database':
          this.opts.counters.request('no_database');
          if (answer.missing === 'database' && this.opts.createDatabase && !triedCreate) {
            triedCreate = true;
            if (await this.createDatabase(namespace)) continue;
          }
          this.warnMissingDatabase(namespace, answer.message);
          this.opts.counters.failed(n);
          return this.failSegs(batch, new RetryableWriteError(`backend "${this.name}": ${answer.message}`, 'no-database'));
        case 'aborted':
          return this.failSegs(batch, this.stoppedError());
        case 'retryable': {
          this.opts.counters.request('retryable');
          this.opts.counters.failed(n);
          this.failure(answer.message);
          if (this.isDown()) return this.failSegs(batch, this.downError());
          const after = answer.retryAfterMs;
          if (after !== undefined) this.holdUntil = Math.max(this.holdUntil, this.clock.now() + after);
          if (after !== undefined && after > this.opts.retryMaxMs) {
            // Longer than we hold writes: hand it back so NSQ keeps the data meanwhile.
            return this.failSegs(batch, new RetryableWriteError(`backend "${this.name}": ${answer.message}`, 'retry-after', after));
          }
          const wait = Math.max(after ?? 0, this.backoffMs(attempt));
          this.log.debug({ backend: this.name, namespace, attempt, waitMs: wait, error: answer.message }, 'write failed; retrying');
          if (!(await this.sleep(wait))) {
            return this.failSegs(batch, this.closed ? this.stoppedError() : this.downError());
          }
        }
      }
    }
  }

  /**
   * A 400-class answer: dead-letter the lines it names, accept the rest when the answer says
   * they were written, and otherwise find the refused lines by resending halves (a rewrite of
   * an accepted point is harmless: same series and timestamp).
   */
  private async resolveInvalid(namespace: string, slice: Slice, first: { status: number; message: string }): Promise<void> {
    const work: Array<{ slice: Slice; answer?: WriteAnswer }> = [{ slice, answer: { kind: 'invalid', ...first } }];
    while (work.length > 0) {
      const item = work.pop() as { slice: Slice; answer?: WriteAnswer };
      const { lines, owners } = item.slice;
      let answer = item.answer;
      if (!answer) {
        this.stats.requests++;
        this.stats.bisectRequests++;
        answer = await this.opts.client.write(namespace, lines.join('\n'));
      }
      if (answer.kind === 'ok') {
        this.succeeded();
        this.acceptLines(item.slice);
        continue;
      }
      if (answer.kind !== 'invalid') {
        // The backend stopped answering usefully mid-way: what is left is not known to be written.
        const err =
          answer.kind === 'aborted'
            ? this.stoppedError()
            : new RetryableWriteError(`backend "${this.name}": ${answer.message}`, answer.kind === 'no-database' ? 'no-database' : 'failed');
        if (answer.kind === 'retryable') this.failure(answer.message);
        const rest = [item.slice, ...work.map((w) => w.slice)];
        for (const s of rest) {
          this.opts.counters.failed(s.lines.length);
          this.failLines(s, err);
        }
        return;
      }
      const report = readWriteError(answer.message);
      const named = matchRejectedLines(lines, report);
      if (named.size === 0 && lines.length === 1) {
        await this.deadLetterLines(namespace, item.slice, [`HTTP ${answer.status}: ${answer.message}`]);
        continue;
      }
      const bad: Slice = { lines: [], owners: [] };
      const reasons: string[] = [];
      const rest: Slice = { lines: [], owners: [] };
      lines.forEach((line, i) => {
        const why = named.get(i);
        const target = why === undefined ? rest : bad;
        target.lines.push(line);
        target.owners.push(owners[i] as WritePart);
        if (why !== undefined) reasons.push(`HTTP ${answer.status}: unable to parse: ${why}`);
      });
      if (bad.lines.length > 0) await this.deadLetterLines(namespace, bad, reasons);
      if (rest.lines.length === 0) continue;
      if (report.partial && report.onlyParseErrors && named.size === report.unparsable.length) {
        this.acceptLines(rest);
      } else if (named.size > 0) {
        work.push({ slice: rest });
      } else {
        const mid = Math.ceil(rest.lines.length / 2);
        work.push({ slice: { lines: rest.lines.slice(mid), owners: rest.owners.slice(mid) } });
        work.push({ slice: { lines: rest.lines.slice(0, mid), owners: rest.owners.slice(0, mid) } });
      }
    }
  }

  // --- settling ---------------------------------------------------------------------------------

  private release(n: number): void {
    this.queued -= n;
    this.opts.counters.queued(-n);
    if (this.queued === 0 && this.idleWaiters.size > 0) {
      for (const wake of [...this.idleWaiters]) wake();
      this.idleWaiters.clear();
    }
    this.opts.onReleased?.();
  }

  private failSegs(batch: Batch, err: Error): void {
    this.clearTimer(batch);
    let n = 0;
    for (const seg of batch.segs) {
      seg.part.fail(err);
      n += seg.n;
    }
    this.release(n);
  }

  private acceptLines(slice: Slice): void {
    const n = slice.lines.length;
    this.opts.counters.sent(n, Buffer.byteLength(slice.lines.join('\n')));
    for (const [part, count] of countByOwner(slice.owners)) part.accept(count);
    this.release(n);
  }

  private failLines(slice: Slice, err: Error): void {
    for (const part of new Set(slice.owners)) part.fail(err);
    this.release(slice.lines.length);
  }

  private async deadLetterLines(namespace: string, slice: Slice, reasons: readonly string[]): Promise<void> {
    const records = slice.lines.map((line, i) => ({
      namespace,
      backend: this.name,
      reason: reasons[i] ?? reasons[0] ?? 'refused',
      line,
    }));
    try {
      await this.opts.deadLetter.append(records);
    } catch {
      // Not kept anywhere: refuse to acknowledge, so the data comes back (the log says why).
      this.failLines(slice, new RetryableWriteError(`backend "${this.name}": the dead-letter file cannot be written`, 'failed'));
      return;
    }
    this.opts.counters.dropped(slice.lines.length);
    for (const [part, count] of countByOwner(slice.owners)) part.deadLetter(count);
    this.release(slice.lines.length);
    this.log.warn(
      { backend: this.name, namespace, lines: slice.lines.length, reason: records[0]?.reason.slice(0, 300) },
      'backend refused invalid lines; dead-lettered',
    );
  }

  private failQueued(err: Error): void {
    for (const batch of this.filling.values()) this.failSegs(batch, err);
    this.filling.clear();
    for (const batch of this.ready.splice(0)) this.failSegs(batch, err);
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
    const error = await this.opts.client.createDatabase(namespace);
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

  private clearTimer(batch: Batch): void {
    if (batch.timer) this.clock.clearTimeout(batch.timer);
    batch.timer = undefined;
  }
}

function expand(batch: Batch): Slice {
  const owners: WritePart[] = [];
  for (const seg of batch.segs) for (let i = 0; i < seg.n; i++) owners.push(seg.part);
  return { lines: batch.lines, owners };
}

function countByOwner(owners: readonly WritePart[]): Map<WritePart, number> {
  const counts = new Map<WritePart, number>();
  for (const p of owners) counts.set(p, (counts.get(p) ?? 0) + 1);
  return counts;
}
