// Push ingestion: POST /post (metrics as JSON, or line protocol as text/plain) and POST
// /api/push (Open-Falcon items; also at /v1/push, the Open-Falcon agent's path). Everything goes
// through the MetricSink, the same normalisation and publisher as collected points, and the
// answer claims only what the sink acknowledged: per-item rejections are reported, a publisher
// refusal is a 503, and nothing accepted is a 400. The work per request is bounded: at most
// maxPointsPerBody points, parsed and normalised a slice at a time, and only the first
// maxReportedRejections refusals carry their reason (the rest are counted). Line protocol into
// the Pipeline is the cheap way in: stamped from the body's text (src/points/lp-fast.ts) with the
// same answers, counters and lines as the general path that other sinks get.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import type { MetricSink, PushResult, Rejection } from '../points/metric.ts';
import { isLineProtocolSink } from '../points/lp-fast.ts';
import { LineProtocolParser, parsePrecision } from '../points/parse-lp.ts';
import { DroppedError } from '../publish/publisher.ts';
import { parsedBody } from './body.ts';
import { ApiError, sendOk } from './envelope.ts';
import { mapFalconSlice, type MappedPush } from './falcon-push.ts';
import type { HttpMetrics } from './http-metrics.ts';
import { readJsonItems } from './json-items.ts';
import { MAX_NAMESPACE_CHARS, Params } from './params.ts';
import { runInSlices, runRangeInSlices } from '../slices.ts';

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
  /** Points (JSON items, good line-protocol lines) one body may hold; more is a 413. */
  maxPointsPerBody: number;
  /** Milliseconds of parsing between two turns of the event loop. */
  sliceMs: number;
}

/** What a successful ingest answers. */
export interface IngestAnswer {
  namespace: string;
  accepted: number;
  rejectedCount: number;
  /** The first `maxReportedRejections` rejections, by index (array item or 0-based body line). */
  rejected: Rejection[];
}

