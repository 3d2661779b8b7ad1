// Line protocol straight to publishable lines, for POST /post with text/plain: each line is
// validated and stamped as normalisation would do it (host tag, whole-second timestamp or now,
// numbers printed as floats, booleans as T/F, tags and fields sorted by key) by slicing the body's
// own text, with no Metric object and no Point per line. A line it cannot vouch for byte for byte
// (an escape, a duplicate key, anything refused, an over-long line, …) goes alone through the
// general path, LineProtocolParser then Normaliser, so answers, reasons, counters and bytes stay
// exactly theirs; test/points/lp-fast.test.ts compares the two paths.
import { escape } from '@influxdata/influxdb-client';
import { MAX_SERIES_KEY_BYTES, MAX_TIMESTAMP_SECONDS, type MetricSink, type PushOptions, type PushResult, type Rejection } from './metric.ts';
import { emptyBatch, type NormalisedBatch, type Normaliser } from './normalise.ts';
import { BOOLEAN_VALUES, FLOAT_VALUE, LP_CHARS } from '../lp-syntax.ts';
import { LineProtocolParser, toSeconds, type LpPrecision } from './parse-lp.ts';

export interface LineProtocolStamperOptions {
  /** Host tag, timestamp bound and the fallback for lines the fast path leaves alone. */
  normaliser: Normaliser;
  /** Lines longer than this many UTF-8 bytes are refused (`too_long`), as by the pipeline. */
  maxLineBytes: number;
  /** Unit of the timestamps in the text; InfluxDB's default is nanoseconds. */
  precision: LpPrecision;
  /** Refusals listed with their reason, of each kind (parse, normalise); the rest are counted. */
  maxListedRejections: number;
  /** The current second, one reading for the whole body (missing and replaced timestamps). */
  nowSec: number;
}

/** What a body gave: the normalised batch for the sink, and the lines that did not parse. */
export interface StampedLp {
  /** Lines that parsed (what the general path hands the sink as metrics). */
  pointsIn: number;
  /** Lines to publish and the normaliser's refusals, `index` being the 0-based body line. */
  batch: NormalisedBatch;
  /** Lines that did not parse (the first `maxListedRejections`), by body line. */
  parseRejected: Rejection[];
  parseRejectedCount: number;
}

/** A MetricSink that also takes line protocol this way (the Pipeline). */
export interface LineProtocolSink extends MetricSink {
  stampLineProtocol(text: string, opts: { precision: LpPrecision; maxListedRejections?: number }): LineProtocolStamper;
  pushStamped(namespace: string, stamped: StampedLp, opts?: PushOptions): Promise<PushResult>;
}

export function isLineProtocolSink(sink: MetricSink): sink is LineProtocolSink {
  const s = sink as Partial<LineProtocolSink>;
  return typeof s.stampLineProtocol === 'function' && typeof s.pushStamped === 'function';
}

// Local copies, as in parse-lp.ts: cheaper in the scanning loops than an imported binding.
const { NL, CR, SPACE, TAB, COMMA, EQUALS, QUOTE, BACKSLASH, HASH } = LP_CHARS;
const MINUS = 45;
const PLUS = 43;
const DOT = 46;
const ZERO = 48;
const NINE = 57;

/** A field value as Point prints it: VERBATIM when the input text is already that. */
const VERBATIM = null;
type ValueText = string | typeof VERBATIM | undefined;

/**
 * The stamping, resumable: `step(n)` handles up to n more lines, so a caller can spread a large
 * body over several turns of the event loop (as LineProtocolParser.step does).
 */
export class LineProtocolStamper {
  readonly result: StampedLp = { pointsIn: 0, batch: emptyBatch(), parseRejected: [], parseRejectedCount: 0 };
  /** Lines that went through the general path (escapes, refusals, …); the rest were sliced. */
  generalLines = 0;
  private pos = 0;
  private line = 0;
  private readonly precision: LpPrecision;
  private readonly maxListed: number;
  private readonly maxSeconds: number;
  /** Longest line (UTF-16 units) that cannot be over either byte limit. */
  private readonly maxSafeLength: number;
  private readonly hostTag: string;
  private readonly nowText: string;
  private readonly normaliser: Normaliser;
  private readonly maxLineBytes: number;
  private readonly nowSec: number;
  /** Created on the first line the fast path leaves alone. */
  private general: LineProtocolParser | undefined;
  private readonly one: NormalisedBatch = emptyBatch();

