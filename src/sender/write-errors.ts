// Reading InfluxDB's answers to a write: which HTTP outcomes are retryable, how long
// Retry-After asks us to wait (in seconds, as RFC 9110 has it, not the client library's
// milliseconds), and which lines a 400 names as unparsable.
//
// InfluxDB 1.x (checked on 1.6.7 and 1.8.10, /write and /api/v2/write alike):
//   some lines bad:  400 {"error":"partial write: unable to parse '<line>': <why>\nunable to parse '<line>': <why> dropped=0"}
//                    (the other lines were written)
//   all lines bad:   400 {"error":"unable to parse '<line>': <why>\n…"} (nothing written)
//   type conflict:   400 {"error":"partial write: field type conflict: input field \"f\" on measurement \"m\" is type float, already exists as type integer dropped=N"}
//                    (only the first conflict is named; N counts every refused point; the other points were written;
//                    a parse error in the same body is not mentioned at all)
//   tag values:      400 {"error":"partial write: max-values-per-tag limit exceeded (12/10): measurement=\"m\" tag=\"host\" value=\"x1\" dropped=N"}
//                    (points adding a new value to a full tag are refused, the first one is named)
//   no database:     404 {"error":"database not found: \"<db>\""}
//   no such rp:      500 {"error":"retention policy not found: <rp>"}

export interface WriteErrorReport {
  /** "partial write: …": lines other than the rejected ones were written. */
  partial: boolean;
  /** `dropped=N` at the end, when present (points refused after parsing, unnamed). */
  dropped: number | undefined;
  /** Each `unable to parse '<line>': <why>` entry, in order; `line` may be ambiguous, see matchRejectedLines. */
  unparsable: string[];
  /** Nothing but parse errors (besides `dropped=0`): the named lines are all that was refused. */
  onlyParseErrors: boolean;
  /** The first field-type conflict, as named (InfluxDB names no more than one per answer). */
  typeConflict: { measurement: string; field: string; type: string } | undefined;
  /** The first max-values-per-tag refusal, as named. */
  tagLimit: { measurement: string; tag: string; value: string } | undefined;
}

/** What an answer refused for, to group refusals in the log: one warning per kind and namespace. */
export type RefusalKind = 'unparsable' | 'field-type-conflict' | 'max-values-per-tag' | 'other';

export function refusalKind(report: WriteErrorReport): RefusalKind {
  if (report.typeConflict) return 'field-type-conflict';
  if (report.tagLimit) return 'max-values-per-tag';
  if (report.unparsable.length > 0) return 'unparsable';
  return 'other';
}

// Field and measurement names are printed unquoted (a `"` in them makes this ambiguous: a wrong
// guess only costs a request, as every guess is confirmed by writing the lines alone).
const TYPE_CONFLICT = /field type conflict: input field "(.*?)" on measurement "(.*)" is type (\w+), already exists as type \w+/s;
// Printed with Go's %q.
const TAG_LIMIT = /max-values-per-tag limit exceeded \(\d+\/\d+\): measurement=("(?:[^"\\]|\\.)*") tag=("(?:[^"\\]|\\.)*") value=("(?:[^"\\]|\\.)*")/s;

const PARSE_PREFIX = "unable to parse '";
const PARTIAL_PREFIX = 'partial write: ';

export function readWriteError(message: string): WriteErrorReport {
  let text = message;
  const partial = text.startsWith(PARTIAL_PREFIX);
  if (partial) text = text.slice(PARTIAL_PREFIX.length);
  let dropped: number | undefined;
  const m = / dropped=(\d+)$/.exec(text);
  if (m) {
    dropped = Number(m[1]);
    text = text.slice(0, m.index);
  }
  const unparsable: string[] = [];
  let pos = text.indexOf(PARSE_PREFIX);
  const onlyParseErrors = pos === 0 && (dropped === undefined || dropped === 0);
  while (pos !== -1) {
    const next = text.indexOf(`\n${PARSE_PREFIX}`, pos + PARSE_PREFIX.length);
    unparsable.push(text.slice(pos, next === -1 ? undefined : next));
    pos = next === -1 ? -1 : next + 1;
  }
  const tc = TYPE_CONFLICT.exec(text);
  const typeConflict = tc ? { field: tc[1] as string, measurement: tc[2] as string, type: tc[3] as string } : undefined;
  const tl = TAG_LIMIT.exec(text);
  let tagLimit: WriteErrorReport['tagLimit'];
  if (tl) {
    try {
      tagLimit = { measurement: goUnquote(tl[1] as string), tag: goUnquote(tl[2] as string), value: goUnquote(tl[3] as string) };
    } catch {
      tagLimit = undefined;
    }
  }
  return { partial, dropped, unparsable, onlyParseErrors, typeConflict, tagLimit };
}

/** A Go %q string; JSON's escapes cover what %q prints for printable text (\xNN is rare enough to fail). */
function goUnquote(quoted: string): string {
  return JSON.parse(quoted) as string;
}

/**
 * Indexes of the batch lines that the error names as unparsable, each with its reason. A line
 * may itself contain "': " or a newline, so every candidate cut is tried against the batch.
 */
export function matchRejectedLines(lines: readonly string[], report: WriteErrorReport): Map<number, string> {
  const matched = new Map<number, string>();
  if (report.unparsable.length === 0) return matched;
  const byText = new Map<string, number[]>();
  lines.forEach((line, i) => {
    const key = line.trimStart();
    const list = byText.get(key);
    if (list) list.push(i);
    else byText.set(key, [i]);
  });
  const joined = report.unparsable.join('\n');
  // Entries were split on "\n" + prefix, which a quoted newline inside a line could fake: search
  // the joined text instead, trying each "': " after every prefix occurrence.
  let pos = joined.indexOf(PARSE_PREFIX);
  while (pos !== -1) {
    const from = pos + PARSE_PREFIX.length;
    let cut = joined.indexOf("': ", from);
    let resumeAt = from;
    for (let tries = 0; cut !== -1 && tries < 64; tries++) {
      const hits = byText.get(joined.slice(from, cut));
      const free = hits?.find((i) => !matched.has(i));
      if (free !== undefined) {
        const end = joined.indexOf(`\n${PARSE_PREFIX}`, cut);
        matched.set(free, joined.slice(cut + 3, end === -1 ? undefined : end));
        resumeAt = cut;
        break;
      }
      cut = joined.indexOf("': ", cut + 1);
    }
    pos = joined.indexOf(PARSE_PREFIX, resumeAt);
  }
  return matched;
}

/**
 * Milliseconds a Retry-After header asks for: delay-seconds (integer, or decimal as some
 * proxies send) or an HTTP-date. undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | string[] | undefined, now: number): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
