// Relay throughput: points/s from nsqd through the relay and gateway sender into a real
// influxd, beside the same line protocol posted straight to influxd in the same run (the
// backend's own limit; measured before and after the relay phase, averaged). Each phase gets
// a fresh influxd, so one phase's compactions do not slow the next. The topic is filled
// before the relay starts: the relay phase measures consumption, not publishing.
// `--quick`: 200k points per phase instead of 2M. `--topics=N` spreads the points over N
// namespaces; `--max-in-flight-bytes=N` sets relay.maxInFlightBytes; `--relay-only` skips the
// direct phases, so the RSS peak is the relay's own (memory measurements).
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { relaySchema, senderSchema } from '../src/config/schema.ts';
import { silentLogger } from '../src/log/logger.ts';
import { encodeMessage } from '../src/publish/envelope.ts';
import { topicFor } from '../src/topic-names.ts';
import { createRelay } from '../src/relay/relay.ts';
import { InfluxGatewaySender } from '../src/sender/gateway-sender.ts';
import { TestWriter } from '../test/relay/nsq-writer.ts';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle } from '../test/helpers/servers.ts';
import { cpuMeter, fmt, machineLine, procCpuMs, rssPeak, type BenchContext } from './lib.ts';

const LINES_PER_MESSAGE = 1000;
const DIRECT_BATCH = 5000;
const DIRECT_CONCURRENCY = 4;

interface Phase {
  name: string;
  points: number;
  seconds: number;
  cpuMs: number;
  influxCpuMs: number;
  rssPeak: number;
}

function line(i: number, t0: number): string {
  return `bench_relay,host=host${i % 200},dc=eu-west-1,api=endpoint_${i % 37} value=${(i * 7919) % 10_000},count=${i % 97}i ${t0 + i}`;
}

/** Line protocol posted straight to /write, DIRECT_CONCURRENCY requests at a time. */
async function directPhase(influx: InfluxdHandle, db: string, points: number, t0: number): Promise<Phase> {
  await influx.createDatabase(db);
  const bodies: string[] = [];
  for (let i = 0; i < points; i += DIRECT_BATCH) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(points, i + DIRECT_BATCH); j++) lines.push(line(j, t0));
    bodies.push(lines.join('\n'));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: DIRECT_CONCURRENCY });
  const url = new URL(`${influx.url}/write?db=${encodeURIComponent(db)}&precision=s`);
  const post = (body: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'text/plain' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  const cpu = cpuMeter();
  const rss = rssPeak();
  const influxCpu0 = procCpuMs(influx.pid);
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: DIRECT_CONCURRENCY }, async () => {
      while (next < bodies.length) await post(bodies[next++] as string);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { name: 'direct', points, seconds, cpuMs: cpu(), influxCpuMs: procCpuMs(influx.pid) - influxCpu0, rssPeak: rss() };
}

