// POST /post throughput: batches of 1,000 metrics over HTTP into a real nsqd through the real
// Pipeline (normalise) and NsqPublisher, as JSON and as line protocol, beside the publisher's
// raw rate (pre-built lines straight into NsqPublisher) measured in the same run. The load
// generator runs in a worker thread (plain node:http, keep-alive), so its JSON serialisation is
// done once up front and its CPU is not the server's. `--quick`: 3 s per phase instead of 15 s.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { systemClock } from '../src/clock.ts';
import { httpSchema } from '../src/config/schema.ts';
import { createApi } from '../src/http/api.ts';
import { HttpServer } from '../src/http/server.ts';
import { silentLogger } from '../src/log/logger.ts';
import { Normaliser } from '../src/points/normalise.ts';
import type { MetricSink } from '../src/points/metric.ts';
import { Pipeline } from '../src/points/pipeline.ts';
import { NsqPublisher } from '../src/publish/nsq-publisher.ts';
import { nsqdStats, startNsqd, stopAll, type NsqdHandle } from '../test/helpers/servers.ts';
import { cpuMeter, fmt, machineLine, percentile, rssPeak, type BenchContext } from './lib.ts';

const BATCH = 1000;
const NS = 'bench.ingest';

interface PhaseResult {
  name: string;
  points: number;
  requests: number;
  seconds: number;
  latenciesMs: number[];
  cpuMs: number;
  rssPeak: number;
  errors: number;
}

function makeMetrics(seed: number): Array<{ name: string; timestamp: number; tags: Record<string, string>; value: number }> {
  return Array.from({ length: BATCH }, (_, i) => ({
    name: `app_${(i + seed) % 20}_latency`,
    timestamp: 1_700_000_000 + seed * BATCH + i,
    tags: { api: `endpoint_${i % 50}`, dc: 'eu-west-1', shard: String(i % 8) },
    value: ((i * 7919 + seed) % 10_000) / 10,
  }));
}

function toLineProtocol(metrics: ReturnType<typeof makeMetrics>): string {
  return metrics.map((m) => `${m.name},api=${m.tags.api},dc=${m.tags.dc},shard=${m.tags.shard} value=${m.value} ${m.timestamp}`).join('\n');
}

function makePublisher(nsqd: NsqdHandle, prefix: string, spoolDir: string, metrics: Registry): NsqPublisher {
  return new NsqPublisher({
    nsqdTcpAddresses: [nsqd.tcpAddress],
    topicPrefix: prefix,
    maxMessageBytes: 256 * 1024,
    maxMpubBytes: 4 * 1024 * 1024,
    lingerMs: 20,
    maxInFlightBatches: 16,
    reconnectMinMs: 200,
    reconnectMaxMs: 10_000,
    spool: { dir: spoolDir, maxBytes: 1024 * 1024 * 1024, maxAgeSec: 3600, commitIntervalMs: 20, segmentBytes: 16 * 1024 * 1024 },
    metrics,
    logger: silentLogger(),
    connectWaitMs: 5000,
  });
}

/** The publisher alone: `concurrency` loops publishing pre-built 1,000-line batches. */
async function rawPhase(
  publisher: { publish(ns: string, batch: unknown[]): Promise<void> },
  bodies: unknown[][],
  concurrency: number,
  durationMs: number,
): Promise<PhaseResult> {
  const latencies: number[] = [];
  let points = 0;
  let requests = 0;
  const cpu = cpuMeter();
  const rss = rssPeak();
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = w; performance.now() < end; i += concurrency) {
        const lines = bodies[i % bodies.length] as unknown[];
        const t = performance.now();
        await publisher.publish(NS, lines);
        latencies.push(performance.now() - t);
        points += lines.length;
        requests++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return { name: 'NsqPublisher.publish (raw)', points, requests, seconds, latenciesMs: latencies, cpuMs: cpu(), rssPeak: rss(), errors: 0 };
}

