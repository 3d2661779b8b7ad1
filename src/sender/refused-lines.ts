// The lines a backend refused (a 400 answer): which they are, found from the answer's text or by
// writing parts of the batch again as follow-up requests, and their way to the dead-letter file,
// counted once even when NSQ redelivers the write they came in.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { DeadLetterRecord } from './dead-letter.ts';
import type { Lane, Lanes, Settle } from './lanes.ts';
import type { BackendCounters } from './sender-metrics.ts';
import { RetryableWriteError } from './types.ts';
import { lineShape } from './line-protocol.ts';
import { RefusalLog } from './refusal-log.ts';
import { emptySlice, partition, type Slice } from './write-part.ts';
import { nothingNamed, type BackendWriter } from './backend-writer.ts';
import { matchRejectedLines, refusalKind, type RefusalKind, type WriteErrorReport } from './write-errors.ts';

const REFUSAL_WARN_EVERY_MS = 60_000;
/** Dead-lettered lines remembered (by hash) so a redelivered write does not count them again. */
const RECENTLY_DROPPED_MAX = 100_000;

export interface RefusedLinesOptions {
  /** The backend's name, for logs, errors and dead-letter records. */
  name: string;
  /** Its readRefusal, when its kind can say which lines an answer refused. */
  client: Pick<BackendWriter, 'readRefusal'>;
  deadLetter: { append(records: readonly DeadLetterRecord[]): Promise<void> };
  /** Where follow-up requests go. */
  lanes: Lanes;
  settle: Settle;
  counters: BackendCounters;
  clock: Clock;
  logger: Logger;
}

export class RefusedLines {
  private readonly opts: RefusedLinesOptions;
  private readonly name: string;
  private readonly refusals: RefusalLog;
  private readonly recentlyDropped = new Set<string>();

  constructor(opts: RefusedLinesOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.refusals = new RefusalLog({ backend: this.name, intervalMs: REFUSAL_WARN_EVERY_MS, clock: opts.clock, logger: opts.logger });
  }

  /** Logs the refusals not warned about yet. */
  flush(): void {
    this.refusals.flush();
  }

  /**
   * A 400-class answer. Lines named as unparsable are dead-lettered at once. Of the rest: when
   * the answer says they were all written (parse errors only) they are accepted; when it counts
   * them all as dropped they are dead-lettered. Otherwise the suspects the answer names (lines
   * carrying the conflicting measurement+field type, or the full tag) and the others are each
   * written again as follow-up requests in the namespace's lane, halves when the answer names
   * nothing: each refused line is dead-lettered only once a request holding nothing but refused
   * lines says so (exact counts), and a rewrite of a stored point is harmless (InfluxDB keeps one
   * point per series and timestamp). An all-refused batch costs one request, a batch with one
   * kind of refusal about three, and k scattered refused lines O(k log n).
   */
  async narrow(lane: Lane, slice: Slice, answer: { status: number; message: string }): Promise<void> {
    const lines = slice.lines.strings();
    const report = this.opts.client.readRefusal?.(answer.message) ?? nothingNamed();
    const kind = refusalKind(report);
    const why = `HTTP ${answer.status}: ${answer.message}`;
    const named = matchRejectedLines(lines, report);
    if (named.size === 0 && lines.length === 1) return this.deadLetter(lane, slice, [why], kind);
    const [bad, rest] = partition(slice, lines, (_, i) => named.has(i));
    if (bad.lines.length > 0) {
      const reasons: string[] = [];
      lines.forEach((_, i) => {
        const r = named.get(i);
        if (r !== undefined) reasons.push(`HTTP ${answer.status}: unable to parse: ${r}`);
      });
      await this.deadLetter(lane, bad, reasons, 'unparsable');
    }
    if (rest.lines.length === 0) return;
    const allNamed = named.size === report.unparsable.length;
    if (report.partial && report.onlyParseErrors && allNamed) return this.opts.settle.accept(lane, rest);
    if (report.partial && allNamed && report.dropped === rest.lines.length) return this.deadLetter(lane, rest, [why], kind);
    let follow: Slice[];
    if (named.size > 0) {
      follow = [rest];
    } else {
      const suspect = suspectTest(report);
      const [suspects, others] = suspect ? partition(rest, rest.lines.strings(), suspect) : [rest, emptySlice()];
      if (suspects.lines.length > 0 && others.lines.length > 0) {
        follow = [suspects, others];
      } else {
        follow = halves(rest, report);
      }
    }
    this.opts.lanes.followUp(lane, follow);
  }

