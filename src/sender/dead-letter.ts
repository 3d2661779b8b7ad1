// The dead-letter file: JSON lines for data a backend refused as invalid (or, for the relay,
// NSQ messages it cannot read), so they are kept, counted and never retried forever. Appends
// are serialised and awaited before the data is acknowledged. Bounded: past maxFileBytes the
// file is rotated to "<name>.1", replacing the previous one (counted as discarded).
import { appendFile, mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';

export interface DeadLetterRecord {
  namespace?: string;
  backend?: string;
  /** NSQ topic, for messages the relay could not decode. */
  topic?: string;
  reason: string;
  /** The refused line of line protocol (or the whole message body, for the relay). */
  line: string;
}

export interface DeadLetterOptions {
  dir: string;
  /** e.g. "rejected-points.jsonl". */
  fileName: string;
  maxFileBytes: number;
  clock: Clock;
  logger: Logger;
}

export interface DeadLetterStatus {
  file: string;
  records: number;
  bytes: number;
  rotations: number;
  /** Bytes of rotated-out files that were overwritten by a later rotation. */
  discardedBytes: number;
  failures: number;
}

export class DeadLetterLog {
  readonly file: string;
  private readonly opts: DeadLetterOptions;
  private tail: Promise<void> = Promise.resolve();
  private size: number | undefined;
  private readonly counts = { records: 0, bytes: 0, rotations: 0, discardedBytes: 0, failures: 0 };

  constructor(opts: DeadLetterOptions) {
    if (!path.isAbsolute(opts.dir)) throw new Error(`dead-letter dir must be absolute, got "${opts.dir}"`);
    if (!/^[\w.-]+$/.test(opts.fileName)) throw new Error(`dead-letter file name "${opts.fileName}" is not a plain file name`);
    if (!(opts.maxFileBytes >= 1024)) throw new Error('dead-letter maxFileBytes must be at least 1024');
    this.opts = opts;
    this.file = path.join(opts.dir, opts.fileName);
  }

  /** Resolves once the records are in the file; rejects (and counts) when they could not be written. */
  append(records: readonly DeadLetterRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const time = new Date(this.opts.clock.now()).toISOString();
    const text = records.map((r) => `${JSON.stringify({ time, ...r })}\n`).join('');
    const run = this.tail.then(() => this.write(text, records.length));
    // The chain goes on after a failure; this caller still sees it.
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Waits for pending appends. */
  async flush(): Promise<void> {
    await this.tail;
  }

  status(): DeadLetterStatus {
    return { file: this.file, ...this.counts };
  }

  private async write(text: string, n: number): Promise<void> {
    const bytes = Buffer.byteLength(text);
    try {
      if (this.size === undefined) {
        await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
        this.size = await stat(this.file).then((s) => s.size, () => 0);
      }
      if (this.size > 0 && this.size + bytes > this.opts.maxFileBytes) await this.rotate();
      await appendFile(this.file, text);
      this.size += bytes;
      this.counts.records += n;
      this.counts.bytes += bytes;
    } catch (err) {
      this.counts.failures++;
      this.size = undefined;
      this.opts.logger.error({ err, file: this.file, records: n }, 'cannot write the dead-letter file');
      throw err;
    }
  }

  private async rotate(): Promise<void> {
    const previous = `${this.file}.1`;
    const old = await stat(previous).then((s) => s.size, () => 0);
    await rename(this.file, previous);
    this.counts.rotations++;
    this.counts.discardedBytes += old;
    const rotatedBytes = this.size ?? 0;
    this.size = 0;
    this.opts.logger.warn(
      { file: this.file, rotatedTo: previous, rotatedBytes, discardedBytes: old },
      'dead-letter file rotated',
    );
  }
}
