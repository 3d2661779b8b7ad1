// A fake Clock for scheduler tests: time moves only when the test advances it. Timers run on a
// monotonic time line and now() on a wall-clock line, so a test can also jump the wall clock
// (as an NTP step would) without firing timers.
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

  constructor(startMs: number) {
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

  pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting promise chains settle. */
  async advance(ms: number): Promise<void> {
    const end = this.mono + ms;
    for (;;) {
      const next = this.timers.reduce<FakeTimer | undefined>(
        (a, t) => (t.at <= end && (!a || t.at < a.at || (t.at === a.at && t.seq < a.seq)) ? t : a),
        undefined,
      );
      if (!next) break;
      this.mono = Math.max(this.mono, next.at);
      this.timers = this.timers.filter((t) => t !== next);
      next.fn();
      await settle();
    }
    this.mono = end;
    await settle();
  }

  /** Steps the wall clock (now()) without moving timers, like an NTP step. */
  jumpWall(ms: number): void {
    this.wallOffset += ms;
  }
}

/** Lets queued promise callbacks and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