  // Per line, reused: [keyStart, keyEnd, valueEnd] per tag and per field (a value starts after
  // its key's "="), the printed text of each field value, and the sorted order.
  private readonly tags: number[] = [];
  private readonly fields: number[] = [];
  private readonly fieldTexts: Array<string | null> = [];
  private readonly order: number[] = [];
  /** Set by stampLine(): where the line ended and whether its timestamp was replaced by now. */
  private end = 0;
  private replaced = false;

  constructor(
    private readonly text: string,
    opts: LineProtocolStamperOptions,
  ) {
    this.precision = opts.precision;
    this.maxListed = opts.maxListedRejections;
    this.normaliser = opts.normaliser;
    this.maxSeconds = opts.normaliser.maxSeconds;
    this.maxLineBytes = opts.maxLineBytes;
    // A UTF-16 unit is at most 3 UTF-8 bytes: shorter lines need no byte count at all.
    this.maxSafeLength = Math.floor(Math.min(opts.maxLineBytes, MAX_SERIES_KEY_BYTES) / 3);
    this.hostTag = `,host=${escape.tag(opts.normaliser.hostname)}`;
    this.nowSec = opts.nowSec;
    this.nowText = String(opts.nowSec);
  }

  /** Handles up to `maxLines` more lines; true once the body is done. */
  step(maxLines: number): boolean {
    const s = this.text;
    const len = s.length;
    const out = this.result;
    for (let n = 0; n < maxLines && this.pos < len; n++) {
      const lineIndex = this.line;
      let i = this.pos;
      let c = s.charCodeAt(i);
      while (c === SPACE || c === TAB || c === CR) c = s.charCodeAt(++i);
      this.pos = i;
      if (i >= len) break;
      if (c === NL) {
        this.pos++;
        this.line++;
        continue;
      }
      if (c === HASH) {
        const nl = s.indexOf('\n', i);
        if (nl === -1) this.pos = len;
        else {
          this.pos = nl + 1;
          this.line++;
        }
        continue;
      }
      const stamped = this.stampLine(i);
      if (stamped === undefined) {
        this.generalLine(i, lineIndex);
        continue;
      }
      out.pointsIn++;
      out.batch.lines.push(stamped);
      if (this.replaced) out.batch.timestampsReplaced++;
      this.pos = this.end;
      if (this.end < len) {
        this.pos++;
        this.line++;
      }
    }
    return this.pos >= len;
  }

  /** The line at `start` through the general path, exactly as POST /post without this file. */
  private generalLine(start: number, lineIndex: number): void {
    this.generalLines++;
    const parser = (this.general ??= new LineProtocolParser(this.text, { precision: this.precision }));
    parser.seek(start, lineIndex);
    parser.step(1);
    const cursor = parser.cursor;
    this.pos = cursor.pos;
    this.line = cursor.line;
    const parsed = parser.result;
    const out = this.result;
    const metric = parsed.metrics.pop();
    parsed.lineIndexes.pop();
    if (metric === undefined) {
      const refusal = parsed.rejected.pop();
      parsed.rejectedCount = 0;
      out.parseRejectedCount++;
      if (refusal && out.parseRejected.length < this.maxListed) out.parseRejected.push(refusal);
      return;
    }
    out.pointsIn++;
    const one = this.one;
    this.normaliser.normaliseSlice([metric], 0, 1, one, { maxLineBytes: this.maxLineBytes }, this.nowSec);
    const batch = out.batch;
    const line = one.lines.pop();
    if (line !== undefined) {
      batch.lines.push(line);
      batch.timestampsReplaced += one.timestampsReplaced;
      one.timestampsReplaced = 0;
      return;
    }
    const refusal = one.rejected.pop();
    one.rejectedCount = 0;
    one.rejectedByCode = {};
    if (refusal === undefined) return;
    batch.rejectedCount++;
    batch.rejectedByCode[refusal.code] = (batch.rejectedByCode[refusal.code] ?? 0) + 1;
    if (batch.rejected.length < this.maxListed) batch.rejected.push({ index: lineIndex, reason: refusal.reason, code: refusal.code });
  }

