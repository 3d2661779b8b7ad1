// One wording for validation errors wherever input is checked with zod (the config file, the
// registry's answers): the JSON path, what was found, what is expected.
import type { ZodIssue } from 'zod';

/** `$.plugins["demo.web"][0].interval`: keys that are not identifiers are quoted. */
export function formatPath(at: string, segments: ReadonlyArray<string | number>): string {
  return segments.reduce<string>(
    (acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : /^[A-Za-z_$][\w$]*$/.test(s) ? `${acc}.${s}` : `${acc}[${JSON.stringify(s)}]`),
    at,
  );
}

export interface DescribeOptions {
  /** Root of the path, `$` by default. */
  at?: string;
  /** Said after an unknown key, e.g. where the valid keys are documented. */
  unknownKeyHint?: string;
}

export function describeZodIssue(issue: ZodIssue, opts: DescribeOptions = {}): string {
  const where = formatPath(opts.at ?? '$', issue.path);
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined'
        ? `${where}: required ${issue.expected} is missing`
        : `${where}: found ${issue.received}, expected ${issue.expected}`;
    case 'unrecognized_keys': {
      const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
      return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}${opts.unknownKeyHint ? ` (${opts.unknownKeyHint})` : ''}`;
    }
    case 'invalid_enum_value':
      return `${where}: found ${JSON.stringify(issue.received)}, expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
    case 'too_small':
      if (issue.type === 'number') return `${where}: must be ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}`;
      return `${where}: ${issue.message.toLowerCase()}`;
    case 'too_big':
      if (issue.type === 'number') return `${where}: must be ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}`;
      if (issue.type === 'array') return `${where}: at most ${String(issue.maximum)} entries`;
      return `${where}: ${issue.message.toLowerCase()}`;
    default:
      return `${where}: ${issue.message}`;
  }
}
