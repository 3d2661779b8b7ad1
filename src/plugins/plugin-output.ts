// Turns a plugin's stdout into the metrics it meant to publish: a JSON array of metrics (a single
// metric object is taken as an array of one; empty output is no metrics). Each metric is
// validated alone later, by the MetricSink; here only the outer shape is checked.

export type PluginOutput = { ok: true; metrics: unknown[] } | { ok: false; error: string };

export function parsePluginOutput(stdout: Buffer | string): PluginOutput {
  const text = (typeof stdout === 'string' ? stdout : stdout.toString('utf8')).trim();
  if (text === '') return { ok: true, metrics: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `stdout is not JSON (${(err as Error).message}); it begins ${quoteStart(text)}` };
  }
  if (Array.isArray(parsed)) return { ok: true, metrics: parsed };
  if (parsed !== null && typeof parsed === 'object') return { ok: true, metrics: [parsed] };
  return { ok: false, error: `stdout must be a JSON array of metrics, found ${parsed === null ? 'null' : typeof parsed}; it begins ${quoteStart(text)}` };
}

function quoteStart(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
