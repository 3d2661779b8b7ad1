// One InfluxDB backend's HTTP calls: write a body of line protocol to a namespace's database,
// ping, create a database. Built on @influxdata/influxdb-client's transport alone: its WriteApi
// buffers, retries and drops on its own terms (close() drops pending retries, Retry-After read
// as ms, other 4xx dropped), while at-least-once needs every answer here, classified, so that
// the caller owns batching, retry and the NSQ acknowledgement.
import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import { HttpError, InfluxDB } from '@influxdata/influxdb-client';
import type { Transport } from '@influxdata/influxdb-client';
import { abortScope } from '../abort-scope.ts';
import type { BackendConfig } from '../config/schema.ts';
import { describeTlsError, loadTlsMaterial } from '../tls.ts';
import { retryAfterMs } from './write-errors.ts';

export type WriteAnswer =
  /** 2xx: every line was accepted. */
  | { kind: 'ok' }
  /** 400/413/422: the body holds lines the backend refuses; the message says which, maybe. */
  | { kind: 'invalid'; status: number; message: string }
  /** 404 "database not found" (create it, or wait for an operator to) or 500 "retention policy not found". */
  | { kind: 'no-database'; missing: 'database' | 'retention policy'; message: string }
  /** Network, timeout, 429, 5xx, auth and anything unexpected: try again later. */
  | { kind: 'retryable'; status?: number; message: string; retryAfterMs?: number }
  /** Cut short by close(). */
  | { kind: 'aborted' };

export interface BackendClientOptions {
  backend: BackendConfig;
  /** Concurrent connections kept open to the backend. */
  maxSockets: number;
  now?: () => number;
}

/**
 * The database (bucket) of a namespace: the namespace itself, except that InfluxDB refuses "/"
 * and backslash in names (and "/" separates db/rp in a v2 bucket), so those become "_", and "." or
 * ".." get a "_" prefix. Namespaces differing only in those characters share a database.
 */
export function databaseFor(namespace: string): string {
  const db = namespace.replace(/[/\\]/g, '_');
  return db === '.' || db === '..' ? `_${db}` : db;
}

const LP_HEADERS = { 'content-type': 'text/plain; charset=utf-8', accept: 'application/json' };
/** Bodies below this go plain: gzip's header and CPU buy nothing on a few lines. */
const GZIP_MIN_BYTES = 1024;

export class BackendClient {
  readonly name: string;
  private readonly backend: BackendConfig;
  private readonly transport: Transport;
  private readonly agent: http.Agent;
  private readonly auth: Record<string, string>;
  private readonly closing = new AbortController();
  private readonly now: () => number;

