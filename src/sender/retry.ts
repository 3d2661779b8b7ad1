// One request's life on one backend: write the batch, read the answer, and settle its lines, or
// retry with backoff (honouring Retry-After) while the backend is up and the queue runs. A 400
// answer goes to the refused-line finder; a missing database is created when so configured.
import type { Logger } from 'pino';
import { backoffMs } from '../backoff.ts';
import { sleep, type Clock } from '../clock.ts';
import type { BackendWriter } from './backend-queue.ts';
import type { Breaker } from './breaker.ts';
import type { Dispatch } from './dispatch.ts';
import type { Lane, Settle, Work } from './lanes.ts';
import type { BackendCounters } from './sender-metrics.ts';
import type { Slice } from './write-part.ts';
import { RetryableWriteError } from './types.ts';

const MAX_WARNED_NAMESPACES = 1000;
const MISSING_DB_WARN_EVERY_MS = 60_000;

export interface RetryingWriterOptions {
  client: BackendWriter;
  retryMinMs: number;
  retryMaxMs: number;
  /** On 404 "database not found": CREATE DATABASE, then write again. */
  createDatabase: boolean;
  breaker: Breaker;
  dispatch: Dispatch;
  settle: Settle;
  /** A 400 answer: find which of the slice's lines were refused. */
  narrow(lane: Lane, slice: Slice, answer: { status: number; message: string }): Promise<void>;
  isClosed(): boolean;
  counters: BackendCounters;
  clock: Clock;
  logger: Logger;
}

export function stoppedError(backend: string): RetryableWriteError {
  return new RetryableWriteError(`backend "${backend}": sender stopped before the write was accepted`, 'stopped');
}

export class RetryingWriter {
  readonly stats = { requests: 0, databasesCreated: 0 };
  private readonly opts: RetryingWriterOptions;
  private readonly name: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Aborted (and replaced) to end every wait for a retry at once. */
  private wake = new AbortController();
  private readonly missingDbWarnedAt = new Map<string, number>();

  constructor(opts: RetryingWriterOptions) {
    this.opts = opts;
    this.name = opts.client.name;
    this.clock = opts.clock;
    this.log = opts.logger;
  }

  async deliver(work: Work): Promise<void> {
    const { breaker, settle } = this.opts;
    const { lane, slice } = work;
    const { namespace } = lane;
    const n = slice.lines.length;
    const body = slice.lines.body();
    let triedCreate = false;
    for (let attempt = 1; ; attempt++) {
      if (this.opts.isClosed()) return settle.fail(lane, slice, stoppedError(this.name));
      if (breaker.isDown()) return settle.fail(lane, slice, breaker.downError());
      this.stats.requests++;
      const answer = await this.opts.client.write(namespace, body);
      switch (answer.kind) {
        case 'ok':
          this.opts.counters.request('ok');
          breaker.succeeded();
          settle.accept(lane, slice, slice.lines.byteLength());
          return;
        case 'invalid':
          this.opts.counters.request('invalid');
          breaker.succeeded();
          return this.opts.narrow(lane, slice, answer);
        case 'no-database':
          this.opts.counters.request('no_database');
          if (answer.missing === 'database' && this.opts.createDatabase && this.opts.client.createDatabase && !triedCreate) {
            triedCreate = true;
            if (await this.createDatabase(namespace)) continue;
          }
          this.warnMissingDatabase(namespace, answer.message);
          this.opts.counters.failed(n);
          return settle.fail(lane, slice, new RetryableWriteError(`backend "${this.name}": ${answer.message}`, 'no-database'));
        case 'aborted':
          return settle.fail(lane, slice, stoppedError(this.name));
        case 'retryable': {
          this.opts.counters.request('retryable');
          this.opts.counters.failed(n);
          breaker.failure(answer.message);
          if (breaker.isDown()) return settle.fail(lane, slice, breaker.downError());
          const after = answer.retryAfterMs;
          if (after !== undefined) this.opts.dispatch.holdFor(after);
          if (after !== undefined && after > this.opts.retryMaxMs) {
            // Longer than we hold writes: hand it back so NSQ keeps the data meanwhile.
            return settle.fail(lane, slice, new RetryableWriteError(`backend "${this.name}": ${answer.message}`, 'retry-after', after));
          }
          const wait = Math.max(after ?? 0, backoffMs(attempt - 1, this.opts.retryMinMs, this.opts.retryMaxMs));
          this.log.debug({ backend: this.name, namespace, attempt, waitMs: wait, error: answer.message }, 'write failed; retrying');
          if (!(await this.sleep(wait))) {
            return settle.fail(lane, slice, this.opts.isClosed() ? stoppedError(this.name) : breaker.downError());
          }
        }
      }
    }
  }

  /** Ends every wait for a retry early (the backend went down or the queue stops). */
  wakeSleepers(): void {
    this.wake.abort();
    this.wake = new AbortController();
  }

  /** Resolves true after `ms`, or false early when wakeSleepers() is called meanwhile. */
  private async sleep(ms: number): Promise<boolean> {
    const { signal } = this.wake;
    await sleep(this.clock, ms, signal);
    return !signal.aborted;
  }

  private async createDatabase(namespace: string): Promise<boolean> {
    const { client } = this.opts;
    const error = client.createDatabase ? await client.createDatabase(namespace) : 'this storage kind has no databases to create';
    if (error === undefined) {
      this.stats.databasesCreated++;
      this.log.info({ backend: this.name, namespace }, 'database created');
      return true;
    }
    this.log.error({ backend: this.name, namespace, error }, 'cannot create the missing database');
    return false;
  }

  private warnMissingDatabase(namespace: string, message: string): void {
    const now = this.clock.now();
    const last = this.missingDbWarnedAt.get(namespace);
    if (last !== undefined && now - last < MISSING_DB_WARN_EVERY_MS) return;
    if (this.missingDbWarnedAt.size >= MAX_WARNED_NAMESPACES) this.missingDbWarnedAt.clear();
    this.missingDbWarnedAt.set(namespace, now);
    this.log.warn(
      { backend: this.name, namespace, error: message, createDatabase: this.opts.createDatabase },
      'database (or retention policy) missing on the backend; its points wait in NSQ until it exists',
    );
  }
}
