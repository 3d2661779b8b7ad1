// One InfluxDB backend's HTTP calls (storage kind "influxdb"): write a body of line protocol to
// a namespace's database, ping, create a database, read a refusal. The transport is the shared
// BackendHttp: @influxdata/influxdb-client's WriteApi buffers, retries and drops on its own
// terms (close() drops pending retries, Retry-After read as ms, other 4xx dropped), while
// at-least-once needs every answer here, classified, so that the caller owns batching, retry
// and the NSQ acknowledgement.
import type { InfluxdbBackendConfig } from '../config/schema.ts';
import { BackendHttp, HttpError, basicAuth } from './backend-http.ts';
import type { BackendWriter, BackendWriterOptions, WriteAnswer } from './backend-writer.ts';
import { readWriteError, type WriteErrorReport } from './write-errors.ts';

export interface BackendClientOptions extends BackendWriterOptions {
  backend: InfluxdbBackendConfig;
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

export class BackendClient implements BackendWriter {
  readonly name: string;
  private readonly backend: InfluxdbBackendConfig;
  private readonly http: BackendHttp;

  constructor(opts: BackendClientOptions) {
    const { backend } = opts;
    if (/\/api\/v2\/?$/.test(new URL(backend.url).pathname)) {
      throw new Error(`backend "${backend.name}": give the server's base url, without "/api/v2" ("${backend.url}")`);
    }
    this.name = backend.name;
    this.backend = backend;
    this.http = new BackendHttp({ ...opts, auth: authHeaders(backend) });
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

  write(namespace: string, body: string | readonly Buffer[]): Promise<WriteAnswer> {
    return this.http.write(this.writePath(namespace), body, readMissingDatabase);
  }

  /** GET /ping: true on 2xx (InfluxDB answers 204). */
  ping(): Promise<boolean> {
    return this.http.answers('/ping');
  }

  /** CREATE DATABASE through /query; resolves with an error message, or undefined on success. */
  async createDatabase(namespace: string): Promise<string | undefined> {
    const body = new URLSearchParams({ q: `CREATE DATABASE ${quoteIdent(databaseFor(namespace))}` }).toString();
    try {
      const answer = (await this.http.request('/query', body, 'POST', {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      })) as { results?: Array<{ error?: string }>; error?: string } | undefined;
      return answer?.error ?? answer?.results?.find((r) => r.error)?.error;
    } catch (err) {
      return err instanceof HttpError ? `HTTP ${err.statusCode}: ${err.message}` : (err as Error).message;
    }
  }

  /** InfluxDB names unparsable lines, field type conflicts and full tags: see write-errors.ts. */
  readRefusal(message: string): WriteErrorReport {
    return readWriteError(message);
  }

  close(): void {
    this.http.close();
  }
}

/** 404 "database not found" (v2: "bucket … not found"), 500 "retention policy not found". */
function readMissingDatabase(status: number, message: string): WriteAnswer | undefined {
  if (status === 404 && /database not found|bucket .*not found/i.test(message)) return { kind: 'no-database', missing: 'database', message };
  // A per-database problem, not the backend's: it must not mark the backend down.
  if (/retention policy not found/i.test(message)) return { kind: 'no-database', missing: 'retention policy', message };
  return undefined;
}

/**
 * username/password: HTTP Basic, either API.
 * v2: `Authorization: Token <token>` (InfluxDB 2.x/3.x tokens; "user:password" on 1.8).
 * v1: a "user:password" token goes as HTTP Basic auth, which every 1.x accepts; any other
 * token as `Token <token>`.
 */
function authHeaders(backend: InfluxdbBackendConfig): Record<string, string> {
  const { token, api, username, password } = backend;
  if (username !== undefined) return basicAuth(`${username}:${password ?? ''}`);
  if (!token) return {};
  if (api === 'v1' && token.includes(':')) return basicAuth(token);
  return { authorization: `Token ${token}` };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
