// Just enough line-protocol reading for routing: split a body into lines the way InfluxDB does
// (a newline inside a quoted string field does not end a line) and take a line's series key
// (measurement + sorted tags) for the shard ring; and, for refusals the backend names by
// measurement and field or tag (not by line), which lines carry that field type or tag. The
// backend validates: these readers are lenient and never throw.

import { ANY_ESCAPES, LP_CHARS, isBlank, seriesKeyEnd, tagKeyEnd, unescape } from '../lp-syntax.ts';

// Local copies: splitLines reads every character of every body, and a local constant is cheaper
// there than an imported binding.
const { NL, SPACE, HASH, BACKSLASH, QUOTE, EQUALS, COMMA } = LP_CHARS;

/**
 * Splits a body into lines, dropping blank and `#` comment lines. Mirrors InfluxDB 1.x's
 * scanLine: in the fields section (after the first unescaped space) a `"` opened after a `=`
 * quotes until the next unescaped `"`, newlines included.
 */
export function splitLines(body: string): string[] {
  const buf = Buffer.from(body, 'utf8');
  const bounds = lineBounds(buf, 0, buf.length);
  const out: string[] = [];
  for (let k = 0; k < bounds.length; k += 2) out.push(buf.toString('utf8', bounds[k], bounds[k + 1]));
  return out;
}

/**
 * splitLines on bytes, without making strings: the data lines of buf[from, to) as start and end
 * offsets, in pairs (blanks around a line trimmed). UTF-8 never puts a byte below 0x80 inside a
 * multi-byte character, so the scan sees the same newlines, quotes and escapes a string scan does.
 */
export function lineBounds(buf: Uint8Array, from: number, to: number): Uint32Array {
  // Sized by the newlines first: one allocation, no growing array per message.
  let newlines = 0;
  for (let at = buf.indexOf(NL, from); at !== -1 && at < to; at = buf.indexOf(NL, at + 1)) newlines++;
  const out = new Uint32Array(2 * (newlines + 1));
  let n = 0;
  // Fast path: without quotes no newline can be quoted.
  const quote = buf.indexOf(QUOTE, from);
  if (quote === -1 || quote >= to) {
    let start = from;
    while (start <= to) {
      let end = buf.indexOf(NL, start);
      if (end === -1 || end > to) end = to;
      n = pushBounds(out, n, buf, start, end);
      start = end + 1;
    }
    return out.subarray(0, n);
  }
  let i = from;
  while (i < to) {
    const start = i;
    let fields = false;
    let quoted = false;
    let equals = 0;
    let commas = 0;
    while (i < to) {
      const c = buf[i] as number;
      if (c === BACKSLASH && i + 2 < to) {
        i += 2;
        continue;
      }
      if (c === SPACE) fields = true;
      if (fields) {
        if (!quoted && c === EQUALS) {
          equals++;
          i++;
          continue;
        }
        if (!quoted && c === COMMA) {
          commas++;
          i++;
          continue;
        }
        if (c === QUOTE && equals > commas) {
          quoted = !quoted;
          i++;
          continue;
        }
      }
      if (c === NL && !quoted) break;
      i++;
    }
    n = pushBounds(out, n, buf, start, i);
    i++;
  }
  return out.subarray(0, n);
}

/** Stores a line's trimmed bounds at out[n] unless it is blank or a comment; returns the next n. */
function pushBounds(out: Uint32Array, n: number, buf: Uint8Array, start: number, end: number): number {
  let s = start;
  while (s < end && isBlank(buf[s] as number)) s++;
  let e = end;
  while (e > s && isBlank(buf[e - 1] as number)) e--;
  if (e <= s || buf[s] === HASH) return n;
  out[n] = s;
  out[n + 1] = e;
  return n + 2;
}

/** True for a line that carries a point (not blank, not a `#` comment). */
export function isDataLine(line: string): boolean {
  let s = 0;
  while (s < line.length && isBlank(line.charCodeAt(s))) s++;
  return s < line.length && line.charCodeAt(s) !== HASH;
}

