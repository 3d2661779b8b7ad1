// The ingest bench's load generator: keep-alive POSTs of pre-serialised bodies, `concurrency` in
// flight, for `durationMs`; counts the points the answers say were accepted. Run as a worker
// thread (workerData in, one message out) or as its own process (`node --import tsx
// bench/ingest-load.ts '<json options>'`, bodies read from a file, the result printed as JSON),
// so its CPU is not the server's.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

export interface LoadOptions {
  port: number;
  path: string;
  contentType: string;
  concurrency: number;
  durationMs: number;
  /** The bodies, or a JSON file holding them (when run as a process). */
  bodies?: string[];
  bodiesFile?: string;
}

export interface LoadResult {
  points: number;
  requests: number;
  errors: number;
  firstError: string;
  seconds: number;
  latencies: number[];
}

async function run(opts: LoadOptions): Promise<LoadResult> {
  const bodies = opts.bodies ?? (JSON.parse(readFileSync(opts.bodiesFile as string, 'utf8')) as string[]);
  const buffers = bodies.map((b) => Buffer.from(b));
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const latencies: number[] = [];
  let points = 0;
  let requests = 0;
  let errors = 0;
  let firstError = '';
  const one = (body: Buffer) =>
    new Promise<void>((resolve) => {
      const t = performance.now();
      const req = http.request(
        {
          host: '127.0.0.1',
          port: opts.port,
          path: opts.path,
          method: 'POST',
          agent,
          headers: { 'content-type': opts.contentType, 'content-length': body.length },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => {
            latencies.push(performance.now() - t);
            requests++;
            const m = /"accepted":(\d+)/.exec(text);
            if (res.statusCode === 200 && m) points += Number(m[1]);
            else {
              errors++;
              firstError ||= `${res.statusCode} ${text.slice(0, 200)}`;
            }
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        errors++;
        firstError ||= e.message;
        resolve();
      });
      req.end(body);
    });
  const start = performance.now();
  const end = Date.now() + opts.durationMs;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, w) => {
      for (let i = w; Date.now() < end; i += opts.concurrency) await one(buffers[i % buffers.length] as Buffer);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { points, requests, errors, firstError, seconds, latencies };
}

if (parentPort && workerData) {
  const port = parentPort;
  void run(workerData as LoadOptions).then((r) => port.postMessage(r));
} else if (process.argv[2]) {
  void run(JSON.parse(process.argv[2]) as LoadOptions).then((r) => process.stdout.write(JSON.stringify(r)));
}
