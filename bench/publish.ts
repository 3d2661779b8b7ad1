// `npm run bench -- publish [--quick]`: throughput into a real nsqd, each figure beside a raw
// baseline measured in the same run (pre-packed MPUBs written straight through an nsqjs Writer).
//   (a) lines/s through NsqPublisher.publish()          (packing, acks, backpressure)
//   (b) metrics/s through Pipeline.push() + NsqPublisher (normalisation with Point, then (a))
// Each phase runs in a fresh child process (this file, run with --phase=…), so its CPU time and
// peak RSS are its own, not what an earlier phase left in the heap. The publisher runs with the
// config defaults (nsqSchema) unless --msg-kib= --mpub-kib= --inflight= --linger-ms= say otherwise.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writer } from 'nsqjs';
import { Registry } from 'prom-client';
import { systemClock } from '../src/clock.ts';
import type { NsqConfig } from '../src/config/schema.ts';
import { silentLogger } from '../src/log/logger.ts';
import { Normaliser } from '../src/points/normalise.ts';
import { Pipeline } from '../src/points/pipeline.ts';
import { encodeMessage } from '../src/publish/envelope.ts';
import { NsqPublisher } from '../src/publish/nsq-publisher.ts';
import { topicFor } from '../src/topic-names.ts';
import { cpuMeter, fmt, machineLine, rssPeak, type BenchContext } from './lib.ts';

const CHUNK = 1000;
const PRODUCERS = 16;
const SELF = fileURLToPath(import.meta.url);

type Phase = 'raw' | 'lines' | 'metrics';

interface PhaseResult {
  /** RSS of the child before the phase: Node, tsx, the modules and the inputs. */
  rssBeforeBytes: number;
  items: number;
  seconds: number;
  cpuMs: number;
  rssPeakBytes: number;
  /** Publisher counters after the phase (not for raw). */
  messages?: number;
  batches?: number;
  spooledLines?: number;
}

function line(i: number): string {
  return `cpu,host=web-01,cpu=cpu${i % 8} usage_user=${(i % 1000) / 10},usage_system=3.25,usage_idle=84.25 ${1_700_000_000 + (i % 100_000)}`;
}

// --- the child: one phase ------------------------------------------------------------------

async function measure(fn: () => Promise<number>): Promise<Omit<PhaseResult, 'messages' | 'batches' | 'spooledLines'>> {
  const rssBeforeBytes = process.memoryUsage.rss();
  const rss = rssPeak(20);
  const cpu = cpuMeter();
  const t0 = process.hrtime.bigint();
  const items = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rssBeforeBytes, items, seconds, cpuMs: cpu(), rssPeakBytes: rss() };
}

/** Pre-packed MPUBs (built before the clock starts) through one nsqjs Writer, `window` in flight. */
async function rawPhase(address: string, cfg: NsqConfig, total: number): Promise<PhaseResult> {
  const linesPerMessage = Math.floor((cfg.maxMessageBytes - 64) / (line(0).length + 1));
  const messagesPerMpub = Math.max(1, Math.floor((cfg.maxMpubBytes - 4) / (cfg.maxMessageBytes + 4)));
  const message = encodeMessage('bench', Array.from({ length: linesPerMessage }, (_, i) => line(i)));
  const mpub = Array.from({ length: messagesPerMpub }, () => message);
  const linesPerMpub = linesPerMessage * messagesPerMpub;
  const mpubs = Math.ceil(total / linesPerMpub);
  const [host, port] = address.split(':');
  const writer = new Writer(host as string, Number(port));
  writer.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    writer.once('ready', resolve);
    writer.once('closed', () => reject(new Error('nsqd closed the baseline writer')));
    writer.connect();
  });
  const run = await measure(
    () =>
      new Promise<number>((resolve, reject) => {
        let sent = 0;
        let done = 0;
        const pump = (): void => {
          while (sent < mpubs && sent - done < cfg.maxInFlightBatches) {
            sent++;
            writer.publish('bench.raw', mpub, (err) => {
              if (err) return reject(err);
              done++;
              if (done === mpubs) resolve(mpubs * linesPerMpub);
              else pump();
            });
          }
        };
        pump();
      }),
  );
  writer.close();
  return run;
}

