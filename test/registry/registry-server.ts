// A real HTTP registry for tests, on 127.0.0.1: serves GET <prefix>/hosts/<host>/<kind> with
// ETags and 304s as the README's contract says, records every request, and can be told to
// misbehave (hang, answer too much) for fault injection.
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  path: string;
  ifNoneMatch: string | undefined;
  authorization: string | undefined;
}

export class RegistryServer {
  readonly requests: RecordedRequest[] = [];
  /** Host entries as the registry holds them; change them and call bump(). */
  hosts: Record<string, Record<string, unknown>> = {};
  behaviour: 'normal' | 'hang' | 'huge-declared' | 'huge-chunked' | 'not-json' = 'normal';
  private version = 1;
  private server: http.Server | undefined;
  port = 0;

  constructor(private readonly prefix = '/registry') {}

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(): string {
    return `http://127.0.0.1:${this.port}${this.prefix}`;
  }

  /** A new version of every answer (new ETags). */
  bump(): void {
    this.version++;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    const s = this.server;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({
      path: req.url ?? '',
      ifNoneMatch: req.headers['if-none-match'],
      authorization: req.headers.authorization,
    });
    if (this.behaviour === 'hang') return; // never answers
    const m = new RegExp(`^${this.prefix}/hosts/([^/]+)/(namespaces|checks|plugins)$`).exec(req.url ?? '');
    if (!m) {
      res.writeHead(400).end();
      return;
    }
    const host = decodeURIComponent(m[1] as string);
    const kind = m[2] as string;
    const entry = this.hosts[host];
    if (!entry) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"unknown host"}');
      return;
    }
    if (this.behaviour === 'huge-declared') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) });
      res.end();
      return;
    }
    if (this.behaviour === 'huge-chunked') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      for (let i = 0; i < 64; i++) res.write(chunk);
      res.end('{}');
      return;
    }
    if (this.behaviour === 'not-json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"namespaces": [');
      return;
    }
    const etag = `"v${this.version}-${kind}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', etag }).end(JSON.stringify({ [kind]: entry[kind] ?? (kind === 'namespaces' ? [] : {}) }));
  }
}
