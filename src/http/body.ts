// Request bodies, read with a byte bound (after decompression) and parsed at the edge. Written
// here rather than taken from @koa/bodyparser because the ingest routes must read JSON whatever
// the Content-Type says (curl -d, fetch) and because co-body leaves its decompression stream
// without an error listener once it gave up (limit hit, client gone): a later zlib error then
// surfaces as an uncaughtException, which would take the agent down.
import type { IncomingMessage } from 'node:http';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Context, Middleware } from 'koa';
import { ApiError } from './envelope.ts';
import { parseJson } from './json-items.ts';
import type { ParseBudget, Reservation } from './parse-budget.ts';

export interface BodyLimits {
  /** Bytes after decompression; more is a 413. */
  maxBytes: number;
  /** Named in the 413 message so the caller knows which setting bounds it. */
  limitName: string;
  /** Counts bodies refused for size. */
  onTooLarge?: () => void;
  /** The budget shared by all requests on body bytes being parsed; a body that does not fit is a 503. */
  budget?: ParseBudget;
  /** Counts bodies refused because the budget was spent. */
  onBusy?: () => void;
  /** Seconds in the 503's Retry-After. */
  retryAfterSec?: number;
}

/** The body as bytes, decompressed (gzip, deflate, br) and bounded. Empty when there is none. */
export function readBody(req: IncomingMessage, limits: BodyLimits, reservation?: Reservation): Promise<Buffer> {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (!hasBody) return Promise.resolve(Buffer.alloc(0));
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  let decoder: Transform | undefined;
  switch (encoding) {
    case 'identity':
    case '':
      break;
    case 'gzip':
    case 'x-gzip':
      decoder = createGunzip();
      break;
    case 'deflate':
      decoder = createInflate();
      break;
    case 'br':
      decoder = createBrotliDecompress();
      break;
    default:
      throw new ApiError(415, `Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported: send the body uncompressed, or as gzip, deflate or br`);
  }
  const tooLarge = () => {
    limits.onTooLarge?.();
    // The rest of the upload is not read: close the connection rather than drain it.
    return new ApiError(413, `the body is larger than ${limits.limitName} (${limits.maxBytes} bytes): send smaller batches`, undefined, {
      Connection: 'close',
    });
  };
  const busy = () => {
    limits.onBusy?.();
    return new ApiError(
      503,
      `the agent is parsing other large bodies (http.maxParsingBytes, ${limits.budget?.status().maxBytes} bytes at once): nothing of this request was parsed; retry later`,
      undefined,
      { 'Retry-After': String(limits.retryAfterSec ?? 1) },
    );
  };
  const declared = Number(req.headers['content-length']);
  if (!decoder && declared > limits.maxBytes) {
    req.resume();
    throw tooLarge();
  }
  // A declared length is taken whole up front, so concurrent uploads do not each get part of the
  // budget and then all fail; compressed and chunked bodies take it as their bytes arrive.
  const upFront = !decoder && declared > 0 ? declared : 0;
  if (reservation && upFront > 0 && !reservation.take(upFront)) {
    // Answered once the upload is over (read and dropped, nothing kept): answering while the
    // client still sends makes it see a broken pipe instead of the 503 and its Retry-After.
    return drain(req, limits.maxBytes).then(() => {
      throw busy();
    });
  }

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const source = decoder ?? req;
    const finish = (err: Error | undefined, drainFirst = false) => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      req.off('close', onClose);
      if (decoder) {
        req.unpipe(decoder);
        // Errors after this point (the stream is torn down) have a listener below and are dropped.
        if (err) decoder.destroy();
      }
      if (err && drainFirst) {
        void drain(req, limits.maxBytes).then(() => reject(err));
      } else if (err) {
        req.resume();
        reject(err);
      } else {
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBytes) finish(tooLarge());
      else if (reservation && size > upFront && !reservation.take(size - Math.max(upFront, size - chunk.length))) finish(busy(), true);
      else chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onClose = () => {
      if (!req.complete) finish(new ApiError(400, 'the request was aborted before its body was read'));
    };
    source.on('data', onData);
    source.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', (err) => finish(new ApiError(400, `the request body could not be read: ${err.message}`)));
    if (decoder) {
      // Stays attached for the decoder's whole life, so no late zlib error is ever unhandled.
      decoder.on('error', (err: NodeJS.ErrnoException) =>
        finish(new ApiError(400, `the body is not valid ${encoding} data (${err.code ?? err.message}): check Content-Encoding`)),
      );
      req.pipe(decoder);
    }
  });
}

/**
 * Reads the rest of a request and drops it; resolves when it ended, broke or was aborted, or
 * once `maxBytes` more were dropped (an endless chunked upload is not waited for).
 */
function drain(req: IncomingMessage, maxBytes: number): Promise<void> {
  return new Promise((resolve) => {
    if (req.complete) return resolve();
    let dropped = 0;
    const onData = (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > maxBytes) done();
    };
    const done = () => {
      req.off('data', onData);
      req.resume();
      resolve();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.resume();
  });
}

/** Whether the text is empty or only whitespace (without copying it, as trim() would). */
export function isBlank(text: string): boolean {
  return !/\S/.test(text);
}

/** UTF-8 text of a body, without a leading byte-order mark. */
export function bodyText(buf: Buffer): string {
  const text = buf.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** What a parsed body left for the routes; read with `parsedBody(ctx)`. */
export interface ParsedBody {
  /** UTF-8 text of the body ('' when there was none). */
  text: string;
  /** A form or JSON object's fields, for Params; undefined when the body is not one. */
  fields?: Record<string, unknown>;
}

const STATE_KEY = 'nsAgentBody';

export function parsedBody(ctx: Context): ParsedBody {
  return (ctx.state[STATE_KEY] as ParsedBody | undefined) ?? { text: '' };
}

/**
 * Reads the body of POST/PUT/PATCH requests into ctx.state. With `fields`, a JSON object or a
 * urlencoded form also becomes named fields (the plugin routes' parameters); bodies of other
 * types are read (bounded) and ignored, as the replaced agent ignored them.
 */
export function bodyReader(limits: BodyLimits, opts: { fields?: boolean } = {}): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' && ctx.method !== 'PUT' && ctx.method !== 'PATCH') return next();
    const reservation = limits.budget?.reserve();
    try {
      await readAndParse(ctx, limits, opts, reservation);
      await next();
    } finally {
      // Held until the answer is decided: parsing the body costs more than the body.
      reservation?.release();
    }
  };
}

async function readAndParse(ctx: Context, limits: BodyLimits, opts: { fields?: boolean }, reservation: Reservation | undefined): Promise<void> {
  const text = bodyText(await readBody(ctx.req, limits, reservation));
  const parsed: ParsedBody = { text };
  if (opts.fields && !isBlank(text)) {
    if (ctx.is('application/x-www-form-urlencoded')) parsed.fields = formFields(text);
    else if (ctx.is('json', '+json')) {
      const value = parseJson(text, 'send a JSON object of parameters, a form, or use the query string');
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) parsed.fields = value as Record<string, unknown>;
    }
  }
  ctx.state[STATE_KEY] = parsed;
}

function formFields(text: string): Record<string, unknown> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of new URLSearchParams(text)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