  /**
   * The published line for the point at `start`, or undefined when the general path must take
   * it. On success `end` is where the line ends (its newline, or the end of the body).
   */
  private stampLine(start: number): string | undefined {
    const s = this.text;
    const len = s.length;
    let i = start;
    let c = s.charCodeAt(i);
    // Measurement: up to "," or a blank. Escapes are left to the general path, in every part.
    while (i < len && c !== COMMA && c !== SPACE && c !== TAB && c !== NL && c !== CR) {
      if (c === BACKSLASH) return undefined;
      c = s.charCodeAt(++i);
    }
    const nameEnd = i;
    if (nameEnd === start) return undefined;

    const tags = this.tags;
    let nTags = 0;
    let tagsSorted = true;
    let hasHost = false;
    while (c === COMMA) {
      const keyStart = ++i;
      c = s.charCodeAt(i);
      while (i < len && c !== COMMA && c !== EQUALS && c !== SPACE && c !== TAB && c !== NL && c !== CR) {
        if (c === BACKSLASH) return undefined;
        c = s.charCodeAt(++i);
      }
      const keyEnd = i;
      if (keyEnd === keyStart || c !== EQUALS) return undefined;
      c = s.charCodeAt(++i);
      const valueStart = i;
      while (i < len && c !== COMMA && c !== EQUALS && c !== SPACE && c !== TAB && c !== NL && c !== CR) {
        if (c === BACKSLASH) return undefined;
        c = s.charCodeAt(++i);
      }
      if (i === valueStart || reservedKey(s, keyStart, keyEnd)) return undefined;
      if (keyEnd - keyStart === 4 && equalsText(s, keyStart, 'host')) hasHost = true;
      const order = appendKey(s, tags, nTags++, keyStart, keyEnd, i);
      if (order === 0) return undefined;
      if (order > 0) tagsSorted = false;
    }
    if (c !== SPACE && c !== TAB) return undefined;
    const tagsEnd = i;
    do c = s.charCodeAt(++i);
    while (c === SPACE || c === TAB || c === CR);

    const fieldsStart = i;
    const fields = this.fields;
    const texts = this.fieldTexts;
    let nFields = 0;
    let fieldsSorted = true;
    let verbatim = true;
    for (;;) {
      const keyStart = i;
      while (i < len && c !== COMMA && c !== EQUALS && c !== SPACE && c !== TAB && c !== NL && c !== CR) {
        if (c === BACKSLASH) return undefined;
        c = s.charCodeAt(++i);
      }
      const keyEnd = i;
      if (keyEnd === keyStart || c !== EQUALS || reservedKey(s, keyStart, keyEnd)) return undefined;
      c = s.charCodeAt(++i);
      const valueStart = i;
      let text: ValueText = VERBATIM;
      if (c === QUOTE) {
        // A string: printed as given unless it holds what the general path rewrites.
        c = s.charCodeAt(++i);
        while (c !== QUOTE) {
          if (i >= len || c === BACKSLASH || c === NL || c === CR) return undefined;
          c = s.charCodeAt(++i);
        }
        c = s.charCodeAt(++i);
      } else {
        while (i < len && c !== COMMA && c !== SPACE && c !== TAB && c !== NL && c !== CR) c = s.charCodeAt(++i);
        if (i === valueStart) return undefined;
        text = fieldValueText(s, valueStart, i);
        if (text === undefined) return undefined;
        if (text !== VERBATIM) verbatim = false;
      }
      texts[nFields] = text;
      const order = appendKey(s, fields, nFields++, keyStart, keyEnd, i);
      if (order === 0) return undefined;
      if (order > 0) fieldsSorted = false;
      if (c !== COMMA) break;
      c = s.charCodeAt(++i);
    }
    const fieldsEnd = i;

    while (c === SPACE || c === TAB || c === CR) c = s.charCodeAt(++i);
    let time = this.nowText;
    this.replaced = false;
    if (i < len && c !== NL) {
      if (i === fieldsEnd) return undefined;
      const timeStart = i;
      while (i < len && c !== SPACE && c !== TAB && c !== NL && c !== CR) c = s.charCodeAt(++i);
      const seconds = timestampSeconds(s, timeStart, i, this.precision);
      if (seconds === undefined) return undefined;
      while (c === SPACE || c === TAB || c === CR) c = s.charCodeAt(++i);
      if (i < len && c !== NL) return undefined;
      // As the normaliser: 0 and negatives (and, with a lower bound, finer units) become now.
      if (seconds > 0 && seconds <= this.maxSeconds) time = String(seconds);
      else this.replaced = true;
    }
    this.end = i;

    let line: string;
    if (tagsSorted && fieldsSorted && verbatim) {
      // The common case: the body already holds the line but for the host tag and the time.
      let head: string;
      if (hasHost) head = s.slice(start, tagsEnd);
      else {
        let at = tagsEnd;
        for (let t = 0; t < nTags; t++) {
          if (compareWithText(s, tags[t * 3] as number, tags[t * 3 + 1] as number, 'host') > 0) {
            at = (tags[t * 3] as number) - 1;
            break;
          }
        }
        head = at === tagsEnd ? s.slice(start, tagsEnd) + this.hostTag : s.slice(start, at) + this.hostTag + s.slice(at, tagsEnd);
      }
      line = `${head} ${s.slice(fieldsStart, fieldsEnd)} ${time}`;
    } else {
      const assembled = this.assemble(start, nameEnd, nTags, hasHost, nFields);
      if (assembled === undefined) return undefined;
      line = assembled + time;
    }
    return line.length > this.maxSafeLength ? undefined : line;
  }

