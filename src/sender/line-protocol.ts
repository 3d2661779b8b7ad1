// Just enough line-protocol reading for routing: split a body into lines the way InfluxDB does
// (a newline inside a quoted string field does not end a line) and take a line's series key
// (measurement + sorted tags) for the shard ring. No field parsing: the backend validates.

const NL = 10; // \n
const CR = 13; // \r
const SPACE = 32;
const TAB = 9;
const HASH = 35; // #
const BACKSLASH = 92;
const QUOTE = 34; // "
const EQUALS = 61;
const COMMA = 44;

/**
 * Splits a body into lines, dropping blank and `#` comment lines. Mirrors InfluxDB 1.x's
 * scanLine: in the fields section (after the first unescaped space) a `"` opened after a `=`
 * quotes until the next unescaped `"`, newlines included.
 */
export function splitLines(body: string): string[] {
  const out: string[] = [];
  // Fast path: without quotes no newline can be quoted.
  if (body.indexOf('"') === -1) {
    let start = 0;
    while (start <= body.length) {
      let end = body.indexOf('\n', start);
      if (end === -1) end = body.length;
      pushLine(out, body, start, end);
      start = end + 1;
    }
    return out;
  }
  let i = 0;
  const n = body.length;
  while (i < n) {
    const start = i;
    let fields = false;
    let quoted = false;
    let equals = 0;
    let commas = 0;
    while (i < n) {
      const c = body.charCodeAt(i);
      if (c === BACKSLASH && i + 2 < n) {
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
    pushLine(out, body, start, i);
    i++;
  }
  return out;
}

function pushLine(out: string[], body: string, start: number, end: number): void {
  let s = start;
  while (s < end && isBlank(body.charCodeAt(s))) s++;
  let e = end;
  while (e > s && isBlank(body.charCodeAt(e - 1))) e--;
  if (e <= s || body.charCodeAt(s) === HASH) return;
  out.push(s === start && e === end ? body.slice(start, end) : body.slice(s, e));
}

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === CR;
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
  const parts: number[] = [s];
  let i = s;
  for (; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === BACKSLASH) {
      i++;
      continue;
    }
    if (c === SPACE) break;
    if (c === COMMA) parts.push(i + 1);
  }
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

function tagKeyEnd(tag: string): number {
  for (let i = 0; i < tag.length; i++) {
    const c = tag.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === EQUALS) return i;
  }
  return tag.length;
}
