// Clocks (src/clock.ts) for tests. FakeClock: time moves only when the test advances it; timers
// run on a monotonic time line and now() on a wall-clock line, so a test can also step the wall
// clock (as an NTP step would) without firing timers. RecordingClock: real time, but it keeps
// every timer asked for, so a test can assert which waits happened instead of timing them.
import type { Clock, TimerHandle } from '../../src/clock.ts';

interface FakeTimer extends TimerHandle {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private mono = 0;
  private wallOffset: number;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(startMs = Date.UTC(2024, 0, 1)) {
    this.wallOffset = startMs;
  }

  now(): number {
    return this.mono + this.wallOffset;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: FakeTimer = { at: this.mono + Math.max(0, ms), seq: this.seq++, fn, unref: () => t };
    this.timers.push(t);
    return t;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Timers set and neither fired nor cleared. */
  pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order (timers they set fire too when due).
   * For code that re-arms its timers from promise callbacks, use advanceSettled.
   */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (let next = this.nextDue(end); next; next = this.nextDue(end)) this.fire(next);
    this.mono = end;
  }

  /** As advance, letting promise chains settle after each timer and at the end. */
  async advanceSettled(ms: number): Promise<void> {
    const end = this.mono + ms;
    for (let next = this.nextDue(end); next; next = this.nextDue(end)) {
      this.fire(next);
      await settle();
    }
    this.mono = end;
    await settle();
  }

  /** Steps the wall clock (now()) without moving timers, like an NTP step. */
  jumpWall(ms: number): void {
    this.wallOffset += ms;
  }

  private nextDue(end: number): FakeTimer | undefined {
    return this.timers.reduce<FakeTimer | undefined>((a, t) => (t.at <= end && (!a || t.at < a.at || (t.at === a.at && t.seq < a.seq)) ? t : a), undefined);
  }

  private fire(timer: FakeTimer): void {
    this.mono = Math.max(this.mono, timer.at);
    this.timers = this.timers.filter((t) => t !== timer);
    timer.fn();
  }
}

export interface RecordedTimer {
  ms: number;
  fired: boolean;
  cleared: boolean;
}

export class RecordingClock implements Clock {
  readonly timers: RecordedTimer[] = [];
  private readonly handles = new Map<TimerHandle, RecordedTimer>();

  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: RecordedTimer = { ms, fired: false, cleared: false };
    this.timers.push(timer);
    const handle = setTimeout(() => {
      timer.fired = true;
      this.handles.delete(handle);
      fn();
    }, ms);
    this.handles.set(handle, timer);
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = this.handles.get(handle);
    if (timer) timer.cleared = true;
    this.handles.delete(handle);
    clearTimeout(handle as NodeJS.Timeout);
  }

  /** How many timers set for `minMs` to `maxMs` (inclusive) have fired so far. */
  fired(minMs: number, maxMs = minMs): number {
    return this.timers.filter((t) => t.fired && t.ms >= minMs && t.ms <= maxMs).length;
  }
}

/** Lets queued promise callbacks and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
