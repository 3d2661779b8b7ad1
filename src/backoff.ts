// One backoff formula for every retry loop (sender retries, relay requeues, nsqd reconnects,
// the in-process hand-off): the delay doubles from `minMs` on each retry up to `maxMs`.
// `retry` counts from 0 (the first retry waits `minMs`).

/** The exponent stops here: 2^30 × any sane minimum is past every configured maximum. */
const MAX_DOUBLINGS = 30;

export function backoffMs(retry: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, retry), MAX_DOUBLINGS));
}

/**
 * 50–100 % of `ms`, so a fleet does not retry in lockstep after a shared outage; `random`
 * is injectable for tests.
 */
export function withJitter(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.5 + random() * 0.5));
}
