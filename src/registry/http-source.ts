// The HTTP registry: GET <url>/hosts/<hostname>/<namespaces|checks|plugins>, with the bearer
// token, If-None-Match (a 304 costs the registry nothing), a deadline covering the whole
// answer, and a size cap enforced while reading (Content-Length is not trusted).
import { VERSION } from '../version.ts';
import type { RegistrySource, SourceAnswer } from './source.ts';
import type { PollerKind } from './validate.ts';

export interface HttpRegistrySourceOptions {
  /** Base URL; its path and query are kept, the host part is appended to the path. */
  url: string;
  hostname: string;
  token?: string;
  timeoutMs: number;
  maxAnswerBytes: number;
}

export class HttpRegistrySource implements RegistrySource {
  readonly kind = 'http';
  readonly location: string;
  private readonly base: URL;
  private readonly opts: HttpRegistrySourceOptions;

  constructor(opts: HttpRegistrySourceOptions) {
    let base: URL;
    try {
      base = new URL(opts.url);
    } catch {
      throw new Error(`registry.url: not a URL: ${JSON.stringify(opts.url)}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new Error(`registry.url: expected http:// or https://, found ${JSON.stringify(base.protocol)}`);
    }
    if (!opts.hostname) throw new Error('HttpRegistrySource: hostname is required');
    this.base = base;
    this.opts = opts;
    this.location = base.toString();
  }

  /** The endpoint of one poller for this host. */
  urlFor(kind: PollerKind): string {
    const u = new URL(this.base.toString());
    u.pathname = `${u.pathname.replace(/\/+$/, '')}/hosts/${encodeURIComponent(this.opts.hostname)}/${kind}`;
    return u.toString();
  }

  async fetch(kind: PollerKind, etag: string | null): Promise<SourceAnswer> {
    const url = this.urlFor(kind);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': `ns-agent/${VERSION}` };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (etag !== null) headers['if-none-match'] = etag;
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    let res: Response;
    try {
      res = await fetch(url, { headers, signal, redirect: 'follow' });
    } catch (err) {
      throw new Error(`GET ${url}: ${describeFetchError(err, this.opts.timeoutMs)}`);
    }
    try {
      if (res.status === 304) {
        if (etag === null) throw new Error(`GET ${url}: 304 Not Modified to a request without If-None-Match`);
        return { status: 'not-modified' };
      }
      if (res.status === 404) throw new Error(`GET ${url}: 404: the registry does not know host ${JSON.stringify(this.opts.hostname)}`);
      if (res.status === 401 || res.status === 403) {
        throw new Error(`GET ${url}: ${res.status}: the registry refused the credentials (check registry.token)`);
      }
      if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status} ${res.statusText}`);
      const text = await readCapped(res, this.opts.maxAnswerBytes, url, this.opts.timeoutMs);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new Error(`GET ${url}: the answer is not JSON: ${(err as Error).message}`);
      }
      return { status: 'answer', body, at: '$', etag: res.headers.get('etag'), keyRequired: true };
    } finally {
      // An unread body holds the connection; cancelling is harmless when it was read.
      await res.body?.cancel().catch(() => undefined);
    }
  }
}

async function readCapped(res: Response, maxBytes: number, url: string, timeoutMs: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new Error(`GET ${url}: answer of ${declared} bytes refused (registry.maxAnswerBytes = ${maxBytes})`);
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body) {
      total += chunk.byteLength;
      if (total > maxBytes) throw new Error(`GET ${url}: answer over ${maxBytes} bytes refused (registry.maxAnswerBytes)`);
      chunks.push(chunk);
    }
  } catch (err) {
    if ((err as Error).message.startsWith(`GET ${url}`)) throw err;
    throw new Error(`GET ${url}: reading the answer: ${describeFetchError(err, timeoutMs)}`);
  }
  // Strict decoding: a lenient one would turn invalid bytes into U+FFFD and so into namespaces
  // the registry never named.
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new Error(`GET ${url}: the answer is not valid UTF-8`);
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no complete answer within ${timeoutMs} ms (registry.timeoutMs)`;
  const cause = e?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? `: ${cause.message}` : ''}`;
  return e?.message ?? String(err);
}
