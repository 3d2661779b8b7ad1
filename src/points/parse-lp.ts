// InfluxDB line protocol → Metric objects (with `fields`), for `POST /post` with text/plain.
// A pure parser: no I/O, no normalisation (host tag, timestamp fallback and field typing happen
// behind the MetricSink like for every other point). A bad line is refused alone, with its
// line index and the reason; the others go on.
import { BOOLEAN_VALUES, FLOAT_VALUE, KEY_ESCAPES, LP_CHARS, MEASUREMENT_ESCAPES, STRING_ESCAPES, isBlank, unescape } from '../lp-syntax.ts';
import { MAX_TIMESTAMP_SECONDS, setOwn, type FieldValue, type Metric, type Rejection } from './metric.ts';

/** Timestamp unit of the input, as InfluxDB's `precision` query parameter names it. */
export type LpPrecision = 'ns' | 'us' | 'ms' | 's' | 'm' | 'h';

const PRECISIONS = new Map<string, LpPrecision>([
  ['n', 'ns'],
  ['ns', 'ns'],
  ['u', 'us'],
  ['us', 'us'],
  ['µ', 'us'],
  ['µs', 'us'],
  ['ms', 'ms'],
  ['s', 's'],
  ['m', 'm'],
  ['h', 'h'],
]);

/** Maps InfluxDB's precision spellings (n, ns, u, us, ms, s, m, h) to one; undefined if unknown. */
export function parsePrecision(text: string): LpPrecision | undefined {
  return PRECISIONS.get(text);
}

export interface ParseLpOptions {
  /** Unit of the timestamps in the text; InfluxDB's default is nanoseconds. */
  precision?: LpPrecision;
  /** Bad lines listed with their reason; the rest are only counted. Default: all. */
  maxListedRejections?: number;
}

export interface ParsedLp {
  /** One per good line, in order; timestamps converted to whole seconds. */
  metrics: Metric[];
  /** `lineIndexes[i]` is the 0-based line of the body `metrics[i]` came from. */
  lineIndexes: number[];
  /**
   * Bad lines (the first `maxListedRejections`); `index` is the 0-based line of the body. Blank
   * and `#` lines are skipped.
   */
  rejected: Rejection[];
  /** Every bad line, listed or not. */
  rejectedCount: number;
}

// Local copies: the scanning loops below compare every character against these, and a local
// constant is cheaper there than an imported binding (about 2x on the whole parse under tsx).
const { NL, CR, SPACE, TAB, COMMA, EQUALS, QUOTE, BACKSLASH, HASH } = LP_CHARS;

