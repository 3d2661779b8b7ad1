// Request parameters, validated at the edge. The replaced agent read everything from the query
// string (GET or POST alike); here a POST may also carry them in a form or JSON body. Every
// refusal is an ApiError whose message names the parameter and the fix.
import type { Context } from 'koa';
import { parsedBody } from './body.ts';
import { ApiError } from './envelope.ts';

const MAX_VALUE_CHARS = 4096;

export class Params {
  constructor(private readonly ctx: Context) {}

  /** Every value given for `name`: query string first, then a form or JSON body's field. */
  all(name: string): string[] {
    const out: string[] = [];
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
