// Push ingestion: POST /post (metrics as JSON, or line protocol as text/plain) and POST
// /api/push (Open-Falcon items; also at /v1/push, the Open-Falcon agent's path). Everything goes
// through the MetricSink, the same normalisation and publisher as collected points, and the
// answer claims only what the sink acknowledged: per-item rejections are reported, a publisher
// refusal is a 503, and nothing accepted is a 400.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import type { MetricSink, PushResult, Rejection } from '../points/metric.ts';
import { parseLineProtocol, parsePrecision } from '../points/parse-lp.ts';
import { DroppedError } from '../publish/publisher.ts';
import { isBlank, parsedBody, parseJson } from './body.ts';
import { ApiError, sendOk } from './envelope.ts';
import { mapFalconItems } from './falcon-push.ts';
import type { HttpMetrics } from './http-metrics.ts';
import { Params } from './params.ts';

export interface IngestRoutesOptions {
  sink: MetricSink;
  auth: Middleware;
  /** Reads the bodies (bounded by http.maxBodyBytes) into ctx.state. */
  body: Middleware;
  metrics: HttpMetrics;
  logger: Logger;
  /** Whether POST may write into this namespace (known to the registry, or allowAnyNamespace). */
  namespaceAllowed(namespace: string): boolean;
  /** Namespace of /api/push requests that name none. */
  defaultPushNamespace: string | undefined;
  /** At most this many rejections are listed in an answer; the count is always exact. */
  maxReportedRejections: number;
  /** Seconds a client is told to wait after a 503. */
  retryAfterSec: number;
}

/** What a successful ingest answers. */
export interface IngestAnswer {
  namespace: string;
  accepted: number;
  rejectedCount: number;
  /** The first `maxReportedRejections` rejections, by index (array item or 0-based body line). */
  rejected: Rejection[];
}

