// The gateway of a data centre across a long link: one `agent relay` process consuming a local
// nsqd and writing to a central influxd over HTTPS through toxiproxy, on a clean loopback link
// and on a link with 50 ms each way (100 ms round trip), gzip on and off; in the same run.
// Reports points/s, the relay process's CPU and peak RSS, and bytes on the wire per point. A
// second table: bytes per point between an agent's publisher and nsqd with NSQ's compression
// none, deflate and snappy.
// `--quick`: 200k points per relay phase instead of 1M.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { nsqSchema } from '../src/config/schema.ts';
import { silentLogger } from '../src/log/logger.ts';
import { encodeMessage } from '../src/publish/envelope.ts';
import { NsqPublisher } from '../src/publish/nsq-publisher.ts';
import { topicFor } from '../src/topic-names.ts';
import { PACKAGE_ROOT } from '../src/version.ts';
import { AgentApi, freePort, stopAgent } from '../test/faults/harness.ts';
import { runAgent, writeConfig } from '../test/helpers/agent-process.ts';
import { makeTestCerts } from '../test/helpers/certs.ts';
import { startInfluxd, startNsqd, stopAll, type NsqdHandle } from '../test/helpers/servers.ts';
import { startToxiproxy, type ToxiproxyHandle } from '../test/helpers/toxiproxy.ts';
import { TestWriter } from '../test/relay/nsq-writer.ts';
import { fmt, machineLine, procCpuMs, procMem, type BenchContext } from './lib.ts';

const LINES_PER_MESSAGE = 1000;
const LATENCY_MS = 50;

interface RelayPhase {
  name: string;
  latencyMs: number;
  gzip: boolean;
  /** sender.maxConcurrentWrites; default 4. */
  concurrentWrites?: number;
  /** relay.maxInFlight and sender.maxQueuedPoints: the memory bounds (defaults 200 and 200,000). */
  lean?: boolean;
  /** V8 flags for the relay process (NODE_OPTIONS). */
  nodeOptions?: string;
}

interface RelayResult extends RelayPhase {
  points: number;
  seconds: number;
  cpuMs: number;
  rssPeakBytes: number;
  wireBytes: number;
}

function line(i: number, t0: number): string {
  return `bench_gateway,host=host${i % 200},dc=dc2,api=endpoint_${i % 37} value=${(i * 7919) % 10_000},count=${i % 97}i ${t0 + i}`;
}

