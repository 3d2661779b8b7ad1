// The HTTP side every storage kind's client shares: keep-alive connections (TLS from the
// backend's `tls` keys), one request with the backend's timeout that close() aborts, gzip of
// write bodies, the reading of a write's answer that holds for every kind (2xx accepted,
// 400/413/422 refused, no answer or any other status retryable, Retry-After honoured), and a
// health probe. Built on @influxdata/influxdb-client's transport alone: it gzips, keeps a base
// url's path prefix, and hands back non-2xx answers as HttpError with headers and body. A kind's
// client adds its paths, its credentials and the answers it knows more about.
import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import { HttpError, InfluxDB } from '@influxdata/influxdb-client';
import type { Transport } from '@influxdata/influxdb-client';
import { abortScope } from '../abort-scope.ts';
import type { BackendConfig } from '../config/schema.ts';
import { describeTlsError, loadTlsMaterial } from '../tls.ts';
import type { WriteAnswer } from './backend-writer.ts';
import { retryAfterMs } from './write-errors.ts';

/** The backend keys every kind has. */
export type BackendHttpConfig = Pick<BackendConfig, 'name' | 'url' | 'timeoutMs' | 'tls' | 'gzip'>;

export interface BackendHttpOptions {
  backend: BackendHttpConfig;
  /** Concurrent connections kept open to the backend. */
  maxSockets: number;
  /** Headers sent with every request (the kind's credentials). */
  auth: Record<string, string>;
  now?: () => number;
}

/**
 * A kind's reading of an error answer other than a refusal (400/413/422), for the answers it
 * knows more about; undefined = retryable (after its Retry-After, if any).
 */
export type ReadErrorAnswer = (status: number, message: string) => WriteAnswer | undefined;

const LP_HEADERS = { 'content-type': 'text/plain; charset=utf-8', accept: 'application/json' };
/** Bodies below this go plain: gzip's header and CPU buy nothing on a few lines. */
const GZIP_MIN_BYTES = 1024;

export class BackendHttp {
  private readonly backend: BackendHttpConfig;
  private readonly transport: Transport;
  private readonly agent: http.Agent;
  private readonly closing = new AbortController();
  private readonly auth: Record<string, string>;
  private readonly now: () => number;

