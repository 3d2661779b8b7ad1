// Time as a dependency, so schedulers, spools and auto-enable can be tested on a fake clock.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  unref?(): unknown;
}

/** The longest single timer wait: longer waits are cut into these (a timer cannot wait a day reliably). */
export const MAX_TIMER_MS = 3_600_000;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