async function relayPhase(
  phase: RelayPhase,
  index: number,
  points: number,
  ctx: BenchContext,
  deps: { nsqd: NsqdHandle; toxiproxy: ToxiproxyHandle; certs: ReturnType<typeof makeTestCerts> },
): Promise<RelayResult> {
  const { nsqd, toxiproxy, certs } = deps;
  const influx = await startInfluxd({ version: '1.6', tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile } });
  const proxyName = `central_${index}`;
  const link = await toxiproxy.link(proxyName, `127.0.0.1:${influx.port}`);
  if (phase.latencyMs > 0) await link.latency(phase.latencyMs, 0);
  const ns = `bench.gw${index}`;
  const topic = topicFor(ns, 'ns.');
  await fetch(`http://${nsqd.httpAddress}/channel/create?topic=${topic}&channel=gateway`, { method: 'POST' }).then((r) => r.text());

  const dir = mkdtempSync(path.join(os.tmpdir(), 'ns-agent-bench-gw-'));
  const registry = path.join(dir, 'registry.json');
  writeConfig(dir, { hosts: { '*': { namespaces: [ns] } } }, 'registry.json');
  const httpPort = await freePort();
  const file = writeConfig(dir, {
    hostname: 'gateway-bench',
    dataDir: path.join(dir, 'data'),
    log: { level: 'info', dir: path.join(dir, 'log'), pretty: 'always' },
    registry: { source: 'file', file: registry },
    http: { listen: `127.0.0.1:${httpPort}` },
    nsq: { nsqdTcpAddresses: [nsqd.tcpAddress] },
    relay: { channel: 'gateway', ...(phase.lean ? { maxInFlight: 50 } : {}) },
    sender: {
      ...(phase.lean ? { maxQueuedPoints: 50_000 } : {}),
      backends: [{ name: 'central', url: `https://${link.listen}`, tls: { caFile: certs.caFile }, gzip: phase.gzip }], maxConcurrentWrites: phase.concurrentWrites ?? 4,
    },
  });
  // The compiled agent, as operators run it (tsx alone adds ~50 MB of RSS).
  const run = runAgent(['relay', '-f', file], {
    NS_AGENT_FROM_SOURCE: '0',
    ...(phase.nodeOptions ? { NODE_OPTIONS: phase.nodeOptions } : {}),
  });
  try {
    await run.waitFor(/agent started/, 60_000);
    const api = new AgentApi(`http://127.0.0.1:${httpPort}`);
    const pid = run.child.pid;
    const cpu0 = procCpuMs(pid);
    ctx.log(`${phase.name}: ${fmt(points)} points`);
    const start = performance.now();
    // The topic fills while the gateway consumes: nsqd takes ~2M points/s, far above the relay.
    const writer = new TestWriter(nsqd);
    const messages = Math.ceil(points / LINES_PER_MESSAGE);
    for (let m = 0; m < messages; m += 20) {
      const batch: Buffer[] = [];
      for (let k = m; k < Math.min(messages, m + 20); k++) {
        const lines: string[] = [];
        for (let j = k * LINES_PER_MESSAGE; j < Math.min(points, (k + 1) * LINES_PER_MESSAGE); j++) lines.push(line(j, 1_600_000_000));
        batch.push(encodeMessage(ns, lines));
      }
      await writer.publishRaw(topic, batch);
    }
    writer.close();
    const deadline = Date.now() + 900_000;
    for (;;) {
      const finished = Number((await api.status()).relay?.finished ?? 0);
      if (finished >= messages) break;
      if (Date.now() > deadline) throw new Error(`${phase.name}: the gateway finished ${finished} of ${messages} messages`);
      await delay(50);
    }
    const seconds = (performance.now() - start) / 1000;
    const result: RelayResult = {
      ...phase,
      points,
      seconds,
      cpuMs: procCpuMs(pid) - cpu0,
      rssPeakBytes: pid === undefined ? 0 : procMem(pid).hwm,
      wireBytes: 0,
    };
    const stored = await influx.count(ns, 'bench_gateway');
    if (stored !== points) throw new Error(`${phase.name}: influxd holds ${stored} of ${points} points`);
    await stopAgent(run);
    // toxiproxy counts a connection's bytes when it closes: read them once the gateway is gone.
    result.wireBytes = (await toxiproxy.bytes(proxyName)).upstream;
    return result;
  } finally {
    await stopAgent(run);
    await influx.stop();
  }
}

/** Bytes per point from a publisher to nsqd through toxiproxy, per NSQ compression setting. */
async function publishBytes(nsqd: NsqdHandle, toxiproxy: ToxiproxyHandle, compression: 'none' | 'deflate' | 'snappy', points: number): Promise<number> {
  const name = `publish_${compression}`;
  const link = await toxiproxy.link(name, nsqd.tcpAddress);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ns-agent-bench-gw-pub-'));
  const cfg = nsqSchema.parse({ nsqdTcpAddresses: [link.listen], compression, spool: { dir } });
  const publisher = new NsqPublisher({ ...cfg, spool: { ...cfg.spool, dir }, metrics: new Registry(), logger: silentLogger() });
  await publisher.start();
  try {
    for (let i = 0; i < points; i += 1000) {
      const lines: string[] = [];
      for (let j = i; j < Math.min(points, i + 1000); j++) lines.push(line(j, 1_600_000_000));
      await publisher.publish(`bench.pub.${compression}`, lines);
    }
  } finally {
    await publisher.stop();
  }
  // Counted when the connection closes (toxiproxy).
  await delay(200);
  return (await toxiproxy.bytes(name)).upstream / points;
}