  /**
   * Measurement, sorted tags (host among them) and sorted fields, then a space; undefined for a
   * key given twice (the general path keeps the last).
   */
  private assemble(start: number, nameEnd: number, nTags: number, hasHost: boolean, nFields: number): string | undefined {
    const s = this.text;
    const tags = this.tags;
    let line = s.slice(start, nameEnd);
    const order = sortedOrder(s, tags, nTags, this.order);
    let hostDone = hasHost;
    for (let k = 0; k < nTags; k++) {
      const t = (order[k] as number) * 3;
      if (k > 0 && sameKey(s, tags, (order[k - 1] as number) * 3, t)) return undefined;
      if (!hostDone && compareWithText(s, tags[t] as number, tags[t + 1] as number, 'host') > 0) {
        line += this.hostTag;
        hostDone = true;
      }
      line += `,${s.slice(tags[t] as number, tags[t + 2] as number)}`;
    }
    if (!hostDone) line += this.hostTag;
    line += ' ';
    const fields = this.fields;
    const fieldOrder = sortedOrder(s, fields, nFields, order);
    for (let k = 0; k < nFields; k++) {
      const f = fieldOrder[k] as number;
      if (k > 0 && sameKey(s, fields, (fieldOrder[k - 1] as number) * 3, f * 3)) return undefined;
      const keyStart = fields[f * 3] as number;
      const keyEnd = fields[f * 3 + 1] as number;
      if (k > 0) line += ',';
      const text = this.fieldTexts[f];
      line += text === VERBATIM || text === undefined ? s.slice(keyStart, fields[f * 3 + 2] as number) : s.slice(keyStart, keyEnd + 1) + text;
    }
    return `${line} `;
  }
}

/** Keys the normaliser refuses ("time") or that an object cannot hold as data ("__proto__"). */
function reservedKey(s: string, from: number, to: number): boolean {
  const n = to - from;
  return (n === 4 && equalsText(s, from, 'time')) || (n === 9 && equalsText(s, from, '__proto__'));
}

function equalsText(s: string, at: number, k: string): boolean {
  for (let i = 0; i < k.length; i++) if (s.charCodeAt(at + i) !== k.charCodeAt(i)) return false;
  return true;
}

/** Orders two ranges of `s` as Array.prototype.sort orders strings (by UTF-16 unit). */
function compareRanges(s: string, a: number, aEnd: number, b: number, bEnd: number): number {
  const n = Math.min(aEnd - a, bEnd - b);
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(a + i) - s.charCodeAt(b + i);
    if (d !== 0) return d;
  }
  return aEnd - a - (bEnd - b);
}

function compareWithText(s: string, a: number, aEnd: number, k: string): number {
  const n = Math.min(aEnd - a, k.length);
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(a + i) - k.charCodeAt(i);
    if (d !== 0) return d;
  }
  return aEnd - a - k.length;
}

/**
 * Stores [keyStart, keyEnd, end] as the n-th triple; returns how the key before compares with
 * it (0: the same key twice, above 0: out of order), below 0 for the first.
 */
function appendKey(s: string, triples: number[], n: number, keyStart: number, keyEnd: number, end: number): number {
  const order = n === 0 ? -1 : compareRanges(s, triples[n * 3 - 3] as number, triples[n * 3 - 2] as number, keyStart, keyEnd);
  triples[n * 3] = keyStart;
  triples[n * 3 + 1] = keyEnd;
  triples[n * 3 + 2] = end;
  return order;
}

