// The publisher contract: line protocol for one namespace in, acknowledgement out. Behind it is
// either the NSQ publisher (with its spool) or the embedded in-process hand-off to the sender.

export interface Publisher {
  start(): Promise<void>;
  /** Flushes what is pending (to nsqd or the spool), then closes; idempotent. */
  stop(): Promise<void>;
  /**
   * Resolves once the lines are acknowledged: nsqd answered OK, the spool committed them, or the
   * in-process sender took them. Rejects with DroppedError when a bound refused them (counted).
   */
  publish(namespace: string, lines: readonly string[]): Promise<void>;
  status(): Record<string, unknown>;
  /**
   * The longest line (UTF-8 bytes) the publisher can ever send; longer ones are dropped. The
   * pipeline refuses them per metric up front, so a caller learns which one and why.
   */
  readonly maxLineBytes?: number;
}

/** A bound refused the lines; they were counted as dropped and logged. */
export class DroppedError extends Error {
  constructor(
    message: string,
    readonly lines: number,
  ) {
    super(message);
    this.name = 'DroppedError';
  }
}
