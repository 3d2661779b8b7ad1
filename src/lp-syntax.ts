// InfluxDB line-protocol syntax in one place: the characters that structure a line, which ones a
// backslash escapes in each part of it, and the scans every reader of a line needs. Used by the
// ingest parser (points/parse-lp.ts), the normaliser's key checks (points/normalise.ts) and the
// sender's line reader (sender/line-protocol.ts). Pure functions and constants, no state.

/** Character codes the scanners compare against. */
export const LP_CHARS = {
  NL: 10,
  CR: 13,
  SPACE: 32,
  TAB: 9,
  COMMA: 44,
  EQUALS: 61,
  QUOTE: 34,
  BACKSLASH: 92,
  HASH: 35,
} as const;
const { SPACE, TAB, CR, COMMA, EQUALS, BACKSLASH } = LP_CHARS;

/** What a backslash escapes in a measurement name. */
export const MEASUREMENT_ESCAPES: ReadonlySet<string> = new Set([',', ' ', '\\']);
/** What a backslash escapes in a tag key, tag value or field key. */
export const KEY_ESCAPES: ReadonlySet<string> = new Set([',', '=', ' ', '\\']);
/** What a backslash escapes inside a double-quoted string field value. */
export const STRING_ESCAPES: ReadonlySet<string> = new Set(['"', '\\']);
/**
 * Every escape of any part, for readers that take names out of lines InfluxDB has already
 * accepted or refused (the sender): they need not know which part a name came from.
 */
export const ANY_ESCAPES: ReadonlySet<string> = new Set([...KEY_ESCAPES, ...STRING_ESCAPES]);

/** An unquoted float field value (InfluxDB's grammar; the value must also be finite). */
export const FLOAT_VALUE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Every spelling of an unquoted boolean field value. */
export const BOOLEAN_VALUES: ReadonlyMap<string, boolean> = new Map([
  ['t', true],
  ['T', true],
  ['true', true],
  ['True', true],
  ['TRUE', true],
  ['f', false],
  ['F', false],
  ['false', false],
  ['False', false],
  ['FALSE', false],
]);

/** Space, tab or carriage return: blanks around a line and between its sections. */
export function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === CR;
}

/** Drops the backslash before an escapable character; any other backslash stays (InfluxDB's rule). */
export function unescape(raw: string, escapable: ReadonlySet<string>): string {
  let out = '';
  let from = 0;
  for (let i = raw.indexOf('\\'); i !== -1 && i + 1 < raw.length; i = raw.indexOf('\\', i)) {
    const next = raw[i + 1] as string;
    if (escapable.has(next)) {
      out += raw.slice(from, i) + next;
      from = i + 2;
      i += 2;
    } else {
      i += 1;
    }
  }
  return out + raw.slice(from);
}

/**
 * The end of a line's series key (measurement and tags): the index of its first unescaped space,
 * or the line's length when there is none. `sections`, when given, receives where each comma-
 * separated part starts (`from` for the measurement, then one per tag).
 */
export function seriesKeyEnd(line: string, from: number, sections?: number[]): number {
  sections?.push(from);
  let i = from;
  for (; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === BACKSLASH) {
      i++;
      continue;
    }
    if (c === SPACE) return i;
    if (c === COMMA) sections?.push(i + 1);
  }
  return line.length;
}

/** The index of the "=" that ends the key of a `k=v` tag pair (its length when there is none). */
export function tagKeyEnd(tag: string): number {
  for (let i = 0; i < tag.length; i++) {
    const c = tag.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === EQUALS) return i;
  }
  return tag.length;
}
