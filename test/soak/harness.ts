// The soak: a real `bin/agent start` process running the whole pipeline (file registry with a
// few namespaces, port and process checks, git plugins from bare repos, built-in plugins, NSQ
// with the relay, InfluxDB) under a steady POST /post load, sampled for RSS and event-loop delay.
// Shared by `npm run soak` (scripts/soak.ts) and the short version in test/soak/soak.test.ts.
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { runAgent, type AgentRun } from '../helpers/agent-process.ts';
import { pluginRepo } from '../plugins/helpers.ts';
import { freePort, startInfluxd, startNsqd, stopAll, type InfluxdHandle, type InfluxVersion } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';

export interface SoakOptions {
  durationMs: number;
  /** Samples before this are warm-up: shown in the table, left out of the growth figures. */
  warmupMs: number;
  sampleEveryMs: number;
  /** The load generator: POST /post requests per second, each with this many points. */
  postsPerSec: number;
  pointsPerPost: number;
  /** Interval of the git plugins (the built-in ones run at twice it). */
  pluginIntervalSec: number;
  influxVersion?: InfluxVersion;
  /** Progress lines (one per sample); default: none. */
  log?: (line: string) => void;
}

export interface SoakSample {
  /** Seconds since the agent answered /health. */
  tSec: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** prom-client's monitorEventLoopDelay, reset at each /metrics scrape: the window since the last sample. */
  loopLagMeanMs: number;
  loopLagP99Ms: number;
  loopLagMaxMs: number;
  pointsPosted: number;
}

export interface SoakWindow {
  rssMedianBytes: number;
  loopLagP99MedianMs: number;
}

export interface SoakResult {
  durationSec: number;
  samples: SoakSample[];
  postsSent: number;
  postsFailed: number;
  /** Points the agent acknowledged (2xx, `accepted`). */
  pointsPosted: number;
  /** The same points counted in InfluxDB after the drain. */
  pointsStored: number;
  /** Result points per plugin (PLUGIN.<name>) found in InfluxDB, and how many said success. */
  pluginRuns: Record<string, { runs: number; ok: number }>;
  /** Check points (port/process) stored for the checks namespace. */
  checkPoints: number;
  /** Post-warm-up windows: the first and the last quarter of the samples after warm-up. */
  firstWindow: SoakWindow;
  lastWindow: SoakWindow;
  /** Least-squares RSS slope over the samples after warm-up. */
  rssSlopeMiBPerHour: number;
  rssPeakBytes: number;
  loopLagMaxMs: number;
  agentExitCode: number | null;
  /** The agent's /me/status at the end of the load, for the report. */
  statusAtEnd: Record<string, unknown>;
}

const LOAD_NS = 'soak.load';
const CHECKS_NS = 'soak.checks';
const PLUGINS_NS = 'soak.plugins';
const LOAD_MEASUREMENT = 'soak_load';
/** Series per load measurement: the slot tag cycles through these, the timestamp steps after each round. */
const LOAD_SLOTS = 1000;


function readRss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function window(samples: SoakSample[]): SoakWindow {
  return {
    rssMedianBytes: median(samples.map((s) => s.rssBytes)),
    loopLagP99MedianMs: median(samples.map((s) => s.loopLagP99Ms)),
  };
}

async function countOrZero(influx: InfluxdHandle, db: string, measurement: string): Promise<number> {
  try {
    return await influx.count(db, measurement);
  } catch {
    return 0; // the database does not exist yet
  }
}

