// POST /post throughput: batches of 1,000 metrics over HTTP into a real nsqd through the real
// Pipeline (normalise) and NsqPublisher, as JSON and as line protocol, beside the publisher's
// raw rate (pre-built lines straight into NsqPublisher) measured in the same run. The load
// generator (bench/ingest-load.ts: plain node:http, keep-alive, bodies serialised once up front)
// runs first as a worker thread, then as its own process, where the server's CPU is read alone
// from /proc/<pid>/stat: those phases alternate JSON, line protocol through the general path
// (parser, Metric objects, Normaliser) and through the stamping fast path, and report medians.
// `--quick`: 3 s per phase instead of 15 s (8 s for the repeated process phases);
// `--process-only`: only the separate-process phases.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
import type { LoadOptions, LoadResult } from './ingest-load.ts';
import { cpuMeter, fmt, machineLine, percentile, procCpu, rssPeak, type BenchContext } from './lib.ts';

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

const LOAD_SCRIPT = new URL('./ingest-load.ts', import.meta.url);

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
  const workerData: LoadOptions = { port, path: urlPath, contentType, bodies, concurrency, durationMs };
  // A worker does not inherit tsx's loader: it registers it before importing the generator.
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(LOAD_SCRIPT.href)}); })`;
  const worker = new Worker(boot, { eval: true, workerData });
  const out = await new Promise<LoadResult>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  // The worker's CPU is in process.cpuUsage() too (threads share the process): subtract nothing,
  // but report it as "agent + client" so the figure is not mistaken for the agent alone.
  const result = { name, points: out.points, requests: out.requests, seconds: out.seconds, latenciesMs: out.latencies, cpuMs: cpu(), rssPeak: rss(), errors: out.errors };
  if (out.errors > 0) throw new Error(`${name}: ${out.errors} failed requests, first: ${out.firstError}`);
  return result;
}

/**
 * The same load from a child process: this process only serves, so its own CPU in
 * /proc/<pid>/stat over the phase is the server's alone.
 */
async function processPhase(name: string, port: number, urlPath: string, contentType: string, bodiesFile: string, concurrency: number, durationMs: number): Promise<PhaseResult> {
  const opts: LoadOptions = { port, path: urlPath, contentType, bodiesFile, concurrency, durationMs };
  const child = spawn(process.execPath, ['--import', 'tsx', LOAD_SCRIPT.pathname, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => {
    text += c;
  });
  // Counted from the child's start: its module loading overlaps an idle server.
  const cpu0 = procCpu(process.pid).ownMs;
  const rss = rssPeak();
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('exit', resolve);
    child.once('error', reject);
  });
  const cpuMs = procCpu(process.pid).ownMs - cpu0;
  const peak = rss();
  if (code !== 0) throw new Error(`${name}: the load generator exited with ${code}`);
  const out = JSON.parse(text) as LoadResult;
  if (out.errors > 0) throw new Error(`${name}: ${out.errors} failed requests, first: ${out.firstError}`);
  return { name, points: out.points, requests: out.requests, seconds: out.seconds, latenciesMs: out.latencies, cpuMs, rssPeak: peak, errors: 0 };
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
  const processOnly = ctx.args.includes('--process-only');
  const processMs = quick ? 3000 : 8000;
  const results: PhaseResult[] = [];
  const separate: PhaseResult[] = [];
  try {
    const metricSets = Array.from({ length: 16 }, (_, i) => makeMetrics(i));
    const jsonBodies = metricSets.map((m) => JSON.stringify(m));
    const lpBodies = metricSets.map(toLineProtocol);

    // Raw publisher rate: the lines the pipeline would produce, straight into NsqPublisher.
    if (!processOnly) {
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
    if (!processOnly) {
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
    if (!processOnly) {
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
    // Wrapped, the route sees a plain MetricSink: line protocol takes the general path (parser,
    // Metric objects, Normaliser), as every body did before the stamping fast path.
    const general = await serveApi({ push: (ns, m, o) => sink.push(ns, m, o) }, metrics, spoolRoot);
    const counting = await serveApi({ push: async (_ns, m) => ({ accepted: m.length, rejected: [] }) }, new Registry(), spoolRoot);
    try {
      if (!processOnly) {
        ctx.log(`POST /post JSON: ${durationMs} ms, ${concurrency} concurrent requests of ${BATCH} metrics`);
        results.push(await httpPhase('POST /post, JSON', served.port, `/post?ns=${NS}`, 'application/json', jsonBodies, concurrency, durationMs));
        ctx.log(`POST /post line protocol: ${durationMs} ms`);
        results.push(await httpPhase('POST /post, line protocol', served.port, `/post?ns=${NS}&precision=s`, 'text/plain', lpBodies, concurrency, durationMs));
      }

      // The load generator as its own process; the phases alternate, so a busy spell of the
      // shared machine spreads over all of them, and each figure is a median.
      const jsonFile = path.join(spoolRoot, 'json-bodies.json');
      const lpFile = path.join(spoolRoot, 'lp-bodies.json');
      writeFileSync(jsonFile, JSON.stringify(jsonBodies));
      writeFileSync(lpFile, JSON.stringify(lpBodies));
      const plan: Array<[string, number, string, string, string]> = [
        ['POST /post, JSON, counting sink (route alone)', counting.port, `/post?ns=${NS}`, 'application/json', jsonFile],
        ['POST /post, JSON', served.port, `/post?ns=${NS}`, 'application/json', jsonFile],
        ['POST /post, line protocol, general path (before)', general.port, `/post?ns=${NS}&precision=s`, 'text/plain', lpFile],
        ['POST /post, line protocol (stamped)', served.port, `/post?ns=${NS}&precision=s`, 'text/plain', lpFile],
      ];
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, port, urlPath, contentType, file] of plan) {
          ctx.log(`separate process, round ${round + 1}/${ROUNDS}: ${name}, ${processMs} ms`);
          const r = await processPhase(name, port, urlPath, contentType, file, concurrency, processMs);
          ctx.log(`  ${fmt(r.points / r.seconds)} points/s, ${fmt(cpuPerMillion(r), 2)} CPU s per M`);
          separate.push(r);
        }
      }
    } finally {
      await counting.stop();
      await general.stop();
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

  const medians = mediansByName(separate);
  const rate = (r: PhaseResult) => r.points / r.seconds;
  const byName = (name: string) => medians.find((m) => m.name === name) as MedianRow;
  const json = byName('POST /post, JSON');
  const before = byName('POST /post, line protocol, general path (before)');
  const stamped = byName('POST /post, line protocol (stamped)');
  const goal = (m: MedianRow) => (m.pointsPerSec >= 300_000 && m.cpuSecPerMillion <= 3 ? 'met' : 'not met');
  const workerTable = processOnly
    ? []
    : [
        `Load generator in a worker thread of the same process (${quick ? 3 : 15} s per phase; CPU is agent and client together):`,
        '',
        '| phase | points/s | batches/s | p50 ms | p99 ms | CPU cores (agent + client) | RSS peak MiB |',
        '|---|---:|---:|---:|---:|---:|---:|',
        ...results.map(row),
        '',
        workerSummary(results, rate),
        '',
      ];
  return [
    '## ingest: POST /post into a real nsqd',
    '',
    `${machineLine()}${quick ? ' (--quick)' : ''}. Batches of ${BATCH} metrics, ${concurrency} requests in flight, keep-alive, nsqd on the same machine. The machine (2 cores) was shared with other work while measuring: rates are noisy, compare phases of the same run.`,
    '',
    ...workerTable,
    `Load generator in its own process (\`bench/ingest-load.ts\`), ${ROUNDS} rounds of ${processMs / 1000} s per phase, phases alternated, medians; the server's CPU is this process's own utime + stime from /proc/${'<pid>'}/stat (the generator's is not in it), RSS peak sampled every 50 ms:`,
    '',
    '| phase | points/s | server CPU s per M points | server CPU cores | p50 ms | p99 ms | RSS peak MiB |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...medians.map(
      (m) => `| ${m.name} | ${fmt(m.pointsPerSec)} | ${fmt(m.cpuSecPerMillion, 2)} | ${fmt(m.cores, 2)} | ${fmt(m.p50, 1)} | ${fmt(m.p99, 1)} | ${fmt(m.rssMiB)} |`,
    ),
    '',
    `Line protocol, stamped from the body's text: ${fmt(stamped.pointsPerSec)} points/s at ${fmt(stamped.cpuSecPerMillion, 2)} CPU s per million points, against ${fmt(before.pointsPerSec)} points/s at ${fmt(before.cpuSecPerMillion, 2)} through the general path and ${fmt(json.pointsPerSec)} points/s at ${fmt(json.cpuSecPerMillion, 2)} for JSON. Goal: at least 300,000 points/s and at most 3 CPU s per million points: line protocol ${goal(stamped)}, JSON ${goal(json)}.`,
  ].join('\n');
}

