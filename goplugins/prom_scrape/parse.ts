// A parser for the Prometheus text exposition format (0.0.4, and the OpenMetrics lines an
// exporter may add): samples with their labels, values and timestamps, plus HELP and TYPE.
// Pure: text in, samples out; a bad line is reported with its number and skipped, never fatal.
// Also reads Prometheus 3's quoted UTF-8 names: {"my.metric", "my.label"="v"}.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  /** May be NaN or ±Infinity: the caller decides what to do with them. */
  value: number;
  /** Milliseconds since the epoch, when the exporter gave one. */
  timestampMs?: number;
}

export interface Exposition {
  samples: Sample[];
  /** Metric family → counter, gauge, histogram, summary, untyped (… as declared by # TYPE). */
  types: Map<string, string>;
  help: Map<string, string>;
  /** "line N: why", at most `maxErrors` of them. */
  errors: string[];
  errorCount: number;
  /** Samples beyond maxSamples, not returned. */
  overLimit: number;
}

export interface ParseOptions {
  maxSamples?: number;
  maxErrors?: number;
}

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_START = /[a-zA-Z_]/;
const LABEL_CHAR = /[a-zA-Z0-9_]/;

class LineError extends Error {}

export function parseExposition(text: string, opts: ParseOptions = {}): Exposition {
  const maxSamples = opts.maxSamples ?? Infinity;
  const maxErrors = opts.maxErrors ?? 20;
  const out: Exposition = { samples: [], types: new Map(), help: new Map(), errors: [], errorCount: 0, overLimit: 0 };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] as string;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const trimmed = line.trim();
    if (trimmed === '') continue;
    try {
      if (trimmed.startsWith('#')) {
        if (trimmed === '# EOF') break;
        parseComment(trimmed, out);
        continue;
      }
      const sample = parseSample(trimmed);
      if (out.samples.length >= maxSamples) out.overLimit++;
      else out.samples.push(sample);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      out.errorCount++;
      if (out.errors.length < maxErrors) out.errors.push(`line ${i + 1}: ${err.message}`);
    }
  }
  return out;
}

/** `# HELP name text` and `# TYPE name type`; any other comment is ignored. */
function parseComment(line: string, out: Exposition): void {
  const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
  if (!m) return;
  const [, kind, rawName = '', rest = ''] = m;
  const name = rawName.startsWith('"') ? unquoteName(rawName) : rawName;
  if (kind === 'HELP') {
    out.help.set(name, unescapeHelp(rest));
  } else {
    const type = rest.trim().toLowerCase();
    if (!['counter', 'gauge', 'histogram', 'summary', 'untyped', 'gaugehistogram', 'info', 'stateset', 'unknown'].includes(type)) {
      throw new LineError(`unknown metric type ${JSON.stringify(rest.trim())} for ${name}`);
    }
    out.types.set(name, type);
  }
}

function unquoteName(raw: string): string {
  const r = new Reader(raw);
  return r.quoted();
}

/** HELP text escapes only "\\" and "\n". */
function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}

function parseSample(line: string): Sample {
  const r = new Reader(line);
  let name = '';
  const labels: Record<string, string> = {};
  if (r.peek() !== '{') name = r.name(NAME_START, NAME_CHAR, 'metric name');
  let blank = r.blanks();
  if (r.peek() === '{') {
    r.next();
    let first = true;
    for (;;) {
      r.blanks();
      if (r.peek() === '}') {
        r.next();
        break;
      }
      if (!first) {
        r.expect(',');
        r.blanks();
        if (r.peek() === '}') {
          r.next();
          break;
        }
      }
      first = false;
      // Prometheus 3: a bare quoted string in the braces is the metric name.
      if (r.peek() === '"') {
        const quoted = r.quoted();
        r.blanks();
        if (r.peek() !== '=') {
          if (name !== '') throw new LineError('two metric names');
          name = quoted;
          continue;
        }
        r.next();
        addLabel(labels, quoted, readLabelValue(r));
        continue;
      }
      const label = r.name(LABEL_START, LABEL_CHAR, 'label name');
      r.blanks();
      r.expect('=');
      addLabel(labels, label, readLabelValue(r));
    }
    blank = r.blanks();
  }
  if (name === '') throw new LineError('no metric name');
  if (!blank) throw new LineError(`expected a blank before the value of ${name}`);
  const value = parseValue(r.token());
  const sample: Sample = { name, labels, value };
  if (r.blanks() && !r.done()) {
    const ts = Number(r.token());
    if (!Number.isFinite(ts)) throw new LineError(`timestamp of ${name} is not a number`);
    sample.timestampMs = ts;
  }
  r.blanks();
  if (!r.done()) throw new LineError(`unexpected text after the sample of ${name}`);
  return sample;
}

function readLabelValue(r: Reader): string {
  r.blanks();
  return r.quoted();
}

function addLabel(labels: Record<string, string>, name: string, value: string): void {
  if (Object.hasOwn(labels, name)) throw new LineError(`label ${name} appears twice`);
  labels[name] = value;
}

/** Go's ParseFloat as Prometheus uses it: decimals, exponents, NaN, ±Inf. */
export function parseValue(token: string): number {
  if (token === '') throw new LineError('missing value');
  if (/^[+-]?inf(inity)?$/i.test(token)) return token.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(token)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(token) && !/^[+-]?0[xX][0-9a-fA-F]+$/.test(token)) {
    throw new LineError(`value ${JSON.stringify(token)} is not a number`);
  }
  const sign = token.startsWith('-') ? -1 : 1;
  const body = token.replace(/^[+-]/, '');
  return sign * Number(body);
}

class Reader {
  private i = 0;
  constructor(private readonly s: string) {}

  peek(): string | undefined {
    return this.s[this.i];
  }

  next(): string | undefined {
    return this.s[this.i++];
  }

  done(): boolean {
    return this.i >= this.s.length;
  }

  /** Skips blanks and tabs; true when there were some. */
  blanks(): boolean {
    const start = this.i;
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
    return this.i > start;
  }

  expect(ch: string): void {
    if (this.s[this.i] !== ch) throw new LineError(`expected ${JSON.stringify(ch)} at column ${this.i + 1}, found ${this.s[this.i] === undefined ? 'the end of the line' : JSON.stringify(this.s[this.i])}`);
    this.i++;
  }

  name(start: RegExp, rest: RegExp, what: string): string {
    const from = this.i;
    if (!start.test(this.s[this.i] ?? '')) throw new LineError(`bad ${what} at column ${this.i + 1}`);
    this.i++;
    while (rest.test(this.s[this.i] ?? '')) this.i++;
    return this.s.slice(from, this.i);
  }

  /** A double-quoted string with \\, \" and \n escapes. */
  quoted(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      const ch = this.s[this.i++];
      if (ch === undefined) throw new LineError('unterminated quoted string');
      if (ch === '"') return out;
      if (ch === '\\') {
        const esc = this.s[this.i++];
        if (esc === 'n') out += '\n';
        else if (esc === '\\' || esc === '"') out += esc;
        else if (esc === undefined) throw new LineError('unterminated quoted string');
        else out += `\\${esc}`; // not an escape Prometheus knows: kept as written
      } else {
        out += ch;
      }
    }
  }

  /** Up to the next blank. */
  token(): string {
    const from = this.i;
    while (this.i < this.s.length && this.s[this.i] !== ' ' && this.s[this.i] !== '\t') this.i++;
    return this.s.slice(from, this.i);
  }
}
