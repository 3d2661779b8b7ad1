// The API's one JSON envelope, for answers and errors alike:
//   {"ok":true,"data":…}    {"ok":false,"error":"what went wrong and what to fix","details":…}
// Routes throw ApiError for anything the caller must fix; the error middleware turns it (and
// koa's own HTTP errors) into the envelope, so no route writes an error body by hand.
import type { Context } from 'koa';

export interface OkEnvelope<T = unknown> {
  ok: true;
  data: T;
}

export interface ErrorEnvelope {
  ok: false;
  error: string;
  details?: unknown;
}

/** A failure the caller can act on: its status and a sentence saying what to fix. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function sendOk<T>(ctx: Context, data: T, status = 200): void {
  ctx.status = status;
  ctx.body = { ok: true, data } satisfies OkEnvelope<T>;
}

export function sendError(ctx: Context, status: number, error: string, details?: unknown): void {
  ctx.status = status;
  const body: ErrorEnvelope = { ok: false, error };
  if (details !== undefined) body.details = details;
  ctx.body = body;
}
