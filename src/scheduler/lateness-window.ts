// The last N lateness samples, for the p50/p99 that status() shows. A fixed ring, so memory is
// bounded whatever the run rate; the prom-client histogram carries the long-run distribution.

export interface LatenessSummary {
  samples: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export class LatenessWindow {
  private readonly ring: Float64Array;
  private next = 0;
  private count = 0;

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`capacity must be an integer >= 1, found ${capacity}`);
    this.ring = new Float64Array(capacity);
  }

  add(ms: number): void {
    this.ring[this.next] = ms;
    this.next = (this.next + 1) % this.ring.length;
    if (this.count < this.ring.length) this.count++;
  }

  summary(): LatenessSummary {
    if (this.count === 0) return { samples: 0, p50Ms: null, p99Ms: null, maxMs: null };
    const sorted = this.ring.slice(0, this.count).sort();
    const at = (p: number) => sorted[Math.min(this.count - 1, Math.max(0, Math.ceil(p * this.count) - 1))] as number;
    return { samples: this.count, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted[this.count - 1] as number };
  }
}