  /** Throws on a url that is not http(s)://. */
  constructor(opts: BackendHttpOptions) {
    const { backend, maxSockets } = opts;
    const url = new URL(backend.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`backend "${backend.name}": url must be http:// or https://, got "${backend.url}"`);
    }
    this.backend = backend;
    this.auth = opts.auth;
    this.now = opts.now ?? Date.now;
    const tls = url.protocol === 'https:' && backend.tls ? loadTlsMaterial(backend.tls, `backend "${backend.name}" tls`) : {};
    const Agent = url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets, ...tls });
    // No token here: the transport would send "Token …", which each kind's client decides on.
    // timeout: the transport's socket idle timeout (10 s by default) must not cut in before ours.
    this.transport = new InfluxDB({ url: backend.url, timeout: backend.timeoutMs + 1000, transportOptions: { agent: this.agent } }).transport;
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  /**
   * POSTs a body of line protocol (gzipped past 1 KiB unless the backend says gzip: false) and
   * classifies the answer: 2xx ok, 400/413/422 invalid, what `readError` knows, else retryable.
   * `body`: the lines, or the lines in pieces (views of the buffers they arrived in); gzip reads
   * the pieces as they are, so the request holds one compressed copy, not a joined body as well.
   */
  async write(path: string, body: string | readonly Buffer[], readError?: ReadErrorAnswer): Promise<WriteAnswer> {
    try {
      const pieces = typeof body === 'string' ? [Buffer.from(body, 'utf8')] : body;
      let bytes = 0;
      for (const piece of pieces) bytes += piece.length;
      const gzip = this.backend.gzip !== false && bytes > GZIP_MIN_BYTES;
      const payload = gzip ? await gzipPieces(pieces) : Buffer.concat(pieces, bytes);
      await this.send(path, payload, gzip ? { ...LP_HEADERS, 'content-encoding': 'gzip' } : LP_HEADERS);
      return { kind: 'ok' };
    } catch (err) {
      if (!(err instanceof HttpError) || this.closed) return this.failure(err);
      const message = errorText(err);
      const status = err.statusCode;
      if (status === 400 || status === 413 || status === 422) return { kind: 'invalid', status, message };
      const wait = retryAfterMs(err.headers?.['retry-after'], this.now());
      return (
        readError?.(status, message) ?? { kind: 'retryable', status, message: `HTTP ${status}: ${message}`, ...(wait === undefined ? {} : { retryAfterMs: wait }) }
      );
    }
  }

  /** GET `path`: true on 2xx, false on any other answer or none (a health probe). */
  async answers(path: string): Promise<boolean> {
    try {
      await this.request(path, '', 'GET', {});
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves with the parsed answer (JSON, text or nothing); rejects with HttpError on non-2xx. */
  async request(path: string, body: string, method: string, headers: Record<string, string>): Promise<unknown> {
    const scope = abortScope(this.closing.signal, this.backend.timeoutMs);
    try {
      return (await this.transport.request(path, body, { method, headers: { ...this.auth, ...headers }, signal: scope.signal })) as unknown;
    } finally {
      scope.dispose();
    }
  }

  /** POST of a binary body; rejects as request() does (HttpError for a status of 300 and up). */
  private async send(path: string, body: Buffer, headers: Record<string, string>): Promise<void> {
    const scope = abortScope(this.closing.signal, this.backend.timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        // The transport's request() takes strings only; send() copies the body with Buffer.from,
        // which takes a Buffer as well.
        this.transport.send(path, body as unknown as string, { method: 'POST', headers: { ...this.auth, ...headers }, signal: scope.signal }, {
          error: reject,
          complete: resolve,
        });
      });
    } finally {
      scope.dispose();
    }
  }

  /** A failure that is no HTTP answer: cut short by close(), or retryable with a sentence. */
  private failure(err: unknown): WriteAnswer {
    if (this.closed) return { kind: 'aborted' };
    const e = err as Error & { code?: string };
    const tlsProblem = describeTlsError(e, `backend "${this.backend.name}"`, this.backend.tls ?? {});
    if (tlsProblem) return { kind: 'retryable', message: tlsProblem };
    if (e.name === 'AbortError' || e.name === 'TimeoutError') {
      return { kind: 'retryable', message: `no answer within ${this.backend.timeoutMs} ms` };
    }
    return { kind: 'retryable', message: e.code ? `${e.code}: ${e.message}` : e.message };
  }

  /** Aborts requests in flight and closes the idle connections; idempotent. */
  close(): void {
    this.closing.abort();
    this.agent.destroy();
  }
}

/** The reason in an error answer: {"error": …} (InfluxDB 1.x), {"message": …} (2.x), or the text. */
function errorText(err: HttpError): string {
  const json = err.json as { error?: unknown; message?: unknown } | undefined;
  if (json && typeof json.error === 'string') return json.error;
  if (json && typeof json.message === 'string') return json.message;
  if (err.body) {
    try {
      const parsed = JSON.parse(err.body) as { error?: unknown; message?: unknown };
      if (typeof parsed.error === 'string') return parsed.error;
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      // Not JSON: the text itself (the transport caps non-JSON bodies at 1000 characters).
    }
    return err.body.trim();
  }
  return err.message;
}

export function basicAuth(userPass: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(userPass, 'utf8').toString('base64')}` };
}

export { HttpError };

/** gzip of the pieces in order, read as they are (a stream, not a joined copy). */
function gzipPieces(pieces: readonly Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const gz = zlib.createGzip();
    const out: Buffer[] = [];
    gz.on('data', (chunk: Buffer) => out.push(chunk));
    gz.on('end', () => resolve(Buffer.concat(out)));
    gz.on('error', reject);
    for (const piece of pieces) gz.write(piece);
    gz.end();
  });
}
