// A raw HTTP client for the abuse suites: node:http lets a test send what fetch() will not
// (any Host header, Sec-Fetch-Site), and times each answer.
import http from 'node:http';

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: { ok: boolean; data?: any; error?: string; details?: any } | undefined;
  ms: number;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
}

export function request(port: number, r: RawRequest): Promise<RawAnswer> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: r.method ?? 'GET', path: r.path, headers: r.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: RawAnswer['json'];
          try {
            json = JSON.parse(text) as RawAnswer['json'];
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, ms: performance.now() - t0 });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(r.timeoutMs ?? 15_000, () => req.destroy(new Error(`no answer to ${r.method ?? 'GET'} ${r.path.slice(0, 80)} within ${r.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    // A server that refuses early (413, 503) closes while the body is still going out: the
    // socket's EPIPE then arrives after the answer, detached from the request.
    req.on('socket', (socket) => socket.on('error', () => {}));
    req.end(r.body);
  });
}

/** Polls /health every `everyMs` until stopped; the slowest answer (a failure counts as its timeout). */
export function healthWatch(port: number, everyMs = 50, timeoutMs = 5000) {
  let stopping = false;
  let maxMs = 0;
  let failures = 0;
  let answered = 0;
  const done = (async () => {
    while (!stopping) {
      try {
        const r = await request(port, { path: '/health', timeoutMs });
        if (r.status !== 200) failures++;
        maxMs = Math.max(maxMs, r.ms);
        answered++;
      } catch {
        failures++;
        maxMs = Math.max(maxMs, timeoutMs);
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      stopping = true;
      await done;
      return { maxMs, failures, answered };
    },
  };
}
