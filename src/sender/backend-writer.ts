// What the gateway sender's queue needs of a storage kind's client: write a body of line
// protocol for a namespace and say, classified, how it went; answer a health probe; close.
// Abilities only some kinds have (InfluxDB's: creating a missing database, naming the lines a
// refusal was about) are optional members the queue checks for before it relies on them.
import type { WriteErrorReport } from './write-errors.ts';

export type WriteAnswer =
  /** 2xx: every line was accepted. */
  | { kind: 'ok' }
  /** 400/413/422: the body holds lines the backend refuses; the message says which, maybe. */
  | { kind: 'invalid'; status: number; message: string }
  /**
   * The namespace's database is missing (InfluxDB: 404 "database not found", 500 "retention
   * policy not found"). Only kinds that keep namespaces in databases of their own answer it.
   */
  | { kind: 'no-database'; missing: 'database' | 'retention policy'; message: string }
  /** Network, timeout, 429, 5xx, auth and anything unexpected: try again later. */
  | { kind: 'retryable'; status?: number; message: string; retryAfterMs?: number }
  /** Cut short by close(). */
  | { kind: 'aborted' };

/** One backend's client, as the queue uses it (a storage kind's client; a fake in tests). */
export interface BackendWriter {
  readonly name: string;
  /** `body`: the request body in pieces (views of the messages' buffers), to send in order. */
  write(namespace: string, body: readonly Buffer[]): Promise<WriteAnswer>;
  /** true when the backend answers its health check; probes a backend marked down. */
  ping(): Promise<boolean>;
  /** Aborts requests in flight and closes the idle connections; idempotent. */
  close(): void;
  /**
   * Optional: creates the namespace's database after a `no-database` answer; resolves with an
   * error message, or undefined on success. Without it such an answer waits for an operator.
   */
  createDatabase?(namespace: string): Promise<string | undefined>;
  /**
   * Optional: reads an `invalid` answer's message for what it names (unparsable lines, the
   * conflicting field, the full tag, whether the other lines were written). Without it the
   * queue assumes nothing was written and finds the refused lines by writing halves apart.
   */
  readRefusal?(message: string): WriteErrorReport;
}

/** What a refusal says when the kind cannot tell: nothing named, nothing written. */
export function nothingNamed(): WriteErrorReport {
  return { partial: false, dropped: undefined, unparsable: [], onlyParseErrors: false, typeConflict: undefined, tagLimit: undefined };
}

export interface BackendWriterOptions {
  /** Concurrent connections kept open to the backend. */
  maxSockets: number;
  now?: () => number;
}