export default async function gatewayBench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  ctx.log('npm run build (the gateway runs compiled, from dist/)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
  const points = quick ? 200_000 : 1_000_000;
  const certs = makeTestCerts();
  const nsqd = await startNsqd({ memQueueSize: 100_000 });
  const toxiproxy = await startToxiproxy({ proxyMetrics: true });
  try {
    const phases: RelayPhase[] = [
      { name: 'clean loopback, TLS, gzip', latencyMs: 0, gzip: true },
      { name: `${LATENCY_MS} ms each way, TLS, gzip`, latencyMs: LATENCY_MS, gzip: true },
      { name: `${LATENCY_MS} ms each way, TLS, no gzip`, latencyMs: LATENCY_MS, gzip: false },
      // A long link wants more requests in flight: throughput per connection is batch / round trip.
      { name: `${LATENCY_MS} ms each way, TLS, gzip, 8 writes in flight`, latencyMs: LATENCY_MS, gzip: true, concurrentWrites: 8 },
      // Memory follows what is held in flight: 50 messages per topic, 50,000 points queued.
      { name: `${LATENCY_MS} ms each way, TLS, gzip, relay.maxInFlight 50, sender.maxQueuedPoints 50,000`, latencyMs: LATENCY_MS, gzip: true, lean: true },
      // Message buffers outlive a young-generation collection; a smaller young generation
      // promotes them sooner and V8 collects the old generation's external memory sooner.
      { name: `${LATENCY_MS} ms each way, TLS, gzip, NODE_OPTIONS=--max-semi-space-size=4`, latencyMs: LATENCY_MS, gzip: true, nodeOptions: '--max-semi-space-size=4' },
    ];
    const results: RelayResult[] = [];
    for (const [i, phase] of phases.entries()) results.push(await relayPhase(phase, i, points, ctx, { nsqd, toxiproxy, certs }));

    const pubPoints = quick ? 50_000 : 200_000;
    ctx.log(`publisher → nsqd bytes: ${fmt(pubPoints)} points per compression setting`);
    const pub: Array<[string, number]> = [];
    for (const c of ['none', 'deflate', 'snappy'] as const) pub.push([c, await publishBytes(nsqd, toxiproxy, c, pubPoints)]);

    const rate = (r: RelayResult): number => r.points / r.seconds;
    const row = (r: RelayResult): string =>
      `| ${r.name} | ${fmt(r.points)} | ${fmt(r.seconds, 2)} | ${fmt(rate(r))} | ${fmt(r.cpuMs / r.seconds / 10, 0)} % | ${fmt(r.points / (r.cpuMs / 1000))} | ${fmt(r.rssPeakBytes / 2 ** 20)} MiB | ${fmt(r.wireBytes / r.points, 1)} |`;
    const clean = results[0] as RelayResult;
    const far = results[1] as RelayResult;
    const capped = results[results.length - 1] as RelayResult;
    const lineBytes = line(123_456, 1_600_000_000).length + 1;
    return [
      '## gateway',
      '',
      'One `agent relay` process (compiled, from dist/) consuming a local nsqd 1.3.0 on channel "gateway" and',
      'writing to a central influxd 1.6.7 over HTTPS (throwaway CA) through toxiproxy 2.5.0; a fresh influxd per phase;',
      `messages of ${LINES_PER_MESSAGE} lines, default relay and sender settings; the topic fills while the relay consumes.`,
      `CPU and peak RSS (VmHWM) are the relay process's own; wire bytes are what toxiproxy carried towards influxd (TLS records included), per point (a line is ~${lineBytes} bytes).${quick ? ' `--quick` run.' : ''}`,
      `${machineLine()}.`,
      '',
      '| link | points | seconds | points/s | relay CPU | points per relay CPU-second | relay RSS peak | wire bytes/point |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map(row),
      '',
      `Across the ${LATENCY_MS} ms link: **${fmt(rate(far))} points/s** (${fmt((rate(far) / rate(clean)) * 100, 0)} % of the clean link's ${fmt(rate(clean))}), ` +
        `${fmt(far.points / (far.cpuMs / 1000))} points per CPU-second of the relay (one core's ceiling), ${fmt(far.rssPeakBytes / 2 ** 20)} MiB peak RSS with the defaults, ` +
        `${fmt(capped.rssPeakBytes / 2 ** 20)} MiB with \`--max-semi-space-size=4\` (${fmt(rate(capped))} points/s); goal ≥ 100,000 points/s on one core and ≤ 200 MB (the Open-Falcon gateway: 10,000/s, 500 MB).`,
        'Points/s vary by ±30 % between runs on this shared machine; the relay uses a third of a core at most, so influxd and the machine set the pace.',
      '',
      'Agent → nsqd, bytes on the wire per point by `nsq.compression` (same lines, packed by the publisher):',
      '',
      '| compression | bytes/point |',
      '|---|---:|',
      ...pub.map(([c, b]) => `| ${c} | ${fmt(b, 1)} |`),
    ].join('\n');
  } finally {
    await toxiproxy.stop();
    await stopAll();
  }
}
