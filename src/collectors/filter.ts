// Telegraf's name filters (`devices`, `interfaces`, …): a list of glob patterns, of which any may
// match. `*` any run of characters, `?` one character, `[abc]` / `[a-z]` / `[!abc]` one of (or
// none of) a set, `{a,b}` one of the alternatives; everything else is literal.

/** Why a pattern cannot be compiled, or undefined when it can. */
export function globProblem(pattern: string): string | undefined {
  try {
    globToRegExpSource(pattern);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export interface NameFilter {
  match(name: string): boolean;
}

/** A filter matching any of the patterns; throws on a pattern globProblem() refuses. */
/** A filter when patterns are given, else null (everything passes). */
export function optionalFilter(patterns: readonly string[] | undefined): NameFilter | null {
  return patterns && patterns.length > 0 ? compileFilter(patterns) : null;
}

export function compileFilter(patterns: readonly string[]): NameFilter {
  const exact = new Set<string>();
  const sources: string[] = [];
  for (const p of patterns) {
    if (/[*?[{]/.test(p)) sources.push(globToRegExpSource(p));
    else exact.add(p);
  }
  const re = sources.length > 0 ? new RegExp(`^(?:${sources.join('|')})$`, 'u') : null;
  return { match: (name) => exact.has(name) || (re !== null && re.test(name)) };
}

function globToRegExpSource(pattern: string): string {
  let out = '';
  let inBraces = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) throw new Error(`"${pattern}": "[" at position ${i + 1} is never closed`);
      let body = pattern.slice(i + 1, close);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, (x) => `\\${x}`)}]`;
      i = close;
    } else if (c === '{') {
      if (inBraces) throw new Error(`"${pattern}": "{" inside "{…}" is not supported`);
      inBraces = true;
      out += '(?:';
    } else if (c === '}' && inBraces) {
      inBraces = false;
      out += ')';
    } else if (c === ',' && inBraces) out += '|';
    else out += c.replace(/[.*+?^${}()|[\]\\/]/g, (x) => `\\${x}`);
  }
  if (inBraces) throw new Error(`"${pattern}": "{" is never closed`);
  return out;
}
