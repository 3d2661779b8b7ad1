// An in-process fake InfluxDB for fault injection (429, 503, Retry-After, 404, outages) that
// real servers cannot be made to produce on demand. It records every request it receives.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

export interface FakeAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** Decides the answer to each request; default: 204 for /write and /ping, 200 for /query. */
export type Handler = (req: FakeRequest) => FakeAnswer | undefined | Promise<FakeAnswer | undefined>;

export class FakeInflux {
  readonly requests: FakeRequest[] = [];
  handler: Handler = () => undefined;
  private server: Server | undefined;
  private readonly waiters: Array<{ pred: (r: FakeRequest[]) => boolean; resolve: () => void }> = [];
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  writes(): FakeRequest[] {
    return this.requests.filter((r) => r.path === '/write' || r.path === '/api/v2/write');
  }

  /** Resolves once the requests received so far satisfy `pred`. */
  waitFor(pred: (r: FakeRequest[]) => boolean): Promise<void> {
    if (pred(this.requests)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const r: FakeRequest = {
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      // As InfluxDB does: a gzipped body is read unzipped (the header stays in `headers`).
      body: (req.headers['content-encoding'] === 'gzip' ? gunzipSync(Buffer.concat(chunks)) : Buffer.concat(chunks)).toString('utf8'),
      at: Date.now(),
    };
    this.requests.push(r);
    this.notify();
    const answer = (await this.handler(r)) ?? defaultAnswer(r);
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
  }

  private notify(): void {
    for (const w of [...this.waiters]) {
      if (w.pred(this.requests)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }
}

function defaultAnswer(r: FakeRequest): FakeAnswer {
  if (r.path === '/query') return { status: 200, body: { results: [{ statement_id: 0 }] } };
  return { status: 204 };
}