  constructor(opts: BackendClientOptions) {
    const { backend } = opts;
    const url = new URL(backend.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`backend "${backend.name}": url must be http:// or https://, got "${backend.url}"`);
    }
    if (/\/api\/v2\/?$/.test(url.pathname)) {
      throw new Error(`backend "${backend.name}": give the server's base url, without "/api/v2" ("${backend.url}")`);
    }
    this.name = backend.name;
    this.backend = backend;
    this.now = opts.now ?? Date.now;
    const tls = url.protocol === 'https:' && backend.tls ? loadTlsMaterial(backend.tls, `backend "${backend.name}" tls`) : {};
    const Agent = url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets, ...tls });
    // No token here: the transport would send "Token …", which only v2 (and 1.8+) accept.
    // timeout: the transport's socket idle timeout (10 s by default) must not cut in before ours.
    this.transport = new InfluxDB({ url: backend.url, timeout: backend.timeoutMs + 1000, transportOptions: { agent: this.agent } }).transport;
    this.auth = authHeaders(backend);
  }

  /** The write path of a namespace: database (v1) or bucket (v2) = databaseFor(namespace), rp appended. */
  writePath(namespace: string): string {
    const { api, org, rp } = this.backend;
    const db = databaseFor(namespace);
    if (api === 'v2') {
      const bucket = rp ? `${db}/${rp}` : db;
      return `/api/v2/write?${new URLSearchParams({ org, bucket, precision: 's' })}`;
    }
    const q = new URLSearchParams({ db, precision: 's' });
    if (rp) q.set('rp', rp);
    return `/write?${q}`;
  }

  /**
   * `body`: the lines, or the lines in pieces (views of the buffers they arrived in); gzip reads them as they
   * are, so the request holds one compressed copy instead of a joined body and its encoding.
   */
  async write(namespace: string, body: string | readonly Buffer[]): Promise<WriteAnswer> {
    try {
      const pieces = typeof body === 'string' ? [Buffer.from(body, 'utf8')] : body;
      let bytes = 0;
      for (const piece of pieces) bytes += piece.length;
      const gzip = this.backend.gzip !== false && bytes > GZIP_MIN_BYTES;
      const payload = gzip ? await gzipPieces(pieces) : Buffer.concat(pieces, bytes);
      await this.send(this.writePath(namespace), payload, gzip ? { ...LP_HEADERS, 'content-encoding': 'gzip' } : LP_HEADERS);
      return { kind: 'ok' };
    } catch (err) {
      return this.classify(err);
    }
  }

  /** GET /ping: true on 2xx (InfluxDB answers 204). */
  async ping(): Promise<boolean> {
    try {
      await this.request('/ping', '', 'GET', {});
      return true;
    } catch {
      return false;
    }
  }

  /** CREATE DATABASE through /query; resolves with an error message, or undefined on success. */
  async createDatabase(namespace: string): Promise<string | undefined> {
    const body = new URLSearchParams({ q: `CREATE DATABASE ${quoteIdent(databaseFor(namespace))}` }).toString();
    try {
      const answer = (await this.request('/query', body, 'POST', {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      })) as { results?: Array<{ error?: string }>; error?: string } | undefined;
      return answer?.error ?? answer?.results?.find((r) => r.error)?.error;
    } catch (err) {
      return err instanceof HttpError ? `HTTP ${err.statusCode}: ${err.message}` : (err as Error).message;
    }
  }

  /** Aborts requests in flight and closes the idle connections; idempotent. */
  close(): void {
    this.closing.abort();
    this.agent.destroy();
  }

  private async request(path: string, body: string, method: string, headers: Record<string, string>, gzipThreshold?: number): Promise<unknown> {
    const scope = abortScope(this.closing.signal, this.backend.timeoutMs);
    try {
      const options = { method, headers: { ...this.auth, ...headers }, signal: scope.signal, ...(gzipThreshold === undefined ? {} : { gzipThreshold }) };
      return (await this.transport.request(path, body, options)) as unknown;
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

  private classify(err: unknown): WriteAnswer {
    if (this.closing.signal.aborted) return { kind: 'aborted' };
    if (err instanceof HttpError) {
      const message = errorText(err);
      const status = err.statusCode;
      if (status === 400 || status === 413 || status === 422) return { kind: 'invalid', status, message };
      if (status === 404 && /database not found|bucket .*not found/i.test(message)) return { kind: 'no-database', missing: 'database', message };
      // A per-database problem, not the backend's: it must not mark the backend down.
      if (/retention policy not found/i.test(message)) return { kind: 'no-database', missing: 'retention policy', message };
      const wait = retryAfterMs(err.headers?.['retry-after'], this.now());
      return { kind: 'retryable', status, message: `HTTP ${status}: ${message}`, ...(wait === undefined ? {} : { retryAfterMs: wait }) };
    }
    const e = err as Error & { code?: string };
    const tlsProblem = describeTlsError(e, `backend "${this.name}"`, this.backend.tls ?? {});
    if (tlsProblem) return { kind: 'retryable', message: tlsProblem };
    if (e.name === 'AbortError' || e.name === 'TimeoutError') {
      return { kind: 'retryable', message: `no answer within ${this.backend.timeoutMs} ms` };
    }
    return { kind: 'retryable', message: e.code ? `${e.code}: ${e.message}` : e.message };
  }
}

/** InfluxDB puts the reason in {"error": …} (1.x) or {"message": …} (2.x). */
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

/**
 * username/password: HTTP Basic, either API.
 * v2: `Authorization: Token <token>` (InfluxDB 2.x/3.x tokens; "user:password" on 1.8).
 * v1: a "user:password" token goes as HTTP Basic auth, which every 1.x accepts; any other
 * token as `Token <token>`.
 */
function authHeaders(backend: BackendConfig): Record<string, string> {
  const { token, api, username, password } = backend;
  if (username !== undefined) {
    return { authorization: `Basic ${Buffer.from(`${username}:${password ?? ''}`, 'utf8').toString('base64')}` };
  }
  if (!token) return {};
  if (api === 'v1' && token.includes(':')) {
    return { authorization: `Basic ${Buffer.from(token, 'utf8').toString('base64')}` };
  }
  return { authorization: `Token ${token}` };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

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
