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

/**
 * Resolves after `ms` on `clock`, or at once when `signal` aborts (stop() cutting a backoff short).
 * Never rejects.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const wake = (): void => {
      clock.clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      resolve();
    };
    const timer = clock.setTimeout(wake, ms);
    signal?.addEventListener('abort', wake, { once: true });
  });
}

/** Waits for `p` to settle (its outcome ignored) or for `ms` to pass, whichever comes first. */
export async function settledWithin(clock: Clock, p: Promise<unknown>, ms: number): Promise<void> {
  const timeUp = new AbortController();
  await Promise.race([p.catch(() => undefined), sleep(clock, ms, timeUp.signal)]);
  timeUp.abort();
}