  /**
   * Writes refused lines to the dead-letter file and counts them, except lines dead-lettered a
   * short while ago: a write whose other lines failed comes back whole (NSQ redelivers the
   * message), and its refused lines must not be kept and counted twice — as InfluxDB stores a
   * point sent twice once.
   */
  private async deadLetter(lane: Lane, slice: Slice, reasons: readonly string[], kind: RefusalKind): Promise<void> {
    const { namespace } = lane;
    const records: DeadLetterRecord[] = [];
    const keys: string[] = [];
    slice.lines.strings().forEach((line, i) => {
      const key = createHash('sha1').update(namespace).update('\n').update(line).digest('base64');
      if (this.recentlyDropped.has(key)) return;
      keys.push(key);
      records.push({ namespace, backend: this.name, reason: reasons[i] ?? reasons[0] ?? 'refused', line });
    });
    try {
      await this.opts.deadLetter.append(records);
    } catch {
      // Not kept anywhere: refuse to acknowledge, so the data comes back (the log says why).
      this.opts.settle.fail(lane, slice, new RetryableWriteError(`backend "${this.name}": the dead-letter file cannot be written`, 'failed'));
      return;
    }
    for (const key of keys) {
      if (this.recentlyDropped.size >= RECENTLY_DROPPED_MAX) this.recentlyDropped.delete(this.recentlyDropped.values().next().value as string);
      this.recentlyDropped.add(key);
    }
    if (records.length > 0) this.opts.counters.dropped(records.length);
    this.opts.settle.deadLettered(lane, slice);
    if (records.length > 0) this.refusals.note(namespace, kind, records.length, records[0]?.reason ?? 'refused');
  }
}

/**
 * Two halves of a slice to write again apart. Past max-values-per-tag every line with a new
 * value of the tag is refused and every line with a stored one is not: halves of the values,
 * not of the lines, so each step tells whole values apart.
 */
function halves(slice: Slice, report: WriteErrorReport): [Slice, Slice] {
  const { tagLimit } = report;
  const lines = slice.lines.strings();
  if (tagLimit) {
    const valueOf = lines.map((line) => lineShape(line)?.tags.get(tagLimit.tag));
    const values = [...new Set(valueOf)];
    if (values.length > 1) {
      const first = new Set(values.slice(0, Math.ceil(values.length / 2)));
      return partition(slice, lines, (_, i) => first.has(valueOf[i]));
    }
  }
  const mid = Math.ceil(lines.length / 2);
  return partition(slice, lines, (_, i) => i < mid);
}

/** Lines that may be what the answer refused, going by what it names. */
function suspectTest(report: WriteErrorReport): ((line: string) => boolean) | undefined {
  const { typeConflict, tagLimit } = report;
  if (typeConflict) {
    return (line) => {
      const shape = lineShape(line);
      return shape?.measurement === typeConflict.measurement && shape.fields.get(typeConflict.field) === typeConflict.type;
    };
  }
  if (tagLimit) {
    // Any line adding a value to that tag may be refused, not only the one value named.
    return (line) => {
      const shape = lineShape(line);
      return shape?.measurement === tagLimit.measurement && shape.tags.has(tagLimit.tag);
    };
  }
  return undefined;
}