// The load generator, run in a worker: keep-alive POSTs of pre-serialised bodies.
const CLIENT = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { port, path, contentType, bodies, concurrency, durationMs } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const buffers = bodies.map((b) => Buffer.from(b));
const latencies = [];
let points = 0, requests = 0, errors = 0, firstError = '';
const end = Date.now() + durationMs;
function one(body) {
  return new Promise((resolve) => {
    const t = performance.now();
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent,
      headers: { 'content-type': contentType, 'content-length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        latencies.push(performance.now() - t);
        requests++;
        const m = /"accepted":(\\d+)/.exec(text);
        if (res.statusCode === 200 && m) points += Number(m[1]);
        else { errors++; firstError = firstError || res.statusCode + ' ' + text.slice(0, 200); }
        resolve();
      });
    });
    req.on('error', (e) => { errors++; firstError = firstError || e.message; resolve(); });
    req.end(body);
  });
}
(async () => {
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    for (let i = w; Date.now() < end; i += concurrency) await one(buffers[i % buffers.length]);
  }));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  parentPort.postMessage({ points, requests, errors, firstError, seconds, latencies });
})();
`;

async function httpPhase(
  name: string,
  port: number,
  urlPath: string,
  contentType: string,
  bodies: string[],
  concurrency: number,
  durationMs: number,
): Promise<PhaseResult> {
  const cpu = cpuMeter();
  const rss = rssPeak();
  const worker = new Worker(CLIENT, { eval: true, workerData: { port, path: urlPath, contentType, bodies, concurrency, durationMs } });
  const out = await new Promise<{ points: number; requests: number; errors: number; firstError: string; seconds: number; latencies: number[] }>(
    (resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    },
  );
  await worker.terminate();
  // The worker's CPU is in process.cpuUsage() too (threads share the process): subtract nothing,
  // but report it as "agent + client" so the figure is not mistaken for the agent alone.
  const result = { name, points: out.points, requests: out.requests, seconds: out.seconds, latenciesMs: out.latencies, cpuMs: cpu(), rssPeak: rss(), errors: out.errors };
  if (out.errors > 0) throw new Error(`${name}: ${out.errors} failed requests, first: ${out.firstError}`);
  return result;
}

/** The API on a free loopback port, with fakes for the parts /post does not use. */
async function serveApi(sink: MetricSink, metrics: Registry, logDir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const config = { ...httpSchema.parse({}), listen: '127.0.0.1:0', allowAnyNamespace: true };
  const logger = silentLogger();
  const none = async () => ({ ok: false as const, kind: 'not-found' as const, message: 'none' });
  const app = createApi({
    config,
    logDir,
    logger,
    sink,
    metrics,
    registry: {
      current: () => ({ namespaces: [NS], checks: {}, plugins: {} }),
      pollNow: async () => [],
      status: () => [],
      onChange: () => undefined,
    },
    plugins: { list: () => [], update: none, run: none, enable: none, disable: none },
    status: () => ({}),
  });
  const server = new HttpServer({ config, logger, app });
  await server.start();
  return { port: Number(server.address().split(':').pop()), stop: () => server.stop() };
}

function row(r: PhaseResult): string {
  const sorted = [...r.latenciesMs].sort((a, b) => a - b);
  return `| ${r.name} | ${fmt(r.points / r.seconds)} | ${fmt(r.requests / r.seconds)} | ${fmt(percentile(sorted, 50), 1)} | ${fmt(percentile(sorted, 99), 1)} | ${fmt(r.cpuMs / 1000 / r.seconds, 2)} | ${fmt(r.rssPeak / 2 ** 20)} |`;
}

export default async function ingest(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const durationMs = quick ? 3000 : 15_000;
  const concurrency = Number(ctx.args.find((a) => a.startsWith('--concurrency='))?.split('=')[1] ?? 8);
  const spoolRoot = mkdtempSync(path.join(tmpdir(), 'ns-agent-bench-ingest-'));
  const nsqd = await startNsqd({ memQueueSize: 1_000_000 });
  const results: PhaseResult[] = [];
  try {
    const metricSets = Array.from({ length: 16 }, (_, i) => makeMetrics(i));
    const jsonBodies = metricSets.map((m) => JSON.stringify(m));
    const lpBodies = metricSets.map(toLineProtocol);

    // Raw publisher rate: the lines the pipeline would produce, straight into NsqPublisher.
    {
      const metrics = new Registry();
      const publisher = makePublisher(nsqd, 'raw.', path.join(spoolRoot, 'raw'), metrics);
      await publisher.start();
      const normaliser = new Normaliser({ hostname: 'bench-host', clock: systemClock });
      const lineSets = metricSets.map((set) => normaliser.normaliseBatch(set).lines);
      ctx.log(`raw publisher: ${durationMs} ms, ${concurrency} concurrent batches of ${BATCH}`);
      results.push(await rawPhase({ publish: (ns, lines) => publisher.publish(ns, lines as string[]) }, lineSets, concurrency, durationMs));
      await publisher.stop();
    }

    // The sink alone: parsed metrics straight into Pipeline.push (normalise + publish), no HTTP.
    {
      const metrics = new Registry();
      const publisher = makePublisher(nsqd, 'pipe.', path.join(spoolRoot, 'pipe'), metrics);
      await publisher.start();
      const pipeline = new Pipeline({
        normaliser: new Normaliser({ hostname: 'bench-host', clock: systemClock }),
        publisher,
        metrics,
        logger: silentLogger(),
      });
      ctx.log(`Pipeline.push: ${durationMs} ms`);
      const sinkAsPublisher = { publish: async (ns: string, set: unknown[]) => void (await pipeline.push(ns, set)) };
      results.push({ ...(await rawPhase(sinkAsPublisher, metricSets, concurrency, durationMs)), name: 'Pipeline.push, parsed metrics (no HTTP)' });
      await publisher.stop();
    }

    // The route alone: HTTP, body, JSON parse, answer; the sink only counts (the route's ceiling).
    {
      const counting: MetricSink = { push: async (_ns, metrics) => ({ accepted: metrics.length, rejected: [] }) };
      const served = await serveApi(counting, new Registry(), spoolRoot);
      try {
        ctx.log(`POST /post JSON into a counting sink: ${durationMs} ms`);
        results.push(await httpPhase('POST /post, JSON, counting sink (route alone)', served.port, `/post?ns=${NS}`, 'application/json', jsonBodies, concurrency, durationMs));
      } finally {
        await served.stop();
      }
    }

    // The whole route: HTTP → Pipeline → NsqPublisher → nsqd.
    const metrics = new Registry();
    const publisher = makePublisher(nsqd, 'http.', path.join(spoolRoot, 'http'), metrics);
    await publisher.start();
    const sink = new Pipeline({
      normaliser: new Normaliser({ hostname: 'bench-host', clock: systemClock }),
      publisher,
      metrics,
      logger: silentLogger(),
    });
    const served = await serveApi(sink, metrics, spoolRoot);
    try {
      ctx.log(`POST /post JSON: ${durationMs} ms, ${concurrency} concurrent requests of ${BATCH} metrics`);
      results.push(await httpPhase('POST /post, JSON', served.port, `/post?ns=${NS}`, 'application/json', jsonBodies, concurrency, durationMs));
      ctx.log(`POST /post line protocol: ${durationMs} ms`);
      results.push(await httpPhase('POST /post, line protocol', served.port, `/post?ns=${NS}&precision=s`, 'text/plain', lpBodies, concurrency, durationMs));
    } finally {
      await served.stop();
      await publisher.stop();
    }
    const stats = await nsqdStats(nsqd.httpAddress);
    const messages = stats.topics.reduce((n, t) => n + t.message_count, 0);
    ctx.log(`nsqd received ${messages} messages on ${stats.topics.length} topics`);
    for (const r of results) ctx.log(row(r));
  } finally {
    await stopAll();
    rmSync(spoolRoot, { recursive: true, force: true });
  }

  const raw = results[0] as PhaseResult;
  const pipeline = results[1] as PhaseResult;
  const json = results[3] as PhaseResult;
  const rate = (r: PhaseResult) => r.points / r.seconds;
  return [
    '## ingest: POST /post into a real nsqd',
    '',
    `${machineLine()}${quick ? ' (--quick: 3 s per phase)' : ' (15 s per phase)'}. Batches of ${BATCH} metrics, ${concurrency} requests in flight, keep-alive; the load generator is a worker thread in the same process, nsqd runs on the same machine.`,
    '',
    '| phase | points/s | batches/s | p50 ms | p99 ms | CPU cores (agent + client) | RSS peak MiB |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(row),
    '',
    `POST /post (JSON) runs at ${fmt((rate(json) / rate(pipeline)) * 100)} % of Pipeline.push without HTTP and ${fmt((rate(json) / rate(raw)) * 100)} % of the raw publisher. Target: at least 300,000 points/s through POST /post.`,
  ].join('\n');
}

