// A write's lines on their way through one backend's queue: the WritePart that settles when all
// of them were accepted or dead-lettered, and the slices (batches, follow-up requests) that carry
// them, each line still knowing the part it belongs to.
import { LineList } from './line-block.ts';

/** One write's share for one backend; `done` settles when all its lines are settled. */
export class WritePart {
  written = 0;
  deadLettered = 0;
  readonly done: Promise<void>;
  private pending: number;
  private failed = false;
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;

  constructor(count: number) {
    this.pending = count;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // The owner awaits `done`; this keeps a part nobody awaits from crashing the process.
    this.done.catch(() => undefined);
    if (count === 0) this.resolveDone();
  }

  accept(n: number): void {
    this.written += n;
    this.settle(n);
  }

  deadLetter(n: number): void {
    this.deadLettered += n;
    this.settle(n);
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.rejectDone(err);
  }

  private settle(n: number): void {
    this.pending -= n;
    if (this.pending <= 0 && !this.failed) this.resolveDone();
  }
}

export interface Segment {
  part: WritePart;
  n: number;
}

/** Lines with the parts they belong to, run-length: consecutive lines of one write share a segment. */
export interface Slice {
  lines: LineList;
  segs: Segment[];
}

export function emptySlice(): Slice {
  return { lines: new LineList(), segs: [] };
}

/** Splits a slice in two by a test on each line (`lines`: the slice's, as strings), keeping each line's part. */
export function partition(slice: Slice, lines: readonly string[], test: (line: string, index: number) => boolean): [Slice, Slice] {
  const yes = emptySlice();
  const no = emptySlice();
  let i = 0;
  for (const seg of slice.segs) {
    for (let k = 0; k < seg.n; k++, i++) {
      const into = test(lines[i] as string, i) ? yes : no;
      into.lines.addFrom(slice.lines, i);
      const last = into.segs[into.segs.length - 1];
      if (last && last.part === seg.part) last.n++;
      else into.segs.push({ part: seg.part, n: 1 });
    }
  }
  return [yes, no];
}