/** Points of each PLUGIN.<name> result measurement in `db`, and how many were successes. */
async function pluginRuns(influx: InfluxdHandle, db: string): Promise<Record<string, { runs: number; ok: number }>> {
  const out: Record<string, { runs: number; ok: number }> = {};
  const { results } = await influx.query(db, 'SHOW MEASUREMENTS');
  const names = (results[0]?.series?.[0]?.values ?? []).map((v) => String(v[0])).filter((n) => /^PLUGIN\.[^.]+$/.test(n));
  for (const name of names) {
    const runs = await influx.count(db, name);
    const okRes = await influx.query(db, `SELECT count(*) FROM "${name}" WHERE "success" = true`);
    const row = okRes.results[0]?.series?.[0]?.values[0] ?? [];
    out[name] = { runs, ok: Math.max(0, ...row.slice(1).map((v) => Number(v ?? 0))) };
  }
  return out;
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? (() => {});
  const root = tempDir('ns-agent-soak-').dir;
  // Plugins run as plugins.runAsUser (nobody) when we are root: it must be able to enter the clones.
  chmodSync(root, 0o755);
  let agent: AgentRun | undefined;
  try {
    const [nsqd, influx, httpPort] = await Promise.all([startNsqd(), startInfluxd({ version: opts.influxVersion ?? '1.6' }), freePort()]);
    const listen = `127.0.0.1:${httpPort}`;
    const counter = pluginRepo(
      root,
      'soak_counter',
      '#!/bin/bash\n# Three metrics per run, one tagged with the first argument.\necho "[{\\"name\\":\\"runs\\",\\"value\\":1},{\\"name\\":\\"rand\\",\\"value\\":$RANDOM},{\\"name\\":\\"arg\\",\\"value\\":2,\\"tags\\":{\\"arg\\":\\"${1:-none}\\"}}]"\n',
    );
    const lister = pluginRepo(
      root,
      'soak_procs',
      '#!/bin/bash\n# Forks a few commands per run, as real plugins do.\nn=$(ls /proc | grep -c "^[0-9]")\nl=$(cut -d" " -f1 /proc/loadavg)\necho "[{\\"name\\":\\"procs\\",\\"value\\":$n},{\\"name\\":\\"load1\\",\\"value\\":$l}]"\n',
    );
    const pi = opts.pluginIntervalSec;
    const registry = {
      hosts: {
        '*': {
          namespaces: [LOAD_NS, CHECKS_NS, PLUGINS_NS],
          checks: {
            [CHECKS_NS]: {
              ports: [{ port: Number(nsqd.tcpAddress.split(':')[1]) }, { port: influx.port, connect: true }, { port: httpPort }],
              processes: [{ name: 'nsqd' }, { cmdline: 'influxd' }, { name: 'no-such-process-soak' }],
            },
          },
          plugins: {
            [PLUGINS_NS]: [
              { repo: counter, interval: pi, params: ['soak'] },
              { repo: lister, interval: pi },
              { builtin: 'http_probe', interval: pi * 2, params: { url: `http://${listen}/health` } },
              { builtin: 'tcp_probe', interval: pi * 2, params: { address: nsqd.tcpAddress } },
            ],
          },
        },
      },
    };
    writeFileSync(path.join(root, 'registry.json'), JSON.stringify(registry, null, 2));
    const config = {
      hostname: 'soak-host',
      dataDir: 'data',
      log: { level: 'info', dir: 'data/log', pretty: 'never' },
      registry: { source: 'file', file: 'registry.json', namespacesIntervalSec: 15, checksIntervalSec: 15, pluginsIntervalSec: 15 },
      collect: { systemIntervalSec: 2, checksIntervalSec: 2 },
      plugins: { cacheDir: 'plugins-cache', allowLocalRepos: true },
      nsq: { nsqdTcpAddresses: [nsqd.tcpAddress] },
      relay: { enabled: true, nsqdTcpAddresses: [nsqd.tcpAddress], topicRefreshMs: 2000, lookupdPollIntervalSec: 1 },
      sender: { backends: [{ name: 'influx', url: influx.url, api: 'v1' }], flushIntervalMs: 500 },
      http: { listen },
    };
    const configFile = path.join(root, 'agent.json');
    writeFileSync(configFile, JSON.stringify(config, null, 2));

    agent = runAgent(['start', '-f', configFile]);
    const pid = agent.child.pid as number;
    const base = `http://${listen}`;
    await waitUntil('agent /health', async () => (await fetch(`${base}/health`).catch(() => undefined))?.ok, { timeoutMs: 30_000, everyMs: 250 });
    const t0 = Date.now();
    log(`soak: agent pid ${pid} up on ${listen}; nsqd ${nsqd.tcpAddress}, influxd ${influx.version} ${influx.url}; ${root}`);

    // Load generator: one request in flight, on a fixed timetable (a slow answer is caught up).
    let postsSent = 0;
    let postsFailed = 0;
    let pointsPosted = 0;
    let seq = 0;
    let stopLoad = false;
    const tsBase = Math.floor(Date.now() / 1000) - 86_400;
    const periodMs = 1000 / opts.postsPerSec;
    const load = (async () => {
      const start = Date.now();
      for (let i = 0; !stopLoad; i++) {
        const batch = [];
        for (let k = 0; k < opts.pointsPerPost; k++, seq++) {
          batch.push({ name: LOAD_MEASUREMENT, timestamp: tsBase + Math.floor(seq / LOAD_SLOTS), tags: { slot: String(seq % LOAD_SLOTS) }, value: seq });
        }
        postsSent++;
        try {
          const res = await fetch(`${base}/post?ns=${LOAD_NS}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(batch),
          });
          const body = (await res.json()) as { data?: { accepted?: number } };
          if (res.ok) pointsPosted += body.data?.accepted ?? 0;
          else postsFailed++;
        } catch {
          postsFailed++;
        }
        const wait = start + (i + 1) * periodMs - Date.now();
        if (wait > 0) await delay(wait);
      }
    })();

    const samples: SoakSample[] = [];
    const sample = async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const s: SoakSample = {
        tSec: Math.round((Date.now() - t0) / 1000),
        rssBytes: readRss(pid),
        heapUsedBytes: metricValue(text, 'nsagent_nodejs_heap_size_used_bytes'),
        loopLagMeanMs: metricValue(text, 'nsagent_nodejs_eventloop_lag_mean_seconds') * 1000,
        loopLagP99Ms: metricValue(text, 'nsagent_nodejs_eventloop_lag_p99_seconds') * 1000,
        loopLagMaxMs: metricValue(text, 'nsagent_nodejs_eventloop_lag_max_seconds') * 1000,
        pointsPosted,
      };
      samples.push(s);
      log(
        `t=${s.tSec}s rss=${(s.rssBytes / 2 ** 20).toFixed(1)}MiB heap=${(s.heapUsedBytes / 2 ** 20).toFixed(1)}MiB ` +
          `lag mean/p99/max=${s.loopLagMeanMs.toFixed(1)}/${s.loopLagP99Ms.toFixed(1)}/${s.loopLagMaxMs.toFixed(1)}ms posted=${pointsPosted} failed=${postsFailed}`,
      );
    };
    // The first scrape only resets the lag histogram that has been filling since start.
    await fetch(`${base}/metrics`).then((r) => r.text());
    while (Date.now() - t0 < opts.durationMs) {
      await delay(Math.min(opts.sampleEveryMs, Math.max(0, opts.durationMs - (Date.now() - t0))));
      await sample();
    }
    stopLoad = true;
    await load;
    const durationSec = (Date.now() - t0) / 1000;
    const statusRes = (await (await fetch(`${base}/me/status`)).json()) as { data?: Record<string, unknown> };
    const statusAtEnd = statusRes.data ?? {};

    // Drain: every acknowledged point must reach InfluxDB through NSQ and the relay.
    log(`soak: load stopped after ${postsSent} requests; waiting for ${pointsPosted} points in InfluxDB`);
    await waitUntil(`${pointsPosted} points in ${LOAD_NS}`, async () => (await countOrZero(influx, LOAD_NS, LOAD_MEASUREMENT)) >= pointsPosted, { timeoutMs: 60_000, everyMs: 250 }).catch(() => {});
    const pointsStored = await countOrZero(influx, LOAD_NS, LOAD_MEASUREMENT);
    const runs = await pluginRuns(influx, PLUGINS_NS).catch(() => ({}));
    const checkPoints = (await countOrZero(influx, CHECKS_NS, 'port_check')) + (await countOrZero(influx, CHECKS_NS, 'process_check'));

    agent.child.kill('SIGTERM');
    const { code } = await agent.exited;

    const warm = samples.filter((s) => s.tSec * 1000 >= opts.warmupMs);
    const quarter = Math.max(1, Math.floor(warm.length / 4));
    return {
      durationSec,
      samples,
      postsSent,
      postsFailed,
      pointsPosted,
      pointsStored,
      pluginRuns: runs,
      checkPoints,
      firstWindow: window(warm.slice(0, quarter)),
      lastWindow: window(warm.slice(-quarter)),
      rssSlopeMiBPerHour: slope(warm.map((s) => s.tSec / 3600), warm.map((s) => s.rssBytes / 2 ** 20)),
      rssPeakBytes: Math.max(...samples.map((s) => s.rssBytes)),
      loopLagMaxMs: Math.max(...samples.map((s) => s.loopLagMaxMs)),
      agentExitCode: code,
      statusAtEnd,
    };
  } finally {
    if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
    await stopAll();
    rmSync(root, { recursive: true, force: true });
  }
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

/** The BENCHMARKS.md section: setup, a table over time (at most ~16 rows), the verdict. */
export function soakMarkdown(r: SoakResult, opts: SoakOptions, machine: string): string {
  const step = Math.max(1, Math.ceil(r.samples.length / 16));
  const rows = r.samples.filter((_, i) => i % step === 0 || i === r.samples.length - 1);
  const growth = r.lastWindow.rssMedianBytes - r.firstWindow.rssMedianBytes;
  const plugins = Object.entries(r.pluginRuns)
    .map(([n, v]) => `${n} ${v.ok}/${v.runs}`)
    .join(', ');
  return [
    `## Soak (${(r.durationSec / 60).toFixed(1)} min)`,
    '',
    `${machine}. \`npm run soak -- --minutes ${(opts.durationMs / 60_000).toFixed(0)}\`: a real \`bin/agent start\` (through tsx) with nsqd + the relay ` +
      `and InfluxDB ${opts.influxVersion ?? '1.6'}; file registry with 3 namespaces, 3 port and 3 process checks every 2 s, system stats every 2 s, ` +
      `2 git plugins every ${opts.pluginIntervalSec} s and 2 built-in plugins every ${opts.pluginIntervalSec * 2} s; ` +
      `load: ${opts.postsPerSec} POST /post per second × ${opts.pointsPerPost} points. RSS from /proc/PID/status, ` +
      `event-loop delay from /metrics (nsagent_nodejs_eventloop_lag_*, per sample window); warm-up ${opts.warmupMs / 1000} s.`,
    '',
    '| t | RSS | heap used | loop delay mean / p99 / max | points posted |',
    '|---:|---:|---:|---|---:|',
    ...rows.map(
      (s) =>
        `| ${s.tSec} s | ${MiB(s.rssBytes)} MiB | ${MiB(s.heapUsedBytes)} MiB | ${s.loopLagMeanMs.toFixed(1)} / ${s.loopLagP99Ms.toFixed(1)} / ${s.loopLagMaxMs.toFixed(1)} ms | ${s.pointsPosted.toLocaleString('en-US')} |`,
    ),
    '',
    `- RSS after warm-up, median of the first vs the last quarter: ${MiB(r.firstWindow.rssMedianBytes)} → ${MiB(r.lastWindow.rssMedianBytes)} MiB ` +
      `(${growth >= 0 ? '+' : ''}${MiB(growth)} MiB); least-squares slope ${r.rssSlopeMiBPerHour.toFixed(1)} MiB/hour; peak ${MiB(r.rssPeakBytes)} MiB.`,
    `- Event-loop delay p99 (median over windows): ${r.firstWindow.loopLagP99MedianMs.toFixed(1)} → ${r.lastWindow.loopLagP99MedianMs.toFixed(1)} ms; worst max ${r.loopLagMaxMs.toFixed(1)} ms.`,
    `- Points: ${r.pointsPosted.toLocaleString('en-US')} acknowledged, ${r.pointsStored.toLocaleString('en-US')} counted in InfluxDB ` +
      `(${r.pointsStored === r.pointsPosted ? 'none lost' : `${(r.pointsPosted - r.pointsStored).toLocaleString('en-US')} MISSING`}); ${r.postsFailed} of ${r.postsSent.toLocaleString('en-US')} requests failed.`,
    `- Plugin runs stored (ok/total): ${plugins || 'none'}; check points stored: ${r.checkPoints.toLocaleString('en-US')}. Agent exit code on SIGTERM: ${r.agentExitCode}.`,
  ].join('\n');
}
