// prom_scrape: reads an exporter's Prometheus /metrics page and turns each sample into a metric
// (name = the sample's name, tags = its labels plus `url`). The body is size-bounded, samples
// are counted and bounded, and values InfluxDB cannot store (NaN, ±Inf) are dropped and counted.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import type { Metric } from '../../src/points/metric.ts';
import { builtinPlugin, probeAll } from '../../src/plugins/builtin.ts';
import type { BuiltinPluginContext } from '../../src/plugins/types.ts';
import { classifyNetError } from '../net-errors.ts';
import { parseExposition } from './parse.ts';

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL');

export const promScrapeParams = z
  .object({
    url: httpUrl.optional(),
    urls: z.array(httpUrl).min(1).max(100).optional(),
    /** Per scrape; default: the run's timeout. */
    timeoutMs: z.number().int().min(1).optional(),
    maxBodyBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    maxSamples: z.number().int().min(1).default(100_000),
    /** Keep only samples whose name starts with one of these. */
    include: z.array(z.string().min(1)).optional(),
    headers: z.record(z.string()).optional(),
    tlsVerify: z.boolean().default(true),
    /** PEM file of the CA that signed the exporter's certificate. */
    caFile: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(64).default(4),
  })
  .strict()
  .refine((p) => (p.url === undefined) !== (p.urls === undefined), { message: 'give either "url" or "urls"' });

export type PromScrapeParams = z.output<typeof promScrapeParams>;

/** Labels renamed so they cannot replace the tags this plugin and the agent set. */
const RESERVED_LABELS = new Set(['url', 'host']);

export const promScrape = builtinPlugin(promScrapeParams, async (params, ctx) => {
  const urls = params.urls ?? [params.url as string];
  const ca = params.caFile ? await readFile(params.caFile) : undefined;
  return probeAll(urls, params.concurrency, (target) => scrape(target, params, ca, ctx));
});

async function scrape(url: string, p: PromScrapeParams, ca: Buffer | undefined, ctx: BuiltinPluginContext): Promise<Metric[]> {
  const started = performance.now();
  const tags = { url };
  const out: Metric[] = [];
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(p.timeoutMs ?? ctx.timeoutMs)]);
  let body: string;
  try {
    body = await fetchText(url, p, ca, signal);
  } catch (err) {
    ctx.logger.debug({ url, err: (err as Error).message }, 'prom_scrape: scrape failed');
    return [
      { name: 'scrape_up', tags: { ...tags, error: classify(err) }, value: 0 },
      { name: 'scrape_duration_ms', tags, value: performance.now() - started },
    ];
  }
  const exposition = parseExposition(body, { maxSamples: p.maxSamples });
  let dropped = 0;
  for (const s of exposition.samples) {
    if (p.include && !p.include.some((prefix) => s.name.startsWith(prefix))) continue;
    if (!Number.isFinite(s.value)) {
      dropped++;
      continue;
    }
    const sampleTags: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.labels)) {
      // An empty label value is the same as no label in Prometheus; InfluxDB refuses empty tags.
      if (v === '') continue;
      sampleTags[RESERVED_LABELS.has(k) ? `exported_${k}` : k] = v;
    }
    sampleTags.url = url;
    const m: Metric = { name: s.name, tags: sampleTags, value: s.value };
    if (s.timestampMs !== undefined) m.timestamp = Math.floor(s.timestampMs / 1000);
    out.push(m);
  }
  if (exposition.errorCount > 0) {
    ctx.logger.debug({ url, errors: exposition.errors.slice(0, 3), count: exposition.errorCount }, 'prom_scrape: lines skipped');
  }
  out.push(
    { name: 'scrape_up', tags: { ...tags, error: 'none' }, value: 1 },
    { name: 'scrape_duration_ms', tags, value: performance.now() - started },
    { name: 'scrape_samples', tags, value: out.length },
    { name: 'scrape_dropped', tags, value: dropped + exposition.overLimit },
    { name: 'scrape_parse_errors', tags, value: exposition.errorCount },
  );
  return out;
}

class BodyTooLarge extends Error {}
class HttpStatusError extends Error {}

function fetchText(url: string, p: PromScrapeParams, ca: Buffer | undefined, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const mod = target.protocol === 'https:' ? https : http;
    const req = mod.request(
      target,
      {
        method: 'GET',
        agent: false,
        signal,
        headers: { accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1', ...p.headers },
        ...(target.protocol === 'https:' ? { rejectUnauthorized: p.tlsVerify, ...(ca ? { ca } : {}) } : {}),
      },
      (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          res.resume();
          reject(new HttpStatusError(`HTTP ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > p.maxBodyBytes) {
            req.destroy(new BodyTooLarge(`body larger than ${p.maxBodyBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A short, bounded tag value for why a scrape failed. */
function classify(err: unknown): string {
  if (err instanceof BodyTooLarge) return 'body_too_large';
  if (err instanceof HttpStatusError) return `http_${err.message.slice(5)}`;
  return classifyNetError(err);
}
