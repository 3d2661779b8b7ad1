// http_probe: requests one or more URLs and reports, per URL, whether the answer was the one
// expected, its status code, how long it took, and for https how many days the server's
// certificate has left. A failed probe is data (up=0 and a result tag), not an error.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import type { Metric } from '../../src/points/metric.ts';
import { builtinPlugin, probeAll } from '../../src/plugins/builtin.ts';
import type { BuiltinPluginContext } from '../../src/plugins/types.ts';
import { classifyNetError } from '../net-errors.ts';

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL');

export const httpProbeParams = z
  .object({
    url: httpUrl.optional(),
    urls: z.array(httpUrl).min(1).max(100).optional(),
    method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
    /** Per request; default: the run's timeout. */
    timeoutMs: z.number().int().min(1).optional(),
    /** Status codes that count as up; default: any below 400. */
    expectStatus: z.union([z.number().int().min(100).max(599), z.array(z.number().int().min(100).max(599)).min(1)]).optional(),
    /** A substring the body must hold (only the first maxBodyBytes are read). */
    expectBody: z.string().min(1).optional(),
    maxBodyBytes: z.number().int().min(1).default(1024 * 1024),
    headers: z.record(z.string()).optional(),
    body: z.string().optional(),
    /** false: connect even to an unverified certificate (days left are still reported). */
    tlsVerify: z.boolean().default(true),
    /** PEM file of the CA that signed the server's certificate. */
    caFile: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(64).default(8),
  })
  .strict()
  .refine((p) => (p.url === undefined) !== (p.urls === undefined), { message: 'give either "url" or "urls"' });

export type HttpProbeParams = z.output<typeof httpProbeParams>;

export const httpProbe = builtinPlugin(httpProbeParams, async (params, ctx) => {
  const urls = params.urls ?? [params.url as string];
  const ca = params.caFile ? await readFile(params.caFile) : undefined;
  return probeAll(urls, params.concurrency, (target) => probe(target, params, ca, ctx));
});

interface ProbeAnswer {
  status: number;
  bodyMatched: boolean | null;
  certValidTo: number | null;
  tlsAuthorized: boolean | null;
}

async function probe(url: string, p: HttpProbeParams, ca: Buffer | undefined, ctx: BuiltinPluginContext): Promise<Metric[]> {
  const started = performance.now();
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(p.timeoutMs ?? ctx.timeoutMs)]);
  let answer: ProbeAnswer;
  try {
    answer = await request(url, p, ca, signal);
  } catch (err) {
    const result = classifyNetError(err);
    ctx.logger.debug({ url, result, err: (err as Error).message }, 'http_probe: no answer');
    return [{ name: 'up', tags: { url, result }, value: 0 }];
  }
  const responseMs = performance.now() - started;
  const expected = p.expectStatus === undefined ? answer.status < 400 : [p.expectStatus].flat().includes(answer.status);
  const result = !expected ? 'status_mismatch' : answer.bodyMatched === false ? 'body_mismatch' : 'ok';
  const tags = { url, result };
  const out: Metric[] = [
    { name: 'up', tags, value: result === 'ok' ? 1 : 0 },
    { name: 'status_code', tags, value: answer.status },
    { name: 'response_ms', tags, value: responseMs },
  ];
  if (answer.certValidTo !== null) {
    out.push({ name: 'tls_days_left', tags, value: (answer.certValidTo - Date.now()) / 86_400_000 });
    out.push({ name: 'tls_verified', tags, value: answer.tlsAuthorized ? 1 : 0 });
  }
  return out;
}

function request(url: string, p: HttpProbeParams, ca: Buffer | undefined, signal: AbortSignal): Promise<ProbeAnswer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const isHttps = target.protocol === 'https:';
    let certValidTo: number | null = null;
    let tlsAuthorized: boolean | null = null;
    const req = (isHttps ? https : http).request(
      target,
      {
        method: p.method,
        // A fresh connection per probe: latency and the certificate are measured every time.
        agent: false,
        signal,
        headers: { 'user-agent': 'ns-agent http_probe', ...p.headers },
        ...(isHttps ? { rejectUnauthorized: p.tlsVerify, ...(ca ? { ca } : {}) } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (p.expectBody === undefined || p.method === 'HEAD') {
          res.resume();
          res.on('end', () => resolve({ status, bodyMatched: null, certValidTo, tlsAuthorized }));
          res.on('error', reject);
          return;
        }
        const want = p.expectBody;
        let seen = '';
        let size = 0;
        let settled = false;
        const settle = (matched: boolean) => {
          if (settled) return;
          settled = true;
          resolve({ status, bodyMatched: matched, certValidTo, tlsAuthorized });
          res.destroy();
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          size += Buffer.byteLength(chunk);
          // Keep only what a match could still need: the tail of what came before.
          seen = seen.slice(-want.length) + chunk;
          if (seen.includes(want)) settle(true);
          else if (size >= p.maxBodyBytes) settle(false);
        });
        res.on('end', () => settle(false));
        res.on('error', (err) => (settled ? undefined : reject(err)));
      },
    );
    req.on('socket', (socket) => {
      if (!isHttps) return;
      socket.once('secureConnect', () => {
        const tls = socket as TLSSocket;
        const cert = tls.getPeerCertificate();
        if (cert && cert.valid_to) certValidTo = Date.parse(cert.valid_to);
        tlsAuthorized = tls.authorized;
      });
    });
    req.on('error', reject);
    req.end(p.body);
  });
}