function sameKey(s: string, triples: readonly number[], a: number, b: number): boolean {
  return compareRanges(s, triples[a] as number, triples[a + 1] as number, triples[b] as number, triples[b + 1] as number) === 0;
}

/** Indexes of the `n` [keyStart, keyEnd, …] triples in key order (an insertion sort: n is small). */
function sortedOrder(s: string, triples: readonly number[], n: number, order: number[]): number[] {
  for (let k = 0; k < n; k++) {
    let j = k;
    while (j > 0) {
      const prev = (order[j - 1] as number) * 3;
      if (compareRanges(s, triples[prev] as number, triples[prev + 1] as number, triples[k * 3] as number, triples[k * 3 + 1] as number) <= 0) break;
      order[j] = order[j - 1] as number;
      j--;
    }
    order[j] = k;
  }
  return order;
}


/**
 * How Point prints the unquoted field value at [from, to) after the general path read it: a
 * number (integers too: /post writes numbers as floats) as String(Number(text)), a boolean as
 * T or F. VERBATIM when that is the text itself; undefined for what the general path refuses.
 */
function fieldValueText(s: string, from: number, to: number): ValueText {
  const last = s.charCodeAt(to - 1);
  if (last === 105 || last === 117) {
    // 123i, 123u: InfluxDB's typed integers.
    const first = s.charCodeAt(from);
    const digits = first === MINUS || first === PLUS ? from + 1 : from;
    if (digits >= to - 1 || !allDigits(s, digits, to - 1)) return undefined;
    if (last === 117 && first === MINUS) return undefined;
    const plain = first !== PLUS && to - 1 - digits <= 15 && (s.charCodeAt(digits) !== ZERO || (to - 1 - digits === 1 && first !== MINUS));
    return plain ? s.slice(from, to - 1) : String(Number(s.slice(from, to - 1)));
  }
  const first = s.charCodeAt(from);
  if (to - from <= 5 && (first === 116 || first === 84 || first === 102 || first === 70)) {
    const bool = BOOLEAN_VALUES.get(s.slice(from, to));
    if (bool !== undefined) return to - from === 1 && (first === 84 || first === 70) ? VERBATIM : bool ? 'T' : 'F';
  }
  if (shortestFloat(s, from, to)) return VERBATIM;
  const raw = s.slice(from, to);
  if (!FLOAT_VALUE.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? String(n) : undefined;
}

function allDigits(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < ZERO || c > NINE) return false;
  }
  return true;
}

/**
 * Whether [from, to) is a decimal that String(Number(text)) prints unchanged: an optional "-",
 * no leading zero, no trailing zero after the point, no exponent, at most 15 digits (each such
 * decimal is its double's shortest form), and not below 1e-6 (printed with an exponent).
 */
function shortestFloat(s: string, from: number, to: number): boolean {
  let i = s.charCodeAt(from) === MINUS ? from + 1 : from;
  const intStart = i;
  while (i < to && isDigit(s.charCodeAt(i))) i++;
  const intDigits = i - intStart;
  if (intDigits === 0 || intDigits > 15) return false;
  const zeroInt = s.charCodeAt(intStart) === ZERO;
  if (zeroInt && intDigits > 1) return false;
  if (i === to) return !(zeroInt && intStart > from);
  if (s.charCodeAt(i) !== DOT) return false;
  const fracStart = ++i;
  while (i < to && isDigit(s.charCodeAt(i))) i++;
  if (i !== to || i === fracStart || s.charCodeAt(to - 1) === ZERO || intDigits + (to - fracStart) > 15) return false;
  if (zeroInt) {
    let zeros = 0;
    while (s.charCodeAt(fracStart + zeros) === ZERO) zeros++;
    if (zeros > 5) return false;
  }
  return true;
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

/** Seconds of the timestamp at [from, to), undefined when the general path refuses it. */
function timestampSeconds(s: string, from: number, to: number, precision: LpPrecision): number | undefined {
  const first = s.charCodeAt(from);
  const digits = first === MINUS || first === PLUS ? from + 1 : from;
  if (digits >= to || !allDigits(s, digits, to)) return undefined;
  const seconds = toSeconds(s.slice(from, to), precision);
  return seconds > MAX_TIMESTAMP_SECONDS || seconds < -MAX_TIMESTAMP_SECONDS ? undefined : seconds;
}