const ROUNDS = 3;

function cpuPerMillion(r: PhaseResult): number {
  return r.points > 0 ? r.cpuMs / 1000 / (r.points / 1e6) : NaN;
}

interface MedianRow {
  name: string;
  pointsPerSec: number;
  cpuSecPerMillion: number;
  cores: number;
  p50: number;
  p99: number;
  rssMiB: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Per phase name (in first-run order), the median of each figure over its rounds. */
function mediansByName(runs: PhaseResult[]): MedianRow[] {
  const names = [...new Set(runs.map((r) => r.name))];
  return names.map((name) => {
    const mine = runs.filter((r) => r.name === name);
    const pct = (r: PhaseResult, p: number) => percentile([...r.latenciesMs].sort((a, b) => a - b), p);
    return {
      name,
      pointsPerSec: median(mine.map((r) => r.points / r.seconds)),
      cpuSecPerMillion: median(mine.map(cpuPerMillion)),
      cores: median(mine.map((r) => r.cpuMs / 1000 / r.seconds)),
      p50: median(mine.map((r) => pct(r, 50))),
      p99: median(mine.map((r) => pct(r, 99))),
      rssMiB: Math.max(...mine.map((r) => r.rssPeak)) / 2 ** 20,
    };
  });
}

function workerSummary(results: PhaseResult[], rate: (r: PhaseResult) => number): string {
  const raw = results[0] as PhaseResult;
  const pipeline = results[1] as PhaseResult;
  const json = results[3] as PhaseResult;
  return `POST /post (JSON) runs at ${fmt((rate(json) / rate(pipeline)) * 100)} % of Pipeline.push without HTTP and ${fmt((rate(json) / rate(raw)) * 100)} % of the raw publisher.`;
}