/**
 * The series key of a line: measurement and tags with the tags sorted by key (then value), as
 * written (escapes kept). Two lines of one series give the same key whatever their tag order.
 */
export function seriesKey(line: string): string {
  let s = 0;
  while (s < line.length && isBlank(line.charCodeAt(s))) s++;
  // The key ends at the first unescaped space; commas split measurement and tags.
  const parts: number[] = [];
  const i = seriesKeyEnd(line, s, parts);
  if (parts.length === 1) return line.slice(s, i);
  const tags: string[] = [];
  let sorted = true;
  for (let p = 1; p < parts.length; p++) {
    const tag = line.slice(parts[p] as number, p + 1 < parts.length ? (parts[p + 1] as number) - 1 : i);
    if (sorted && tags.length > 0 && compareTags(tags[tags.length - 1] as string, tag) > 0) sorted = false;
    tags.push(tag);
  }
  if (sorted) return line.slice(s, i);
  tags.sort(compareTags);
  return `${line.slice(s, (parts[1] as number) - 1)},${tags.join(',')}`;
}

/** Orders `k=v` tag pairs by key, then value, byte-wise as InfluxDB does. */
function compareTags(a: string, b: string): number {
  const ka = tagKeyEnd(a);
  const kb = tagKeyEnd(b);
  const keyA = a.slice(0, ka);
  const keyB = b.slice(0, kb);
  if (keyA !== keyB) return keyA < keyB ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export type FieldType = 'float' | 'integer' | 'unsigned' | 'string' | 'boolean';

/** Measurement, tag keys and field keys with their value types, unescaped (as InfluxDB names them). */
export interface LineShape {
  measurement: string;
  tags: Map<string, string>;
  fields: Map<string, FieldType>;
}

/** Reads a line's shape; undefined when it has no fields section. */
export function lineShape(line: string): LineShape | undefined {
  let i = 0;
  while (i < line.length && isBlank(line.charCodeAt(i))) i++;
  // Key: measurement, then ,k=v pairs, up to the first unescaped space.
  const starts: number[] = [];
  i = seriesKeyEnd(line, i, starts);
  if (i >= line.length) return undefined;
  const keyParts = starts.map((start, p) => line.slice(start, p + 1 < starts.length ? (starts[p + 1] as number) - 1 : i));
  const measurement = unescape(keyParts[0] ?? '', ANY_ESCAPES);
  const tags = new Map<string, string>();
  for (const pair of keyParts.slice(1)) {
    const eq = tagKeyEnd(pair);
    tags.set(unescape(pair.slice(0, eq), ANY_ESCAPES), unescape(pair.slice(eq + 1), ANY_ESCAPES));
  }
  const fields = new Map<string, FieldType>();
  i++;
  while (i < line.length) {
    const keyStart = i;
    while (i < line.length && line.charCodeAt(i) !== EQUALS) i += line.charCodeAt(i) === BACKSLASH ? 2 : 1;
    const key = unescape(line.slice(keyStart, i), ANY_ESCAPES);
    i++;
    if (line.charCodeAt(i) === QUOTE) {
      for (i++; i < line.length && line.charCodeAt(i) !== QUOTE; i++) if (line.charCodeAt(i) === BACKSLASH) i++;
      i++;
      fields.set(key, 'string');
    } else {
      const valueStart = i;
      while (i < line.length && line.charCodeAt(i) !== COMMA && line.charCodeAt(i) !== SPACE) i++;
      fields.set(key, valueType(line.slice(valueStart, i)));
    }
    if (line.charCodeAt(i) !== COMMA) break;
    i++;
  }
  return { measurement, tags, fields };
}

function valueType(v: string): FieldType {
  if (/^(t|T|true|True|TRUE|f|F|false|False|FALSE)$/.test(v)) return 'boolean';
  if (v.endsWith('i')) return 'integer';
  if (v.endsWith('u')) return 'unsigned';
  return 'float';
}
