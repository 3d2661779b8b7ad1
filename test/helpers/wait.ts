// Polling with a deadline, for state that offers no event to await (a count in another process,
// a file another component writes). Where an event exists, await it instead.
import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  /** How long before giving up; 20 s unless given. */
  timeoutMs?: number;
  /** Pause between checks; 50 ms unless given. */
  everyMs?: number;
}

/**
 * Calls `check` until it answers true or a value (anything but false, undefined or null) and
 * resolves with that answer; past the deadline it fails with `what` and the last answer.
 */
export async function waitUntil<T>(what: string, check: () => T | false | undefined | null | Promise<T | false | undefined | null>, opts: WaitOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await check();
    if (answer !== false && answer !== undefined && answer !== null) return answer;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last check: ${String(answer)})`);
    await delay(opts.everyMs ?? 50);
  }
}