export default async function relayBench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const relayOnly = ctx.args.includes('--relay-only');
  const numArg = (name: string): number | undefined => {
    const a = ctx.args.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? undefined : Number(a.slice(name.length + 3));
  };
  const topics = numArg('topics') ?? 1;
  const maxInFlightBytes = numArg('max-in-flight-bytes');
  const points = quick ? 200_000 : 2_000_000;
  const nsqd = await startNsqd({ memQueueSize: 100_000 });
  const freshInflux = () => startInfluxd({ version: '1.6' });
  try {
    let influx = await freshInflux();
    let direct1: Phase | undefined;
    if (!relayOnly) {
      ctx.log(`direct #1: ${fmt(points)} points`);
      direct1 = await directPhase(influx, 'direct', points, 1_600_000_000);
      await influx.stop();
      influx = await freshInflux();
    }

    const namespaces = Array.from({ length: topics }, (_, k) => (topics === 1 ? 'bench.relay' : `bench.relay${k}`));
    ctx.log(`filling ${topics} topic(s) with ${fmt(points / LINES_PER_MESSAGE)} messages of ${LINES_PER_MESSAGE} lines`);
    const writer = new TestWriter(nsqd);
    for (const ns of namespaces) {
      // Create the channel first so nsqd keeps every message for it.
      await fetch(`http://${nsqd.httpAddress}/channel/create?topic=${topicFor(ns, 'ns.')}&channel=relay`, { method: 'POST' }).then((r) => r.text());
    }
    // Made and sent in small groups, so this process holds no copy of the topic's contents.
    let messageCount = 0;
    for (let i = 0, groups = 0; i < points; groups++) {
      const ns = namespaces[groups % topics] as string;
      const group: Buffer[] = [];
      for (let m = 0; m < 20 && i < points; m++, i += LINES_PER_MESSAGE) {
        const lines: string[] = [];
        for (let j = i; j < Math.min(points, i + LINES_PER_MESSAGE); j++) lines.push(line(j, 1_600_000_000));
        group.push(encodeMessage(ns, lines));
      }
      messageCount += group.length;
      await writer.publishRaw(topicFor(ns, 'ns.'), group);
    }
    writer.close();

    ctx.log('relay: consuming');
    const deadLetterDir = mkdtempSync(path.join(os.tmpdir(), 'ns-agent-bench-relay-'));
    const senderCfg = senderSchema.parse({ backends: [{ name: 'influx', url: influx.url }] });
    const sender = new InfluxGatewaySender({ config: { ...senderCfg, deadLetterDir }, logger: silentLogger() });
    const relay = createRelay(
      {
        relay: relaySchema.parse(maxInFlightBytes === undefined ? {} : { maxInFlightBytes }),
        nsq: { nsqdTcpAddresses: [nsqd.tcpAddress], topicPrefix: 'ns.' },
        sender: { deadLetterDir, deadLetterMaxFileBytes: 64 * 1024 * 1024 },
      },
      { sender, namespaces: { current: () => namespaces, onChange: () => undefined }, logger: silentLogger() },
    );
    const cpu = cpuMeter();
    const rssAtStart = process.memoryUsage.rss();
    const rss = rssPeak();
    const influxCpu0 = procCpuMs(influx.pid);
    const start = performance.now();
    await sender.start();
    await relay.start();
    const deadline = Date.now() + 600_000;
    let heldPeak = 0;
    while (relay.status().finished !== messageCount) {
      if (Date.now() > deadline) throw new Error(`relay finished only ${String(relay.status().finished)} of ${messageCount} messages`);
      heldPeak = Math.max(heldPeak, Number(relay.status().inFlightBytes));
      await delay(10);
    }
    const seconds = (performance.now() - start) / 1000;
    const relayPhase: Phase = { name: 'relay', points, seconds, cpuMs: cpu(), influxCpuMs: procCpuMs(influx.pid) - influxCpu0, rssPeak: rss() };
    const requeued = relay.status().requeued as number;
    const byteBudgetPauses = relay.status().byteBudgetPauses as number;
    await relay.stop();
    await sender.stop();
    let stored = 0;
    for (const ns of namespaces) stored += await influx.count(ns, 'bench_relay');
    if (stored !== points) throw new Error(`influxd holds ${stored} of ${points} points sent through the relay`);

    const rate = (p: Phase) => p.points / p.seconds;
    const row = (p: Phase) =>
      `| ${p.name} | ${fmt(p.points)} | ${fmt(p.seconds, 2)} | ${fmt(rate(p))} | ${fmt(p.cpuMs / p.seconds / 10, 0)} % | ${fmt(p.influxCpuMs / p.seconds / 10, 0)} % | ${fmt(p.rssPeak / 2 ** 20)} MiB |`;
    if (relayOnly || !direct1) {
      const budget = maxInFlightBytes ?? relaySchema.parse({}).maxInFlightBytes;
      return [
        '## relay',
        '',
        `nsqd → relay → gateway sender → influxd 1.6.7, relay only (\`--relay-only\`): ${topics} topic(s), messages of ${LINES_PER_MESSAGE} lines,`,
        `relay.maxInFlightBytes ${fmt(budget / 2 ** 20)} MiB, otherwise default relay and sender settings. ${machineLine()}.`,
        '',
        '| phase | points | seconds | points/s | this process CPU | influxd CPU | RSS peak |',
        '|---|---:|---:|---:|---:|---:|---:|',
        row(relayPhase),
        '',
        `Every point stored (InfluxQL count ${fmt(stored)}); ${requeued} messages requeued; ${String(byteBudgetPauses)} byte-budget pauses; messages held peaked at ${fmt(heldPeak / 2 ** 20, 1)} MiB (sampled every 10 ms); RSS ${fmt(rssAtStart / 2 ** 20)} MiB when the relay started.`,
      ].join('\n');
    }
    await influx.stop();

    ctx.log(`direct #2: ${fmt(points)} points`);
    influx = await freshInflux();
    const direct2 = await directPhase(influx, 'direct', points, 1_600_000_000);

    const baseline = (rate(direct1) + rate(direct2)) / 2;
    const ratio = rate(relayPhase) / baseline;
    return [
      '## relay',
      '',
      `nsqd → relay → gateway sender → influxd 1.6.7 (one backend, v1 /write), against the same line protocol`,
      `posted straight to influxd (${DIRECT_BATCH}-line batches, ${DIRECT_CONCURRENCY} in flight) before and after; a fresh influxd per phase.`,
      `Messages of ${LINES_PER_MESSAGE} lines, default relay and sender settings.${quick ? ' `--quick` run.' : ''}`,
      `${machineLine()}.`,
      '',
      '| phase | points | seconds | points/s | this process CPU | influxd CPU | RSS peak |',
      '|---|---:|---:|---:|---:|---:|---:|',
      row(direct1),
      row(relayPhase),
      row({ ...direct2, name: 'direct (after)' }),
      '',
      `Relay: **${fmt(rate(relayPhase))} points/s = ${fmt(ratio * 100, 0)} %** of influxd's direct rate (${fmt(baseline)} points/s, mean of both direct runs); target ≥ 70 %.`,
      `Every point stored (InfluxQL count ${fmt(stored)}); ${requeued} messages requeued.`,
    ].join('\n');
  } finally {
    await stopAll();
  }
}