async function publisherPhase(phase: 'lines' | 'metrics', address: string, cfg: NsqConfig, total: number): Promise<PhaseResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-publish-'));
  const publisher = new NsqPublisher({ ...cfg, nsqdTcpAddresses: [address], spool: { ...cfg.spool, dir }, metrics: new Registry(), logger: silentLogger() });
  await publisher.start();
  const pipeline = new Pipeline({
    normaliser: new Normaliser({ hostname: 'web-01', clock: systemClock }),
    publisher,
    metrics: new Registry(),
    logger: silentLogger(),
  });
  // Inputs are made before the clock starts: the bench measures publishing, not test data.
  const lineChunks = Array.from({ length: PRODUCERS }, (_, c) => Array.from({ length: CHUNK }, (_, i) => line(c * CHUNK + i)));
  const metricChunks = Array.from({ length: PRODUCERS }, (_, c) =>
    Array.from({ length: CHUNK }, (_, i) => {
      const n = c * CHUNK + i;
      return { name: 'qps', timestamp: 1_700_000_000 + n, tags: { api: `login${n % 10}`, dc: 'eu-west' }, value: n * 1.5 };
    }),
  );
  const run = await measure(async () => {
    let next = 0;
    const producer = async (): Promise<void> => {
      while (next < total) {
        const c = (next / CHUNK) % PRODUCERS;
        next += CHUNK;
        if (phase === 'lines') await publisher.publish('bench-lines', lineChunks[c] as string[]);
        else await pipeline.push('bench-metrics', metricChunks[c] as object[]);
      }
    };
    await Promise.all(Array.from({ length: PRODUCERS }, producer));
    return next;
  });
  const counters = publisher.status().counters;
  await publisher.stop();
  rmSync(dir, { recursive: true, force: true });
  return { ...run, messages: counters.publishedMessages, batches: counters.publishedBatches, spooledLines: counters.spooledLines };
}