/** External text in a message: quoted, and cut so one reason stays one short line. */
function q(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/**
 * Parses a line-protocol body. A quoted string field value may span lines, as InfluxDB allows;
 * its point is reported at the line where it starts.
 */
export function parseLineProtocol(text: string, opts: ParseLpOptions = {}): ParsedLp {
  const parser = new LineProtocolParser(text, opts);
  while (!parser.step(Number.POSITIVE_INFINITY));
  return parser.result;
}

/**
 * The same parse, resumable: `step(n)` parses up to n more lines, so a caller can spread a large
 * body over several turns of the event loop. A bad line costs a short reason string, never an
 * Error (building one per line made a 16 MiB body of bad lines hold the event loop for minutes).
 */
export class LineProtocolParser {
  readonly result: ParsedLp = { metrics: [], lineIndexes: [], rejected: [], rejectedCount: 0 };
  private readonly scanner: Scanner;
  private readonly precision: LpPrecision;
  private readonly maxListed: number;

  constructor(
    private readonly text: string,
    opts: ParseLpOptions = {},
  ) {
    this.scanner = new Scanner(text);
    this.precision = opts.precision ?? 'ns';
    this.maxListed = opts.maxListedRejections ?? Number.POSITIVE_INFINITY;
  }

  /** Where the next step() starts: a character offset and its 0-based line. */
  get cursor(): { pos: number; line: number } {
    return { pos: this.scanner.pos, line: this.scanner.line };
  }

  /** Moves the next step() to `pos`, the start of 0-based line `line` (or a blank before it). */
  seek(pos: number, line: number): void {
    this.scanner.pos = pos;
    this.scanner.line = line;
  }

  /** Parses up to `maxLines` more lines; true once the body is done. */
  step(maxLines: number): boolean {
    const text = this.text;
    const p = this.scanner;
    const out = this.result;
    for (let n = 0; n < maxLines && p.pos < text.length; n++) {
      const lineIndex = p.line;
      p.skipBlanks();
      const c = text.charCodeAt(p.pos);
      if (p.pos >= text.length) break;
      if (c === NL) {
        p.newline();
        continue;
      }
      if (c === HASH) {
        p.skipToEol();
        p.newline();
        continue;
      }
      const start = p.pos;
      const metric = p.parsePoint(this.precision);
      if (metric !== undefined) {
        out.metrics.push(metric);
        out.lineIndexes.push(lineIndex);
      } else {
        out.rejectedCount++;
        if (out.rejected.length < this.maxListed) out.rejected.push({ index: lineIndex, reason: p.failure });
        // An unclosed quote would swallow the rest of the body: refuse its line alone instead.
        if (p.unterminated) {
          p.pos = start;
          p.line = lineIndex;
        }
        p.skipToEol();
      }
      p.newline();
    }
    return p.pos >= text.length;
  }
}

/** A cursor over the body; every `parse…` method leaves `pos` on the character that ended it. */
class Scanner {
  pos = 0;
  /** 0-based line number of `pos`. */
  line = 0;
  /** Why the last parsePoint() returned undefined. */
  failure = '';
  /** The last failure was a quoted string running to the end of the body. */
  unterminated = false;
  /**
   * Tag and field keys seen so far. Lines of a batch repeat their keys, and reusing the string
   * already used as a property key spares V8 re-internalising a fresh slice per line (about
   * half the parse time of a typical batch).
   */
  private readonly keys: string[] = [];

  constructor(private readonly s: string) {}

  /** Records why the point is refused; returns undefined for the caller to pass on. */
  private fail(reason: string, unterminated = false): undefined {
    this.failure = reason;
    this.unterminated = unterminated;
    return undefined;
  }

  /** Steps over the newline at `pos`, if any. */
  newline(): void {
    if (this.pos < this.s.length && this.s.charCodeAt(this.pos) === NL) {
      this.pos++;
      this.line++;
    }
  }

  skipBlanks(): void {
    const s = this.s;
    while (isBlank(s.charCodeAt(this.pos))) this.pos++;
  }

  skipToEol(): void {
    const nl = this.s.indexOf('\n', this.pos);
    this.pos = nl === -1 ? this.s.length : nl;
  }

  /** The point at `pos`, or undefined with `failure` set. */
  parsePoint(precision: LpPrecision): Metric | undefined {
    this.unterminated = false;
    const name = this.parseMeasurement();
    if (name === undefined) return undefined;
    let tags: Record<string, string> | undefined;
    while (this.s.charCodeAt(this.pos) === COMMA) {
      this.pos++;
      const key = this.parseKey('tag key', undefined, true);
      if (key === undefined) return undefined;
      // Messages are built only on failure: this is the hot path of every line.
      if (this.s.charCodeAt(this.pos) !== EQUALS) {
        return this.fail(`tag ${q(key)} has no "=" (write key=value; escape "," "=" and " " with "\\")`);
      }
      this.pos++;
      const value = this.parseKey('tag value', key);
      if (value === undefined) return undefined;
      tags ??= {};
      setOwn(tags, key, value);
    }
    if (!this.expectSeparator('a field set (e.g. "value=1") after the measurement and tags')) return undefined;
    const fields = this.parseFields();
    if (fields === undefined) return undefined;
    const afterFields = this.pos;
    let timestamp: number | undefined;
    this.skipBlanks();
    if (!this.atEol()) {
      if (this.pos === afterFields) {
        return this.fail(`unexpected character at column ${this.column()} after the fields; expected "," or a space`);
      }
      timestamp = this.parseTimestamp(precision);
      if (timestamp === undefined) return undefined;
      this.skipBlanks();
      if (!this.atEol()) return this.fail(`unexpected text after the timestamp at column ${this.column()}`);
    }
    const metric: Metric = { name, fields };
    if (tags) metric.tags = tags;
    if (timestamp !== undefined) metric.timestamp = timestamp;
    return metric;
  }

  private atEol(): boolean {
    return this.pos >= this.s.length || this.s.charCodeAt(this.pos) === NL;
  }

  private column(): number {
    const start = this.s.lastIndexOf('\n', this.pos - 1) + 1;
    return this.pos - start + 1;
  }

  /** One or more spaces/tabs between sections; false (with `failure`) when there is none. */
  private expectSeparator(what: string): boolean {
    const c = this.s.charCodeAt(this.pos);
    if (c !== SPACE && c !== TAB) {
      this.fail(this.pos >= this.s.length || c === NL || c === CR ? `missing ${what}` : `unexpected character at column ${this.column()}; expected ${what}`);
      return false;
    }
    this.skipBlanks();
    return true;
  }

  /** Measurement: ends at an unescaped "," or space; "\," and "\ " are escapes. */
  private parseMeasurement(): string | undefined {
    const s = this.s;
    const start = this.pos;
    let escaped = false;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (this.pos >= s.length || c === COMMA || c === SPACE || c === TAB || c === NL || c === CR) break;
      if (c === BACKSLASH && this.pos + 1 < s.length) {
        escaped = true;
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
    if (this.pos === start) return this.fail('missing measurement name at the start of the line');
    const raw = s.slice(start, this.pos);
    return escaped ? unescape(raw, MEASUREMENT_ESCAPES) : raw;
  }

  /** Tag keys, tag values and field keys: end at an unescaped ",", "=" or space. */
  private parseKey(what: string, tagKey?: string, isKey = false): string | undefined {
    const s = this.s;
    const start = this.pos;
    let escaped = false;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (this.pos >= s.length || c === COMMA || c === EQUALS || c === SPACE || c === TAB || c === NL || c === CR) break;
      if (c === BACKSLASH && this.pos + 1 < s.length) {
        escaped = true;
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
    if (this.pos === start) return this.fail(`empty ${what}${tagKey === undefined ? '' : ` of ${q(tagKey)}`} at column ${this.column()}`);
    if (isKey && !escaped) {
      const len = this.pos - start;
      for (const k of this.keys) if (k.length === len && sameText(s, start, k)) return k;
    }
    const raw = s.slice(start, this.pos);
    const key = escaped ? unescape(raw, KEY_ESCAPES) : raw;
    if (isKey && !escaped && this.keys.length < MAX_CACHED_KEYS) this.keys.push(key);
    return key;
  }

  private parseFields(): Record<string, FieldValue> | undefined {
    const fields: Record<string, FieldValue> = {};
    for (;;) {
      const key = this.parseKey('field key', undefined, true);
      if (key === undefined) return undefined;
      if (this.s.charCodeAt(this.pos) !== EQUALS) return this.fail(`field ${q(key)} has no "=" (write key=value)`);
      this.pos++;
      const value = this.parseFieldValue(key);
      if (value === undefined) return undefined;
      setOwn(fields, key, value);
      if (this.s.charCodeAt(this.pos) !== COMMA) break;
      this.pos++;
    }
    return fields;
  }

  private parseFieldValue(key: string): FieldValue | undefined {
    const s = this.s;
    if (s.charCodeAt(this.pos) === QUOTE) return this.parseString(key);
    const start = this.pos;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (this.pos >= s.length || c === COMMA || c === SPACE || c === TAB || c === NL || c === CR) break;
      this.pos++;
    }
    const raw = s.slice(start, this.pos);
    if (raw === '') return this.fail(`field ${q(key)} has no value`);
    const last = raw.charCodeAt(raw.length - 1);
    // 105 'i' (integer), 117 'u' (unsigned): InfluxDB's typed integers; both become numbers here.
    if ((last === 105 || last === 117) && INTEGER.test(raw.slice(0, -1))) {
      if (last === 117 && raw.charCodeAt(0) === 45) return this.fail(`field ${q(key)}: unsigned integer ${q(raw)} is negative`);
      return Number(raw.slice(0, -1));
    }
    const bool = BOOLEAN_VALUES.get(raw);
    if (bool !== undefined) return bool;
    if (FLOAT_VALUE.test(raw)) {
      const n = Number(raw);
      if (Number.isFinite(n)) return n;
      return this.fail(`field ${q(key)}: ${q(raw)} is out of range for a float`);
    }
    return this.fail(`field ${q(key)} has the value ${q(raw)}, which is not a number, an integer (123i), a boolean or a "quoted string"`);
  }

  /** A double-quoted string; `\"` and `\\` are escapes; it may contain newlines. */
  private parseString(key: string): string | undefined {
    const s = this.s;
    const start = ++this.pos;
    let escaped = false;
    for (;;) {
      if (this.pos >= s.length) return this.fail(`field ${q(key)}: the string value has no closing quote`, true);
      const c = s.charCodeAt(this.pos);
      if (c === QUOTE) break;
      if (c === BACKSLASH && this.pos + 1 < s.length) {
        escaped = true;
        if (s.charCodeAt(this.pos + 1) === NL) this.line++;
        this.pos += 2;
        continue;
      }
      if (c === NL) this.line++;
      this.pos++;
    }
    const raw = s.slice(start, this.pos);
    this.pos++;
    return escaped ? unescape(raw, STRING_ESCAPES) : raw;
  }

  /** Whole seconds from an integer timestamp in `precision`, cut (not rounded) exactly. */
  private parseTimestamp(precision: LpPrecision): number | undefined {
    const s = this.s;
    const start = this.pos;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (this.pos >= s.length || c === SPACE || c === TAB || c === NL || c === CR) break;
      this.pos++;
    }
    const raw = s.slice(start, this.pos);
    if (!INTEGER.test(raw)) {
      return this.fail(`timestamp ${q(raw)} is not an integer (the unit is set by ?precision=, default ns)`);
    }
    const seconds = toSeconds(raw, precision);
    // InfluxDB stores int64 nanoseconds: beyond that it refuses the point, so it is refused here,
    // before anything is acknowledged (the normaliser only replaces what it can: 0 and negatives).
    if (seconds > MAX_TIMESTAMP_SECONDS || seconds < -MAX_TIMESTAMP_SECONDS) {
      return this.fail(
        `timestamp ${q(raw)} at precision=${precision} is ${seconds} s, beyond the ±${MAX_TIMESTAMP_SECONDS} s InfluxDB can store (the year 2262); check ?precision=`,
      );
    }
    return seconds;
  }
}

const MAX_CACHED_KEYS = 32;
const INTEGER = /^[-+]?\d+$/;
const DROP_DIGITS: Record<LpPrecision, number> = { ns: 9, us: 6, ms: 3, s: 0, m: 0, h: 0 };

/**
 * Seconds from a timestamp's digits. Nanosecond timestamps exceed 2^53, so the sub-second digits
 * are cut off as text rather than divided as a float (which could round up into the next second).
 * Negative timestamps come out negative, and the normaliser replaces them with the current time.
 */
export function toSeconds(digits: string, precision: LpPrecision): number {
  const negative = digits.charCodeAt(0) === 45;
  const abs = negative || digits.charCodeAt(0) === 43 ? digits.slice(1) : digits;
  const drop = DROP_DIGITS[precision];
  let seconds = abs.length > drop ? Number(abs.slice(0, abs.length - drop)) : 0;
  if (precision === 'm') seconds *= 60;
  else if (precision === 'h') seconds *= 3600;
  return negative ? -seconds : seconds;
}

/** Whether `s` holds `k` at `at` (a hand loop: startsWith with a position is slow on V8 here). */
function sameText(s: string, at: number, k: string): boolean {
  for (let i = 0; i < k.length; i++) if (s.charCodeAt(at + i) !== k.charCodeAt(i)) return false;
  return true;
}