const JSON_START = /^[\s]*[[{]/;
const JSON_HINT =
  'send a JSON array of metrics ({"name","value","tags","timestamp"}), one such object, or line protocol with Content-Type: text/plain';

export function mountIngestRoutes(router: Router, opts: IngestRoutesOptions): void {
  const tooMany = () => opts.metrics.refuse('too_many_points');
  const post = async (ctx: Context) => {
    const p = new Params(ctx);
    const ns = namespace(p.required('ns', 'the namespace to publish into, e.g. /post?ns=web.prod'), opts);
    const { text } = parsedBody(ctx);
    // Checked even for a JSON body, which has no use for it: a bad parameter is always a 400.
    const precisionText = p.optional('precision') ?? 'ns';
    const precision = parsePrecision(precisionText);
    if (!precision) throw new ApiError(400, `"precision" must be one of ns, us, ms, s, m, h (got ${JSON.stringify(precisionText.slice(0, 20))})`);
    // fetch() and many HTTP libraries label a string body text/plain: a body that opens like
    // JSON is JSON (no line-protocol measurement starts with "[" or "{" in practice).
    if (ctx.is('text/plain') && !JSON_START.test(text)) {
      const sink = opts.sink;
      if (isLineProtocolSink(sink)) {
        // The cheap way in: lines validated and stamped from the body's text, no object per point.
        const stamper = sink.stampLineProtocol(text, { precision, maxListedRejections: opts.maxReportedRejections });
        const lp = stamper.result;
        await runInSlices((n) => {
          const done = stamper.step(n);
          if (lp.pointsIn > opts.maxPointsPerBody) throw tooManyPoints();
          return done;
        }, { sliceMs: opts.sliceMs, itemsPerCheck: 512 });
        if (lp.pointsIn === 0 && lp.parseRejectedCount === 0) throw noLineProtocol();
        const send = () => sink.pushStamped(ns, lp, { maxListedRejections: opts.maxReportedRejections });
        await ingest(ctx, '/post', ns, lp.pointsIn, send, undefined, { list: lp.parseRejected, count: lp.parseRejectedCount }, opts);
        return;
      }
      const parser = new LineProtocolParser(text, { precision, maxListedRejections: opts.maxReportedRejections });
      const lp = parser.result;
      await runInSlices((n) => {
        const done = parser.step(n);
        if (lp.metrics.length > opts.maxPointsPerBody) throw tooManyPoints();
        return done;
      }, { sliceMs: opts.sliceMs, itemsPerCheck: 512 });
      if (lp.metrics.length === 0 && lp.rejectedCount === 0) throw noLineProtocol();
      await ingest(ctx, '/post', ns, lp.metrics.length, sendTo(ns, lp.metrics), lp.lineIndexes, { list: lp.rejected, count: lp.rejectedCount }, opts);
      return;
    }
    const items = await readJsonItems(text, { hint: JSON_HINT, maxItems: opts.maxPointsPerBody, sliceMs: opts.sliceMs, onTooMany: tooMany });
    await ingest(ctx, '/post', ns, items.length, sendTo(ns, items), undefined, NONE, opts);
  };
  const tooManyPoints = () => {
    tooMany();
    return new ApiError(413, `the body holds more than ${opts.maxPointsPerBody} points (http.maxPointsPerBody): send smaller batches`);
  };
  const noLineProtocol = () => new ApiError(400, 'the body has no line-protocol points (blank and # lines are skipped)');
  const sendTo = (ns: string, metrics: readonly unknown[]) => () => opts.sink.push(ns, metrics, { maxListedRejections: opts.maxReportedRejections });
  router.post('/post', opts.auth, opts.body, post);

  const push = async (ctx: Context) => {
    const p = new Params(ctx);
    const given = p.optional('ns') ?? opts.defaultPushNamespace;
    if (given === undefined) {
      throw new ApiError(400, '"ns" is required (or set http.defaultPushNamespace): the namespace to publish into');
    }
    const ns = namespace(given, opts);
    const items = await readJsonItems(parsedBody(ctx).text, {
      hint: 'send a JSON array of Open-Falcon items ({"metric","endpoint","timestamp","step","value","counterType","tags"}) or one such object',
      maxItems: opts.maxPointsPerBody,
      sliceMs: opts.sliceMs,
      onTooMany: tooMany,
    });
    const mapped: MappedPush = { metrics: [], itemIndexes: [], rejected: [], rejectedCount: 0 };
    await runRangeInSlices(items.length, (from, to) => mapFalconSlice(items, from, to, mapped, opts.maxReportedRejections), { sliceMs: opts.sliceMs });
    await ingest(ctx, ctx.path === '/v1/push' ? '/v1/push' : '/api/push', ns, mapped.metrics.length, sendTo(ns, mapped.metrics), mapped.itemIndexes, { list: mapped.rejected, count: mapped.rejectedCount }, opts);
  };
  router.post('/api/push', opts.auth, opts.body, push);
  router.post('/v1/push', opts.auth, opts.body, push);
}

/** Items refused before the sink: the first few with their reason, and how many in all. */
interface PreRejected {
  list: readonly Rejection[];
  count: number;
}

const NONE: PreRejected = { list: [], count: 0 };

function namespace(ns: string, opts: IngestRoutesOptions): string {
  if (ns.length > MAX_NAMESPACE_CHARS) throw new ApiError(400, `"ns" is longer than ${MAX_NAMESPACE_CHARS} characters`);
  for (let i = 0; i < ns.length; i++) {
    const c = ns.charCodeAt(i);
    if (c < 32 || c === 127) throw new ApiError(400, '"ns" contains control characters (tab, newline, …); namespaces never do');
  }
  if (!opts.namespaceAllowed(ns)) {
    opts.metrics.refuse('unknown_namespace');
    throw new ApiError(
      404,
      `namespace ${JSON.stringify(ns)} is not one of this host's namespaces (GET /me/ns lists them); add it in the registry, or set http.allowAnyNamespace`,
    );
  }
  return ns;
}

/**
 * Hands the request's `points` to the sink through `send` and answers. `indexes` maps a position
 * in what was sent back to the caller's (array item or body line); `preRejected` are items
 * refused before the sink.
 */
async function ingest(
  ctx: Context,
  route: string,
  ns: string,
  points: number,
  send: () => Promise<PushResult>,
  indexes: readonly number[] | undefined,
  preRejected: PreRejected,
  opts: IngestRoutesOptions,
): Promise<void> {
  let result: PushResult = { accepted: 0, rejected: [] };
  if (points > 0) {
    try {
      result = await send();
    } catch (err) {
      if (err instanceof DroppedError || (err as Error | undefined)?.name === 'DroppedError') {
        opts.metrics.ingested.inc({ route, outcome: 'unacknowledged' }, points);
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
  const rejected = mergeRejections(result.rejected, indexes, preRejected.list);
  const rejectedCount = preRejected.count + (result.rejectedCount ?? result.rejected.length);
  const m = opts.metrics.ingested;
  if (result.accepted > 0) m.inc({ route, outcome: 'accepted' }, result.accepted);
  if (rejectedCount > 0) m.inc({ route, outcome: 'rejected' }, rejectedCount);
  const answer: IngestAnswer = {
    namespace: ns,
    accepted: result.accepted,
    rejectedCount,
    rejected: rejected.length > opts.maxReportedRejections ? rejected.slice(0, opts.maxReportedRejections) : rejected,
  };
  if (result.accepted === 0) {
    const first = rejected[0];
    const why = first ? `; the first (index ${first.index}): ${first.reason}` : '';
    throw new ApiError(400, `nothing was accepted: ${rejectedCount} item${rejectedCount === 1 ? '' : 's'} rejected${why}`, answer);
  }
  if (rejectedCount > 0) {
    opts.logger.debug({ namespace: ns, route, accepted: result.accepted, rejected: rejectedCount }, 'push partly rejected');
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
