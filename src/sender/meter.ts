// Open-Falcon's counters (from rcrowley/go-metrics' Meter): a running sum plus 1, 5 and
// 15-minute exponentially weighted moving rates per second, ticked every 5 s. Ticks are
// applied lazily from the injected clock when the meter is marked or read, so no timer runs.
import type { Clock } from '../clock.ts';

const TICK_MS = 5000;
const ALPHA_1 = 1 - Math.exp(-5 / 60 / 1);
const ALPHA_5 = 1 - Math.exp(-5 / 60 / 5);
const ALPHA_15 = 1 - Math.exp(-5 / 60 / 15);

export interface MeterSnapshot {
  /** Sum since start. */
  count: number;
  /** Events per second, EWMA over 1, 5 and 15 minutes. */
  rate1: number;
  rate5: number;
  rate15: number;
  /** count / seconds since start. */
  rateMean: number;
}

class Ewma {
  rate = 0;
  private initialised = false;
  constructor(private readonly alpha: number) {}

  tick(count: number): void {
    const instant = count / (TICK_MS / 1000);
    if (this.initialised) this.rate += this.alpha * (instant - this.rate);
    else {
      this.rate = instant;
      this.initialised = true;
    }
  }
}

export class Meter {
  private count = 0;
  private uncounted = 0;
  private readonly startedAt: number;
  private lastTick: number;
  private readonly m1 = new Ewma(ALPHA_1);
  private readonly m5 = new Ewma(ALPHA_5);
  private readonly m15 = new Ewma(ALPHA_15);

  constructor(private readonly clock: Clock) {
    this.startedAt = clock.now();
    this.lastTick = this.startedAt;
  }

  mark(n = 1): void {
    this.catchUp();
    this.count += n;
    this.uncounted += n;
  }

  snapshot(): MeterSnapshot {
    this.catchUp();
    const elapsedSec = (this.clock.now() - this.startedAt) / 1000;
    return {
      count: this.count,
      rate1: round(this.m1.rate),
      rate5: round(this.m5.rate),
      rate15: round(this.m15.rate),
      rateMean: elapsedSec > 0 ? round(this.count / elapsedSec) : 0,
    };
  }

  /** Applies the 5 s ticks due since the last one; events since then land in the first. */
  private catchUp(): void {
    const due = Math.floor((this.clock.now() - this.lastTick) / TICK_MS);
    if (due <= 0) return;
    // After a long idle spell every further tick only decays the rates; stop once they are 0.
    const ticks = Math.min(due, 2000);
    for (let i = 0; i < ticks; i++) {
      const n = i === 0 ? this.uncounted : 0;
      this.m1.tick(n);
      this.m5.tick(n);
      this.m15.tick(n);
    }
    this.uncounted = 0;
    this.lastTick += due * TICK_MS;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
