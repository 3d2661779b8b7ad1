// The HTTP API: a koa app whose routes drive the parts passed in (sink, registry, plugins,
// status, metrics), so the API holds no state of its own beyond its self-metrics. Every answer
// but /health and /metrics is the JSON envelope of envelope.ts; every 4xx says what to fix.
// The browser guard runs first, on every route, before anything else reads the request.
import Router from '@koa/router';
import Koa, { type Context, type Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { HttpConfig } from '../config/schema.ts';
import type { MetricSink } from '../points/metric.ts';
import type { PluginControl } from '../plugins/types.ts';
import type { RegistryView } from '../registry/types.ts';
import { bearerAuth } from './auth.ts';
import { bodyReader } from './body.ts';
import { browserGuard } from './browser-guard.ts';
import { ApiError, sendError } from './envelope.ts';
import { HttpMetrics } from './http-metrics.ts';
import { mountInfoRoutes } from './info-routes.ts';
import { mountIngestRoutes } from './ingest-routes.ts';
import { LogReader } from './log-reader.ts';
import { mountLogRoutes } from './log-routes.ts';
import { ParseBudget } from './parse-budget.ts';
import { mountPluginRoutes } from './plugin-routes.ts';
import { mountUiRoutes, type UiRoutesOptions } from './ui-routes.ts';

export interface ApiDeps {
  /** The `http` config section (token, maxBodyBytes, logDirs (absolute), caps, namespaces). */
  config: HttpConfig;
  /** The config's `hostname`: a name the browser guard accepts in Host and Origin. */
  hostname?: string;
  /** The agent's log folder (log.dir, absolute): always readable by /log/offset, and where relative fpaths point. */
  logDir: string;
  logger: Logger;
  /**
   * Where /post and /api/push hand their metrics: the same Pipeline as collected points. This
   * and the two below are absent in the relay role (`agent relay`): their routes are not mounted.
   */
  sink?: MetricSink;
  registry?: RegistryView;
  plugins?: PluginControl;
  /** /me/status: version, hostname, uptime, pollers, schedulers, plugins, NSQ, spool, sender. */
  status(): Record<string, unknown>;
  /**
   * Hands the API's own status section (`http`: refusals by reason, the parse budget) to the
   * agent's status, so readers other than /me/status (the /ui history) see it too.
   */
  exposeStatus?: (name: 'http', read: () => Record<string, unknown>) => void;
  /** The agent's prom-client registry, served at /metrics; the API adds its own metrics to it. */
  metrics: Registry;
  /** Namespaces POST may write into; default: the registry's current namespaces. */
  knownNamespaces?: () => readonly string[];
  /** Rejections listed per ingest answer (the count is always exact); default 100. */
  maxReportedRejections?: number;
  /** Lines /log/offset returns when `num` is absent; default 100. */
  defaultLogLines?: number;
  /** Seconds in Retry-After when the publisher refuses (503); default 5. */
  retryAfterSec?: number;
  /** The operator's page (/ui, /me/history); absent: not served. */
  ui?: UiRoutesOptions;
  /** Seconds in Retry-After when http.maxParsingBytes is spent (503); default 1. */
  busyRetryAfterSec?: number;
  /**
   * Milliseconds of parsing between two turns of the event loop; default 4. Concurrent requests
   * each take a slice per turn, so a turn costs this times the bodies being parsed.
   */
  sliceMs?: number;
}

/** Bodies of the plugin and /update routes are a few form or JSON fields. */
const SMALL_BODY_BYTES = 64 * 1024;

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function createApi(deps: ApiDeps): Koa {
  const cfg = deps.config;
  const log = deps.logger;
  const metrics = new HttpMetrics(deps.metrics);
  const app = new Koa();
  // Errors are answered by the middleware below; what still reaches koa (a socket that broke
  // while the answer was streaming) is logged here instead of koa's console output.
  app.silent = true;
  app.on('error', (err: Error) => log.debug({ err }, 'HTTP response failed'));

  const auth = bearerAuth({
    token: cfg.token,
    onRefused: (reason) => metrics.refuse(`auth_${reason}`),
  });
  const onTooLarge = () => metrics.refuse('body_too_large');
  const smallBody = bodyReader({ maxBytes: SMALL_BODY_BYTES, limitName: "this route's limit", onTooLarge }, { fields: true });
  const budget = new ParseBudget({ maxBytes: cfg.maxParsingBytes });
  const ingestBody = bodyReader({
    maxBytes: cfg.maxBodyBytes,
    limitName: 'http.maxBodyBytes',
    onTooLarge,
    budget,
    onBusy: () => metrics.refuse('parse_budget'),
    retryAfterSec: deps.busyRetryAfterSec ?? 1,
  });
  const sliceMs = deps.sliceMs ?? 4;
  const httpStatus = () => ({ refused: metrics.refusedByReason(), parsing: budget.status() });
  // Handed to the agent's status, the section is in deps.status() already; else it is added here.
  deps.exposeStatus?.('http', httpStatus);
  const status = deps.exposeStatus ? deps.status : () => ({ ...deps.status(), http: httpStatus() });

  const registry = deps.registry;
  const known = deps.knownNamespaces ?? (() => registry?.current().namespaces ?? []);
  const router = new Router();
  mountInfoRoutes(router, { registry: deps.registry, status, metrics: deps.metrics, auth, body: smallBody });
  if (deps.plugins) mountPluginRoutes(router, { plugins: deps.plugins, auth, body: smallBody });
  if (deps.sink) mountIngestRoutes(router, {
    sink: deps.sink,
    auth,
    body: ingestBody,
    metrics,
    logger: log,
    namespaceAllowed: (ns) => cfg.allowAnyNamespace || known().includes(ns),
    defaultPushNamespace: cfg.defaultPushNamespace,
    maxReportedRejections: deps.maxReportedRejections ?? 100,
    retryAfterSec: deps.retryAfterSec ?? 5,
    maxPointsPerBody: cfg.maxPointsPerBody,
    sliceMs,
  });
  mountLogRoutes(router, {
    reader: new LogReader({
      dirs: [deps.logDir, ...cfg.logDirs],
      maxReadBytes: cfg.maxLogReadBytes,
      maxReadLines: cfg.maxLogReadLines,
    }),
    auth,
    metrics,
    defaultLines: Math.min(deps.defaultLogLines ?? 100, cfg.maxLogReadLines),
  });

  if (deps.ui) mountUiRoutes(router, deps.ui);

  app.use(
    browserGuard({
      listen: cfg.listen,
      hostname: deps.hostname,
      allowedHosts: cfg.allowedHosts,
      onRefused: (reason) => metrics.refuse(reason),
    }),
  );
  app.use(measure(metrics));
  app.use(envelopeErrors(log));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** Requests and latency by route pattern; unknown paths and methods share one label each. */
function measure(metrics: HttpMetrics): Middleware {
  return async (ctx, next) => {
    const start = process.hrtime.bigint();
    metrics.inFlight.inc();
    try {
      await next();
    } finally {
      metrics.inFlight.dec();
      const matched = (ctx as Context & { _matchedRoute?: unknown })._matchedRoute;
      const route = typeof matched === 'string' ? matched : 'unmatched';
      const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER';
      metrics.requests.inc({ route, method, status: String(ctx.status) });
      metrics.duration.observe({ route }, Number(process.hrtime.bigint() - start) / 1e9);
    }
  };
}

/** Turns every failure into the envelope; a 5xx is logged once here, a 4xx is the caller's. */
function envelopeErrors(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const e = describe(err);
      if (e.status >= 500) log.error({ err, method: ctx.method, path: ctx.path }, 'HTTP API request failed');
      for (const [k, v] of Object.entries(e.headers ?? {})) ctx.set(k, v);
      sendError(ctx, e.status, e.message, e.details);
      return;
    }
    if (ctx.body !== undefined && ctx.body !== null) return;
    if (ctx.status === 404) {
      sendError(ctx, 404, `no route ${ctx.method} ${JSON.stringify(ctx.path.slice(0, 200))}; the README's HTTP API section lists them`);
    } else if (ctx.status === 405 || ctx.status === 501) {
      const allow = ctx.response.get('Allow');
      sendError(ctx, ctx.status, `${ctx.method.slice(0, 20)} is not allowed on ${ctx.path.slice(0, 200)}; use ${allow || 'another method'}`);
    }
  };
}

interface Described {
  status: number;
  message: string;
  details?: unknown;
  headers?: Record<string, string>;
}

/** What the caller is told about an error: ApiErrors as thrown, koa's own 4xx as they are. */
function describe(err: unknown): Described {
  if (err instanceof ApiError) return { status: err.status, message: err.message, details: err.details, headers: err.headers };
  const e = (err ?? {}) as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true && typeof e.message === 'string') {
    return { status: e.status, message: e.message.slice(0, 500) };
  }
  return { status: 500, message: 'internal error: the agent could not answer this request; its log has the details' };
}
