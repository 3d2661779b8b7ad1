// Batching for one backend: each namespace (database) has its own lane, with its batches and the
// follow-up requests that find which of its lines the backend refused. A lane's batch is sealed
// when it holds batchSize points or flushIntervalMs after its first point; lanes with work ready
// take turns (round-robin), so one namespace's backlog never queues another's.
import type { Clock, TimerHandle } from '../clock.ts';
import type { LineBlock } from './line-block.ts';
import { emptySlice, type Slice, type WritePart } from './write-part.ts';

/** One namespace (database) on this backend: its own batches and its own turn at the slots. */
export interface Lane {
  namespace: string;
  filling: { slice: Slice; timer: TimerHandle | undefined } | undefined;
  /** Batches ready to send, in order. */
  ready: Slice[];
  /** Follow-up requests that narrow down which lines a backend refused. */
  narrowing: Slice[];
  /** Points of this lane queued or in flight: in its batches, its follow-ups or a request. */
  queued: number;
  /** In `turns` (it has work ready). */
  listed: boolean;
}

/** One request to send: a lane's batch, or a follow-up request narrowing down refused lines. */
export interface Work {
  lane: Lane;
  slice: Slice;
  narrowing: boolean;
}

/** How the queue settles a lane's lines; each also frees their room in the queue. */
export interface Settle {
  accept(lane: Lane, slice: Slice, bytes?: number): void;
  fail(lane: Lane, slice: Slice, err: Error): void;
  deadLettered(lane: Lane, slice: Slice): void;
}

export interface LanesOptions {
  batchSize: number;
  flushIntervalMs: number;
  clock: Clock;
  /** A partial batch waited flushIntervalMs and was sealed: it is ready to send. */
  onBatchDue(): void;
}

export class Lanes {
  private readonly opts: LanesOptions;
  private readonly clock: Clock;
  private readonly lanes = new Map<string, Lane>();
  /** Lanes with work ready, served round-robin: one namespace's backlog never queues another's. */
  private readonly turns: Lane[] = [];
  /** Lanes with a partial batch, oldest first (an idle backend sends the oldest at once). */
  private readonly fillingLanes = new Set<Lane>();

  constructor(opts: LanesOptions) {
    this.opts = opts;
    this.clock = opts.clock;
  }

  /** Namespaces with data queued or in flight. */
  get size(): number {
    return this.lanes.size;
  }

  /** Batches and follow-up requests waiting, partial batches included. */
  batches(): number {
    let queuedBatches = 0;
    for (const lane of this.lanes.values()) queuedBatches += lane.ready.length + lane.narrowing.length + (lane.filling ? 1 : 0);
    return queuedBatches;
  }

  /** Adds a write's lines to its namespace's batches, sealing each batch that fills up. */
  add(namespace: string, lines: LineBlock, part: WritePart): void {
    const n = lines.length;
    const lane = this.laneFor(namespace);
    lane.queued += n;
    const { batchSize } = this.opts;
    let i = 0;
    while (i < n) {
      if (!lane.filling) {
        const filling: NonNullable<Lane['filling']> = { slice: emptySlice(), timer: undefined };
        filling.timer = this.clock.setTimeout(() => this.batchDue(lane, filling), this.opts.flushIntervalMs);
        lane.filling = filling;
        this.fillingLanes.add(lane);
      }
      const batch = lane.filling.slice;
      const take = Math.min(batchSize - batch.lines.length, n - i);
      batch.lines.add(lines, i, i + take);
      batch.segs.push({ part, n: take });
      i += take;
      if (batch.lines.length >= batchSize) this.sealFilling(lane);
    }
  }

  /** Seals the oldest partial batch; false when there is none. */
  sealOldest(): boolean {
    const oldest = this.fillingLanes.values().next();
    if (oldest.done) return false;
    this.sealFilling(oldest.value);
    return true;
  }

  /**
   * The next lane's next request, round-robin; a narrowing request only when `narrowingSlotFree`
   * (otherwise the lane's next batch).
   */
  next(narrowingSlotFree: boolean): Work | undefined {
    for (let tries = this.turns.length; tries > 0; tries--) {
      const lane = this.turns.shift() as Lane;
      lane.listed = false;
      let work: Work | undefined;
      if (lane.narrowing.length > 0 && narrowingSlotFree) {
        work = { lane, slice: lane.narrowing.shift() as Slice, narrowing: true };
      } else if (lane.ready.length > 0) {
        work = { lane, slice: lane.ready.shift() as Slice, narrowing: false };
      }
      if (lane.ready.length > 0 || lane.narrowing.length > 0) this.list(lane);
      if (work) return work;
    }
    return undefined;
  }

  /** Follow-up requests for a lane, sent before its next batches. */
  followUp(lane: Lane, slices: readonly Slice[]): void {
    lane.narrowing.unshift(...slices);
    this.list(lane);
  }

  /** Takes every slice that is not in flight out of the lanes and hands it to `fail`. */
  failAll(fail: (lane: Lane, slice: Slice) => void): void {
    for (const lane of [...this.lanes.values()]) {
      const filling = this.takeFilling(lane);
      if (filling) fail(lane, filling);
      for (const slice of lane.ready.splice(0)) fail(lane, slice);
      for (const slice of lane.narrowing.splice(0)) fail(lane, slice);
      this.dropIfIdle(lane);
    }
  }

  /** Forgets a lane with nothing queued, so lanes stay as many as namespaces with data in flight. */
  dropIfIdle(lane: Lane): void {
    // Every queued point is in a (never empty) batch or follow-up of the lane, or in a request
    // still settling it: none queued means nothing filling, ready, narrowing, or left to settle.
    if (lane.queued === 0 && this.lanes.get(lane.namespace) === lane) this.lanes.delete(lane.namespace);
  }

  private laneFor(namespace: string): Lane {
    let lane = this.lanes.get(namespace);
    if (!lane) {
      lane = { namespace, filling: undefined, ready: [], narrowing: [], queued: 0, listed: false };
      this.lanes.set(namespace, lane);
    }
    return lane;
  }

  private list(lane: Lane): void {
    if (lane.listed) return;
    lane.listed = true;
    this.turns.push(lane);
  }

  private sealFilling(lane: Lane): void {
    const slice = this.takeFilling(lane);
    if (!slice) return;
    lane.ready.push(slice);
    this.list(lane);
  }

  /** Takes a lane's partial batch out of filling, its timer cleared. */
  private takeFilling(lane: Lane): Slice | undefined {
    const filling = lane.filling;
    if (!filling) return undefined;
    if (filling.timer) this.clock.clearTimeout(filling.timer);
    lane.filling = undefined;
    this.fillingLanes.delete(lane);
    return filling.slice;
  }

  private batchDue(lane: Lane, filling: NonNullable<Lane['filling']>): void {
    filling.timer = undefined;
    if (lane.filling !== filling) return;
    this.sealFilling(lane);
    this.opts.onBatchDue();
  }
}
