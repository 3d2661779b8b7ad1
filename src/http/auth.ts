// Bearer-token guard for mutating routes and /log/offset. Both sides are hashed before the
// constant-time compare, so neither the token's content nor its length leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import { ApiError } from './envelope.ts';

export interface BearerAuthOptions {
  /** The configured `http.token`; undefined means every request passes. */
  token: string | undefined;
  /** Counts refusals, for /metrics. */
  onRefused?: (reason: 'missing' | 'malformed' | 'wrong') => void;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

export function bearerAuth(opts: BearerAuthOptions): Middleware {
  if (opts.token === undefined) return (_ctx, next) => next();
  const expected = digest(opts.token);
  const refuse = (reason: 'missing' | 'malformed' | 'wrong', message: string): never => {
    opts.onRefused?.(reason);
    throw new ApiError(401, message, undefined, { 'WWW-Authenticate': 'Bearer realm="ns-agent"' });
  };
  return (ctx, next) => {
    const header = ctx.get('authorization');
    if (header === '') refuse('missing', 'this route needs the http.token: send "Authorization: Bearer <token>"');
    const m = BEARER.exec(header);
    if (!m) refuse('malformed', 'the Authorization header must be "Bearer <token>"');
    if (!timingSafeEqual(digest((m as RegExpExecArray)[1] as string), expected)) {
      refuse('wrong', 'the bearer token does not match http.token');
    }
    return next();
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
