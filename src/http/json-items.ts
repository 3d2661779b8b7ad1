// The JSON body of /post and /api/push as a list of items, parsed with bounded work. A small
// body is one JSON.parse; a large array is cut into its items by a scan of its structure and
// each item is parsed alone, a slice at a time between turns of the event loop. One JSON.parse
// of a 16 MiB array of numbers held the event loop for 2.2 s and took 150 MB; here no single
// step parses more than one item, an item may hold at most MAX_ITEM_CHARS, and a body may hold
// at most `maxItems` items (413 beyond, found before the rest is parsed).
import { ApiError } from './envelope.ts';
import { runInSlices } from '../slices.ts';

export interface JsonItemsOptions {
  /** What a good body looks like, appended to every refusal. */
  hint: string;
  /** Items a body may hold; more is a 413. */
  maxItems: number;
  /** Milliseconds of parsing between two turns of the event loop. */
  sliceMs: number;
  /** Counts bodies refused for holding too many items. */
  onTooMany?: () => void;
}

/** Bodies up to this many characters are parsed in one go (a few ms at most). */
const WHOLE_PARSE_CHARS = 1024 * 1024;
/** No metric or push item is this large as JSON: its line would exceed what NSQ carries. */
export const MAX_ITEM_CHARS = 1024 * 1024;

const SPACE = 32;
const TAB = 9;
const NL = 10;
const CR = 13;
const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;

/** The body's items: an array as is, an object as a list of one. */
export async function readJsonItems(text: string, opts: JsonItemsOptions): Promise<unknown[]> {
  const first = skipSpace(text, 0);
  if (first >= text.length) throw new ApiError(400, `the body is empty: ${opts.hint}`);
  const c = text.charCodeAt(first);
  if (text.length <= WHOLE_PARSE_CHARS || (c !== OPEN_BRACKET && c !== OPEN_BRACE)) {
    const body = parseJson(text, opts.hint);
    if (Array.isArray(body)) {
      if (body.length === 0) throw new ApiError(400, `the body is an empty array: ${opts.hint}`);
      if (body.length > opts.maxItems) throw tooMany(opts);
      return body;
    }
    if (body !== null && typeof body === 'object') return [body];
    throw new ApiError(400, `the body is not a JSON array or object: ${opts.hint}`);
  }
  if (c === OPEN_BRACE) {
    throw new ApiError(413, `the body is one JSON object of ${text.length} characters, more than a metric can hold (${MAX_ITEM_CHARS}): ${opts.hint}`);
  }
  const splitter = new ArraySplitter(text, first + 1, opts);
  await runInSlices((n) => splitter.step(n), { sliceMs: opts.sliceMs, itemsPerCheck: 256 });
  if (splitter.items.length === 0) throw new ApiError(400, `the body is an empty array: ${opts.hint}`);
  return splitter.items;
}

/** JSON.parse that refuses "__proto__" keys, so no parsed body can carry a prototype. */
export function parseJson(text: string, hint: string): unknown {
  try {
    if (!text.includes('__proto__')) return JSON.parse(text);
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new SyntaxError('the key "__proto__" is not allowed');
      return value;
    });
  } catch (err) {
    throw new ApiError(400, `the body is not valid JSON (${(err as Error).message.slice(0, 200)}): ${hint}`);
  }
}

function tooMany(opts: JsonItemsOptions): ApiError {
  opts.onTooMany?.();
  return new ApiError(413, `the body holds more than ${opts.maxItems} items (http.maxPointsPerBody): send smaller batches`);
}

function skipSpace(text: string, pos: number): number {
  let c = text.charCodeAt(pos);
  while (c === SPACE || c === NL || c === CR || c === TAB) c = text.charCodeAt(++pos);
  return pos;
}

/**
 * Finds the items of a top-level array by its structure alone (strings, nesting), then parses
 * each with JSON.parse, which also catches whatever the scan let through.
 */
class ArraySplitter {
  readonly items: unknown[] = [];
  private done = false;

  constructor(
    private readonly text: string,
    private pos: number,
    private readonly opts: JsonItemsOptions,
  ) {}

  step(maxItems: number): boolean {
    const text = this.text;
    for (let n = 0; n < maxItems && !this.done; n++) {
      const start = skipSpace(text, this.pos);
      if (this.items.length === 0 && text.charCodeAt(start) === CLOSE_BRACKET) {
        this.end(start + 1);
        break;
      }
      const end = this.itemEnd(start);
      const index = this.items.length;
      if (end - start > MAX_ITEM_CHARS) {
        throw new ApiError(413, `item ${index} is ${end - start} characters of JSON, more than a metric can hold (${MAX_ITEM_CHARS}): ${this.opts.hint}`);
      }
      if (index >= this.opts.maxItems) throw tooMany(this.opts);
      const raw = text.slice(start, end);
      if (skipSpace(raw, 0) >= raw.length) this.invalid(`item ${index} is empty`);
      this.items.push(parseJson(raw, this.opts.hint));
      if (text.charCodeAt(end) === COMMA) this.pos = end + 1;
      else this.end(end + 1);
    }
    return this.done;
  }

  /** Where the item starting at `start` ends: its "," or the array's "]" at depth 0. */
  private itemEnd(start: number): number {
    const text = this.text;
    let depth = 0;
    let i = start;
    for (;;) {
      if (i >= text.length) this.invalid('the array is not closed');
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i = this.stringEnd(i + 1);
        continue;
      }
      if (c === OPEN_BRACKET || c === OPEN_BRACE) depth++;
      else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
        if (depth === 0) {
          if (c === CLOSE_BRACKET) return i;
          this.invalid(`an unexpected "}" at position ${i}`);
        }
        depth--;
      } else if (c === COMMA && depth === 0) return i;
      i++;
    }
  }

  /** Position after the closing quote of a string whose content starts at `from`. */
  private stringEnd(from: number): number {
    const text = this.text;
    let q = from;
    for (;;) {
      q = text.indexOf('"', q);
      if (q === -1) this.invalid('a string is not closed');
      let slashes = 0;
      while (text.charCodeAt(q - 1 - slashes) === BACKSLASH) slashes++;
      if (slashes % 2 === 0) return q + 1;
      q++;
    }
  }

  private end(after: number): void {
    this.done = true;
    if (skipSpace(this.text, after) < this.text.length) this.invalid(`unexpected text after the array at position ${after}`);
  }

  private invalid(what: string): never {
    throw new ApiError(400, `the body is not valid JSON (${what}): ${this.opts.hint}`);
  }
}
