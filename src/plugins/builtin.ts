// Helpers for built-in plugins (goplugins/): params declared as a zod schema and checked with a
// sentence that names the param and the fix, and the `key=value` form on-demand runs use.
import type { z } from 'zod';
import { mapLimited } from '../concurrency.ts';
import type { Metric } from '../points/metric.ts';
import type { BuiltinPluginContext, BuiltinPluginFn } from './types.ts';

/** Bad params of a built-in plugin; the message names each bad param. */
export class ParamsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParamsError';
  }
}

/** A built-in plugin whose params are parsed by `schema` before `run` sees them. */
export function builtinPlugin<S extends z.ZodTypeAny>(
  schema: S,
  run: (params: z.output<S>, ctx: BuiltinPluginContext) => Promise<Metric[]>,
): BuiltinPluginFn {
  const parse = (raw: Record<string, unknown>): z.output<S> => {
    const result = schema.safeParse(raw);
    if (!result.success) throw new ParamsError(describeParamIssues(result.error));
    return result.data as z.output<S>;
  };
  const fn = async (raw: Record<string, unknown>, ctx: BuiltinPluginContext) => run(parse(raw), ctx);
  return Object.assign(fn, {
    checkParams: (raw: Record<string, unknown>) => {
      parse(raw);
    },
  });
}

export function describeParamIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? `param "${issue.path.join('.')}"` : 'params';
      if (issue.code === 'invalid_type' && issue.received === 'undefined') return `${where} is required`;
      if (issue.code === 'unrecognized_keys') return `unknown param${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      return `${where}: ${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)}`;
    })
    .join('; ');
}

/**
 * On-demand runs pass params as strings (`param=` in the query); for a built-in plugin each is
 * `key=value`, the value read as JSON when it parses (numbers, booleans, arrays), else a string.
 */
export function paramsFromArgs(args: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new ParamsError(`param ${JSON.stringify(arg)} must be key=value for a built-in plugin`);
    const key = arg.slice(0, eq);
    const text = arg.slice(eq + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // a plain string
    }
    out[key] = value;
  }
  return out;
}

/**
 * Probes every target with at most `concurrency` at once and returns their metrics in target
 * order: the shape of every multi-target built-in plugin (url/urls, address/addresses).
 */
export async function probeAll<T>(
  targets: readonly T[],
  concurrency: number,
  probe: (target: T) => Promise<Metric[]>,
): Promise<Metric[]> {
  return (await mapLimited(targets, concurrency, probe)).flat();
}