const MAX_NAMESPACE_CHARS = 256;
const JSON_START = /^[\s]*[[{]/;
const JSON_HINT =
  'send a JSON array of metrics ({"name","value","tags","timestamp"}), one such object, or line protocol with Content-Type: text/plain';

export function mountIngestRoutes(router: Router, opts: IngestRoutesOptions): void {
  const post = async (ctx: Context) => {
    const p = new Params(ctx);
    const ns = namespace(p.required('ns', 'the namespace to publish into, e.g. /post?ns=web.prod'), opts);
    const { text } = parsedBody(ctx);
    // fetch() and many HTTP libraries label a string body text/plain: a body that opens like
    // JSON is JSON (no line-protocol measurement starts with "[" or "{" in practice).
    if (ctx.is('text/plain') && !JSON_START.test(text)) {
      const precisionText = p.optional('precision') ?? 'ns';
      const precision = parsePrecision(precisionText);
      if (!precision) throw new ApiError(400, `"precision" must be one of ns, us, ms, s, m, h (got ${JSON.stringify(precisionText.slice(0, 20))})`);
      const lp = parseLineProtocol(text, { precision });
      if (lp.metrics.length === 0 && lp.rejected.length === 0) {
        throw new ApiError(400, 'the body has no line-protocol points (blank and # lines are skipped)');
      }
      await ingest(ctx, '/post', ns, lp.metrics, lp.lineIndexes, lp.rejected, opts);
      return;
    }
    await ingest(ctx, '/post', ns, jsonItems(text, JSON_HINT), undefined, [], opts);
  };
  router.post('/post', opts.auth, opts.body, post);

  const push = async (ctx: Context) => {
    const p = new Params(ctx);
    const given = p.optional('ns') ?? opts.defaultPushNamespace;
    if (given === undefined) {
      throw new ApiError(400, '"ns" is required (or set http.defaultPushNamespace): the namespace to publish into');
    }
    const ns = namespace(given, opts);
    const items = jsonItems(
      parsedBody(ctx).text,
      'send a JSON array of Open-Falcon items ({"metric","endpoint","timestamp","step","value","counterType","tags"}) or one such object',
    );
    const mapped = mapFalconItems(items);
    await ingest(ctx, ctx.path === '/v1/push' ? '/v1/push' : '/api/push', ns, mapped.metrics, mapped.itemIndexes, mapped.rejected, opts);
  };
  router.post('/api/push', opts.auth, opts.body, push);
  router.post('/v1/push', opts.auth, opts.body, push);
}

function namespace(ns: string, opts: IngestRoutesOptions): string {
  if (ns.length > MAX_NAMESPACE_CHARS) throw new ApiError(400, `"ns" is longer than ${MAX_NAMESPACE_CHARS} characters`);
  for (let i = 0; i < ns.length; i++) {
    const c = ns.charCodeAt(i);
    if (c < 32 || c === 127) throw new ApiError(400, '"ns" contains control characters (tab, newline, …); namespaces never do');
  }
  if (!opts.namespaceAllowed(ns)) {
    opts.metrics.refused.inc({ reason: 'unknown_namespace' });
    throw new ApiError(
      404,
      `namespace ${JSON.stringify(ns)} is not one of this host's namespaces (GET /me/ns lists them); add it in the registry, or set http.allowAnyNamespace`,
    );
  }
  return ns;
}

/** The JSON body as a list of items: an array as is, an object as a list of one. */
function jsonItems(text: string, hint: string): readonly unknown[] {
  if (isBlank(text)) throw new ApiError(400, `the body is empty: ${hint}`);
  const body = parseJson(text, hint);
  if (Array.isArray(body)) {
    if (body.length === 0) throw new ApiError(400, `the body is an empty array: ${hint}`);
    return body;
  }
  if (body !== null && typeof body === 'object') return [body];
  throw new ApiError(400, `the body is not a JSON array or object: ${hint}`);
}

/**
 * Hands `metrics` to the sink and answers. `indexes` maps a position in `metrics` back to the
 * caller's (array item or body line); `preRejected` are items refused before the sink.
 */
async function ingest(
  ctx: Context,
  route: string,
  ns: string,
  metrics: readonly unknown[],
  indexes: readonly number[] | undefined,
  preRejected: readonly Rejection[],
  opts: IngestRoutesOptions,
): Promise<void> {
  let result: PushResult = { accepted: 0, rejected: [] };
  if (metrics.length > 0) {
    try {
      result = await opts.sink.push(ns, metrics);
    } catch (err) {
      if (err instanceof DroppedError || (err as Error | undefined)?.name === 'DroppedError') {
        opts.metrics.ingested.inc({ route, outcome: 'unacknowledged' }, metrics.length);
        throw new ApiError(
          503,
          `not published, nothing of this request is acknowledged: ${(err as Error).message}; retry later`,
          undefined,
          { 'Retry-After': String(opts.retryAfterSec) },
        );
      }
      throw err;
    }
  }
  const rejected = mergeRejections(result.rejected, indexes, preRejected);
  const m = opts.metrics.ingested;
  if (result.accepted > 0) m.inc({ route, outcome: 'accepted' }, result.accepted);
  if (rejected.length > 0) m.inc({ route, outcome: 'rejected' }, rejected.length);
  const answer: IngestAnswer = {
    namespace: ns,
    accepted: result.accepted,
    rejectedCount: rejected.length,
    rejected: rejected.length > opts.maxReportedRejections ? rejected.slice(0, opts.maxReportedRejections) : rejected,
  };
  if (result.accepted === 0) {
    const first = rejected[0];
    const why = first ? `; the first (index ${first.index}): ${first.reason}` : '';
    throw new ApiError(400, `nothing was accepted: ${rejected.length} item${rejected.length === 1 ? '' : 's'} rejected${why}`, answer);
  }
  if (rejected.length > 0) {
    opts.logger.debug({ namespace: ns, route, accepted: result.accepted, rejected: rejected.length }, 'push partly rejected');
  }
  sendOk(ctx, answer);
}

function mergeRejections(
  fromSink: readonly Rejection[],
  indexes: readonly number[] | undefined,
  preRejected: readonly Rejection[],
): Rejection[] {
  if (preRejected.length === 0 && indexes === undefined) return fromSink as Rejection[];
  const out: Rejection[] = preRejected.slice();
  for (const r of fromSink) out.push({ index: indexes?.[r.index] ?? r.index, reason: r.reason });
  if (preRejected.length > 0 && fromSink.length > 0) out.sort((a, b) => a.index - b.index);
  return out;
}
