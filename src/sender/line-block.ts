// Lines of line protocol kept as byte ranges of the buffer they arrived in. The relay hands an
// NSQ message's body to the gateway sender this way, and the sender batches and sends those
// bytes: a point is held once, in its message's buffer, until its backend accepted it, with no
// string per message or per line and no joined batch string. Strings are made only where a line
// is read: shard routing, narrowing down refused lines, dead letters.
import { isDataLine, lineBounds } from './line-protocol.ts';

const NEWLINE = Buffer.from('\n');
const NL = 10;

/** Data lines (no blank or `#` line) in one buffer; iterating gives them as strings. */
export class LineBlock implements Iterable<string> {
  private constructor(
    readonly buf: Buffer,
    /** Line i is buf[bounds[2i], bounds[2i + 1]), without its newline. */
    private readonly bounds: Uint32Array,
  ) {}

  get length(): number {
    return this.bounds.length / 2;
  }

  /** The data lines of buf[from..], split as InfluxDB splits a body (splitLines), sharing buf. */
  static fromBody(buf: Buffer, from = 0): LineBlock {
    return new LineBlock(buf, lineBounds(buf, from, buf.length));
  }

  /** The data lines among `lines` (blank and `#` lines dropped), copied into one buffer. */
  static fromLines(lines: readonly string[]): LineBlock {
    const data = lines.filter(isDataLine);
    const bounds = new Uint32Array(data.length * 2);
    let at = 0;
    data.forEach((line, i) => {
      bounds[2 * i] = at;
      at += Buffer.byteLength(line);
      bounds[2 * i + 1] = at;
      at++;
    });
    return new LineBlock(Buffer.from(data.join('\n'), 'utf8'), bounds);
  }

  line(i: number): string {
    return this.buf.toString('utf8', this.bounds[2 * i], this.bounds[2 * i + 1]);
  }

  *[Symbol.iterator](): Iterator<string> {
    for (let i = 0; i < this.length; i++) yield this.line(i);
  }

  /** The lines at `indices` (ascending), sharing this block's buffer. */
  pick(indices: readonly number[]): LineBlock {
    const bounds = new Uint32Array(indices.length * 2);
    indices.forEach((i, k) => {
      bounds[2 * k] = this.bounds[2 * i] as number;
      bounds[2 * k + 1] = this.bounds[2 * i + 1] as number;
    });
    return new LineBlock(this.buf, bounds);
  }

  /** Bytes of lines [from, to) joined by newlines. */
  byteLength(from: number, to: number): number {
    let n = to - from - 1;
    for (let i = from; i < to; i++) n += (this.bounds[2 * i + 1] as number) - (this.bounds[2 * i] as number);
    return Math.max(0, n);
  }

  /** The lines joined by newlines, as views of the buffer. */
  body(): Buffer[] {
    const out: Buffer[] = [];
    this.views(0, this.length, out);
    return out;
  }

  /** Appends lines [from, to) joined by newlines to `out` as views of the buffer: adjacent lines make one view. */
  views(from: number, to: number, out: Buffer[]): void {
    if (from >= to) return;
    const b = this.bounds;
    let start = b[2 * from] as number;
    let end = b[2 * from + 1] as number;
    for (let i = from + 1; i < to; i++) {
      const s = b[2 * i] as number;
      if (s === end + 1 && this.buf[end] === NL) {
        end = b[2 * i + 1] as number;
        continue;
      }
      out.push(this.buf.subarray(start, end), NEWLINE);
      start = s;
      end = b[2 * i + 1] as number;
    }
    out.push(this.buf.subarray(start, end));
  }
}

interface Run {
  block: LineBlock;
  from: number;
  to: number;
}

/** Lines from several blocks, in order: a batch or part of one, without copying their bytes. */
export class LineList implements Iterable<string> {
  private readonly runs: Run[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends lines [from, to) of `block`. */
  add(block: LineBlock, from: number, to: number): void {
    if (to <= from) return;
    this.count += to - from;
    const last = this.runs[this.runs.length - 1];
    if (last && last.block === block && last.to === from) last.to = to;
    else this.runs.push({ block, from, to });
  }

  /** Appends line `i` of `list`. */
  addFrom(list: LineList, i: number): void {
    let k = i;
    for (const run of list.runs) {
      const n = run.to - run.from;
      if (k < n) return this.add(run.block, run.from + k, run.from + k + 1);
      k -= n;
    }
    throw new RangeError(`line ${i} of ${list.length}`);
  }

  /** The lines as strings (for reading them: narrowing refusals down, dead letters). */
  strings(): string[] {
    return [...this];
  }

  *[Symbol.iterator](): Iterator<string> {
    for (const run of this.runs) for (let i = run.from; i < run.to; i++) yield run.block.line(i);
  }

  /** The request body: the lines joined by newlines, as views of their buffers. */
  body(): Buffer[] {
    const out: Buffer[] = [];
    for (const run of this.runs) {
      if (out.length > 0) out.push(NEWLINE);
      run.block.views(run.from, run.to, out);
    }
    return out;
  }

  byteLength(): number {
    let n = Math.max(0, this.runs.length - 1);
    for (const run of this.runs) n += run.block.byteLength(run.from, run.to);
    return n;
  }
}
