// Long parses done a slice at a time: the work runs for about `sliceMs`, then the event loop gets
// a turn (timers, /health, other requests) before it goes on. A body of millions of lines then
// delays other requests by milliseconds, not by the whole parse.
import { setImmediate as yieldToLoop } from 'node:timers/promises';

/** One slice of work: handles up to `maxItems` more items; true once everything is done. */
export type SliceStep = (maxItems: number) => boolean;

export interface SliceOptions {
  /** Milliseconds of work between two turns of the event loop. */
  sliceMs: number;
  /** Items handled between two looks at the clock. */
  itemsPerCheck?: number;
}

export async function runInSlices(step: SliceStep, opts: SliceOptions): Promise<void> {
  const every = opts.itemsPerCheck ?? 1024;
  let sliceStart = performance.now();
  while (!step(every)) {
    if (performance.now() - sliceStart >= opts.sliceMs) {
      await yieldToLoop();
      sliceStart = performance.now();
    }
  }
}

/** Runs `each(from, to)` over the index range [0, length) in slices, as runInSlices does. */
export async function runRangeInSlices(length: number, each: (from: number, to: number) => void, opts: SliceOptions): Promise<void> {
  let from = 0;
  await runInSlices((n) => {
    const to = Math.min(length, from + n);
    each(from, to);
    from = to;
    return from >= length;
  }, opts);
}
