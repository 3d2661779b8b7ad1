// GET /log/offset?fpath=&offset=&num=: lines of a log file from a byte offset, as the
// Open-Falcon-style agents served it, confined to the log folders (see LogReader).
import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { ApiError, sendOk } from './envelope.ts';
import type { HttpMetrics } from './http-metrics.ts';
import { LogReadError, type LogReader } from './log-reader.ts';
import { Params } from './params.ts';

export interface LogRoutesOptions {
  reader: LogReader;
  auth: Middleware;
  metrics: HttpMetrics;
  /** Lines returned when `num` is absent. */
  defaultLines: number;
}

const STATUS = { outside: 403, missing: 404, invalid: 400 } as const;

export function mountLogRoutes(router: Router, opts: LogRoutesOptions): void {
  router.get('/log/offset', opts.auth, async (ctx) => {
    const p = new Params(ctx);
    const fpath = p.required('fpath', 'the log file, absolute or relative to log.dir, e.g. fpath=current.log');
    const offset = p.integer('offset', { min: 0, max: Number.MAX_SAFE_INTEGER, unit: 'bytes' }) ?? 0;
    const num = p.integer('num', { min: 0, max: Number.MAX_SAFE_INTEGER, unit: 'lines' }) ?? opts.defaultLines;
    if (num > opts.reader.maxReadLines) opts.metrics.refuse('log_read_capped');
    try {
      sendOk(ctx, await opts.reader.read(fpath, offset, num));
    } catch (err) {
      if (!(err instanceof LogReadError)) throw err;
      if (err.kind === 'outside') opts.metrics.refuse('log_outside_dirs');
      throw new ApiError(STATUS[err.kind], err.message);
    }
  });
}
