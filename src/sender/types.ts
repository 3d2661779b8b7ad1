// The gateway sender contract: line protocol for a namespace in, acceptance by every backend the
// points belong to out. The relay finishes an NSQ message only after write() resolves.
import type { LineBlock } from './line-block.ts';

export interface WriteOutcome {
  /** Points accepted by their backend(s). */
  written: number;
  /** Points a backend refused as invalid; they went to the dead-letter file. */
  deadLettered: number;
}

export interface GatewaySender {
  start(): Promise<void>;
  /** Flushes what is queued (bounded by a deadline), then closes; idempotent. */
  stop(): Promise<void>;
  /**
   * Resolves once every point was accepted by every backend it belongs to (or dead-lettered as
   * invalid). Rejects when a backend failed in a retryable way, so the caller requeues. The
   * relay gives a LineBlock (its message's bytes, not copied), other callers strings.
   */
  write(namespace: string, lines: readonly string[] | LineBlock): Promise<WriteOutcome>;
  status(): Record<string, unknown>;
  /**
   * Optional: told false while the sender cannot deliver (a backend is marked down) and true
   * when it can again, so a consumer pauses instead of cycling its backlog through retries.
   */
  onAvailabilityChange?(listener: (available: boolean) => void): void;
}

export type RetryableReason = 'down' | 'failed' | 'queue-full' | 'stopped' | 'no-database' | 'retry-after';

/**
 * write() could not deliver now, nothing is lost: try the same lines again later, after at
 * least `retryAfterMs` when set (a backend's Retry-After or the time until its next probe).
 */
export class RetryableWriteError extends Error {
  constructor(
    message: string,
    readonly reason: RetryableReason,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetryableWriteError';
  }
}