async function childMain(): Promise<void> {
  const get = (name: string): string => {
    const a = process.argv.find((x) => x.startsWith(`--${name}=`));
    if (a === undefined) throw new Error(`missing --${name}=`);
    return a.slice(name.length + 3);
  };
  const phase = get('phase') as Phase;
  const address = get('nsqd');
  const cfg = JSON.parse(get('cfg')) as NsqConfig;
  const total = Number(get('total'));
  const result = phase === 'raw' ? await rawPhase(address, cfg, total) : await publisherPhase(phase, address, cfg, total);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// --- the parent: nsqd, phases, report ------------------------------------------------------

function runPhase(phase: Phase, address: string, cfg: NsqConfig, total: number): Promise<PhaseResult> {
  const args = ['--import', 'tsx', SELF, `--phase=${phase}`, `--nsqd=${address}`, `--cfg=${JSON.stringify(cfg)}`, `--total=${total}`];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 1024 * 1024, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`bench phase ${phase} failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as PhaseResult);
    });
  });
}

async function deleteTopic(httpAddress: string, topic: string): Promise<void> {
  // Frees nsqd's memory between phases (nothing consumes these topics).
  await fetch(`http://${httpAddress}/topic/delete?topic=${encodeURIComponent(topic)}`, { method: 'POST' }).then((r) => r.arrayBuffer());
}

export default async function bench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const totalLines = quick ? 2_000_000 : 10_000_000;
  const totalMetrics = quick ? 1_000_000 : 4_000_000;
  const arg = (name: string): number | undefined => {
    const a = ctx.args.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? undefined : Number(a.slice(name.length + 3));
  };
  const overrides: Record<string, number> = {};
  if (arg('msg-kib') !== undefined) overrides.maxMessageBytes = (arg('msg-kib') as number) * 1024;
  if (arg('mpub-kib') !== undefined) overrides.maxMpubBytes = (arg('mpub-kib') as number) * 1024;
  if (arg('inflight') !== undefined) overrides.maxInFlightBatches = arg('inflight') as number;
  if (arg('linger-ms') !== undefined) overrides.lingerMs = arg('linger-ms') as number;

  // Imported here, not at the top: the phase children load this file and need neither.
  const { nsqSchema } = await import('../src/config/schema.ts');
  const { startNsqd, stopAll } = await import('../test/helpers/servers.ts');
  const nsqd = await startNsqd();
  try {
    const cfg = nsqSchema.parse({ nsqdTcpAddresses: [nsqd.tcpAddress], ...overrides });
    ctx.log(`raw baseline: ${fmt(totalLines)} lines…`);
    const raw = await runPhase('raw', nsqd.tcpAddress, cfg, totalLines);
    await deleteTopic(nsqd.httpAddress, 'bench.raw');
    ctx.log(`(a) publisher: ${fmt(totalLines)} lines…`);
    const lines = await runPhase('lines', nsqd.tcpAddress, cfg, totalLines);
    await deleteTopic(nsqd.httpAddress, topicFor('bench-lines', cfg.topicPrefix));
    ctx.log(`(b) pipeline: ${fmt(totalMetrics)} metrics…`);
    const metrics = await runPhase('metrics', nsqd.tcpAddress, cfg, totalMetrics);
    await deleteTopic(nsqd.httpAddress, topicFor('bench-metrics', cfg.topicPrefix));

    const rate = (r: PhaseResult): number => r.items / r.seconds;
    const mib = (b: number): string => fmt(b / 2 ** 20, 0);
    const peak = Math.max(raw.rssPeakBytes, lines.rssPeakBytes, metrics.rssPeakBytes);
    const before = [raw, lines, metrics].map((r) => r.rssBeforeBytes);
    const row = (name: string, unit: string, r: PhaseResult): string =>
      `| ${name} | ${fmt(r.items)} ${unit} | ${fmt(rate(r))} | ${fmt((100 * rate(r)) / rate(raw))} % | ${fmt((1000 * r.cpuMs) / r.items, 2)} | ${mib(r.rssPeakBytes)} |`;
    const okA = rate(lines) >= 1e6 && rate(lines) >= rate(raw) / 2;
    const okB = rate(metrics) >= 4e5;
    return [
      `## publish${quick ? ' (quick run)' : ''}`,
      '',
      `${machineLine()}; nsqd on the same machine. nsq.* settings: message ${fmt(cfg.maxMessageBytes / 1024)} KiB, MPUB ${fmt(cfg.maxMpubBytes / 1024)} KiB, linger ${cfg.lingerMs} ms, ${cfg.maxInFlightBatches} batches in flight${Object.keys(overrides).length ? ' (overridden)' : ' (defaults)'}. ${PRODUCERS} concurrent producers of ${fmt(CHUNK)}-item chunks, each awaiting its acknowledgement; each phase in its own process.`,
      '',
      '| phase | items | per second | vs raw | CPU µs per item | peak RSS MiB |',
      '|---|---:|---:|---:|---:|---:|',
      row('raw: pre-packed MPUB through nsqjs', 'lines', raw),
      row('(a) NsqPublisher.publish', 'lines', lines),
      row('(b) Pipeline.push + NsqPublisher', 'metrics', metrics),
      '',
      `Targets: (a) ≥ 1,000,000 lines/s and ≥ 50 % of raw — ${okA ? 'met' : 'NOT met'}; (b) ≥ 400,000 metrics/s — ${okB ? 'met' : 'NOT met'}; peak RSS < 200 MB — ${peak < 200e6 ? 'met' : 'NOT met'} (${fmt(peak / 1e6)} MB = ${mib(peak)} MiB; before its phase each process already held ${mib(Math.min(...before))}–${mib(Math.max(...before))} MiB: Node, the tsx loader thread, modules, inputs).`,
      `(a) sent ${fmt(lines.messages ?? 0)} messages in ${fmt(lines.batches ?? 0)} MPUBs; (b) ${fmt(metrics.messages ?? 0)} messages in ${fmt(metrics.batches ?? 0)} MPUBs; spooled: ${fmt((lines.spooledLines ?? 0) + (metrics.spooledLines ?? 0))} lines.`,
    ].join('\n');
  } finally {
    await stopAll();
  }
}

// Run as a phase child (`node --import tsx bench/publish.ts --phase=…`), not when imported.
if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  childMain().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
      process.exit(1);
    },
  );
}
