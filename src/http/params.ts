// Request parameters, validated at the edge. The replaced agent read everything from the query
// string (GET or POST alike); here a POST may also carry them in a form or JSON body. Every
// refusal is an ApiError whose message names the parameter and the fix.
import type { Context } from 'koa';
import { parsedBody } from './body.ts';
import { ApiError } from './envelope.ts';

const MAX_VALUE_CHARS = 4096;
/** No namespace is longer (NSQ topics are mapped from them; see the README). */
export const MAX_NAMESPACE_CHARS = 256;
const MALFORMED_ESCAPE = /%(?![0-9a-fA-F]{2})/;

export class Params {
  constructor(private readonly ctx: Context) {}

  /** Every value given for `name`: query string first, then a form or JSON body's field. */
  all(name: string): string[] {
    const out: string[] = [];
    if (MALFORMED_ESCAPE.test(this.ctx.querystring)) {
      throw new ApiError(400, 'the query string has a "%" that is not followed by two hex digits: percent-encode the values (a "%" itself is %25)');
    }
    // "ns[]=a" or "ns[0]=a" (PHP and qs array syntax) is another key to koa: refused rather than
    // silently read as "no ns" (which, for /plugins/list, would answer for every namespace).
    for (const key in this.ctx.query) {
      if (key.length > name.length && key.startsWith(name) && key.charCodeAt(name.length) === 91) {
        throw new ApiError(400, `"${key.slice(0, 40)}" is not read: give "${name}" once, as ${name}=value`);
      }
    }
    push(out, name, this.ctx.query[name]);
    const fields = parsedBody(this.ctx).fields;
    if (fields !== undefined && Object.hasOwn(fields, name)) push(out, name, fields[name]);
    return out;
  }

  /** At most one value; an empty value counts as absent. */
  optional(name: string): string | undefined {
    const values = this.all(name);
    if (values.length > 1) throw new ApiError(400, `"${name}" was given ${values.length} times; give it once`);
    const v = values[0];
    return v === '' ? undefined : v;
  }

  required(name: string, what: string): string {
    const v = this.optional(name);
    if (v === undefined) throw new ApiError(400, `"${name}" is required: ${what}`);
    return v;
  }

  /** A namespace, `ns` unless named otherwise: at most MAX_NAMESPACE_CHARS, no control characters. */
  namespace(required: true, what: string): string;
  namespace(required: false): string | undefined;
  namespace(required: boolean, what = ''): string | undefined {
    const ns = required ? this.required('ns', what) : this.optional('ns');
    if (ns !== undefined && ns.length > MAX_NAMESPACE_CHARS) throw new ApiError(400, `"ns" is longer than ${MAX_NAMESPACE_CHARS} characters; no namespace is`);
    return ns;
  }

  /** A whole decimal number in [min, max], or `fallback` when absent. */
  integer(name: string, opts: { min: number; max: number; unit: string }): number | undefined {
    const raw = this.optional(name);
    if (raw === undefined) return undefined;
    const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= opts.min && n <= opts.max)) {
      throw new ApiError(
        400,
        `"${name}" must be a whole number of ${opts.unit} from ${opts.min} to ${opts.max}, got ${JSON.stringify(raw.slice(0, 40))}`,
      );
    }
    return n;
  }
}

function push(out: string[], name: string, value: unknown): void {
  if (value === undefined || value === null) return;
  const values = Array.isArray(value) ? value : [value];
  for (const v of values) {
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out.push(String(v));
    else throw new ApiError(400, `"${name}" must be a string`);
    const last = out[out.length - 1] as string;
    if (last.length > MAX_VALUE_CHARS) throw new ApiError(400, `"${name}" is longer than ${MAX_VALUE_CHARS} characters`);
    if (hasControlChars(last)) throw new ApiError(400, `"${name}" contains control characters`);
  }
}

/** C0 controls other than tab and newline, and DEL: never part of a name, path or argument. */
function hasControlChars(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9 && c !== 10) || c === 127) return true;
  }
  return false;
}
