// The HTTP API's listener: koa on the configured address (loopback by default). Routes are
// mounted by the API module; this file owns binding, the bind-safety rule and a clean close.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Logger } from 'pino';
import { isLoopback, splitHostPort } from '../config/addresses.ts';
import type { HttpConfig } from '../config/schema.ts';

export { isLoopback, splitHostPort };

export interface HttpServerOptions {
  config: HttpConfig;
  logger: Logger;
  app: Koa;
}

export class HttpServer {
  private server: http.Server | undefined;
  private closing: Promise<void> | undefined;
  /** Responses not yet finished, so stop() can tell their keep-alive sockets to close. */
  private readonly inFlight = new Set<http.ServerResponse>();

  constructor(private readonly opts: HttpServerOptions) {
    const { listen, token, allowInsecureNonLoopback } = opts.config;
    const host = splitHostPort(listen).host;
    if (!isLoopback(host) && !token && !allowInsecureNonLoopback) {
      throw new Error(
        `http.listen is "${listen}", beyond loopback, and no http.token is set: set a token, or set http.allowInsecureNonLoopback to true`,
      );
    }
  }

  async start(): Promise<void> {
    const { host, port } = splitHostPort(this.opts.config.listen);
    const server = http.createServer(this.opts.app.callback());
    server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      // A request arriving on a kept-alive socket while stopping is answered, then the socket goes.
      if (this.closing) res.shouldKeepAlive = false;
      this.inFlight.add(res);
      res.once('close', () => this.inFlight.delete(res));
    });
    server.requestTimeout = 60_000;
    server.headersTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.opts.logger.info({ address: this.address() }, 'HTTP API listening');
  }

  /** "host:port" actually bound (port 0 in the config picks a free one). */
  address(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return this.opts.config.listen;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  stop(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const server = this.server;
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeIdleConnections();
      // Requests still running finish, and their sockets close instead of idling in keep-alive.
      for (const res of this.inFlight) res.shouldKeepAlive = false;
      // Requests still running get a moment to finish, then their sockets go.
      setTimeout(() => server.closeAllConnections(), 2000).unref();
    });
    return this.closing;
  }
}

