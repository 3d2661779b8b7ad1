// Shared by the fault and abuse suites: the whole agent as a separate process (bin/agent start)
// in front of a real nsqd and influxd, its API as a client, unique points whose arrival can be
// counted in InfluxDB, and the agent's own drop counters read back from /metrics.
import { writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { freePort, startNsqd, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';

export const HOSTNAME = 'fault-host';

export interface AgentConfigOptions {
  dir: string;
  httpPort: number;
  nsqd?: NsqdHandle;
  influxd?: InfluxdHandle;
  /** A file registry with these namespaces, unless registryUrl is given. */
  namespaces?: string[];
  registryUrl?: string;
  /** Deep-merged over the defaults below, section by section. */
  extra?: Record<string, Record<string, unknown>>;
}

/** A config for a test agent: short intervals, NSQ + spool + relay + one InfluxDB v1 backend. */
export function agentConfig(o: AgentConfigOptions): Record<string, unknown> {
  let registry: Record<string, unknown>;
  if (o.registryUrl) {
    registry = { source: 'http', url: o.registryUrl, timeoutMs: 2000, namespacesIntervalSec: 1, checksIntervalSec: 1, pluginsIntervalSec: 1 };
  } else {
    const file = path.join(o.dir, 'registry.json');
    writeFileSync(file, JSON.stringify({ hosts: { '*': { namespaces: o.namespaces ?? [] } } }));
    registry = { source: 'file', file };
  }
  const base: Record<string, Record<string, unknown>> = {
    log: { level: 'info', dir: path.join(o.dir, 'log'), pretty: 'always' },
    registry,
    // System stats go to every namespace; a long interval keeps them out of the counted data.
    collect: { systemIntervalSec: 3600, checksIntervalSec: 3600 },
    plugins: { allowLocalRepos: true, killGraceMs: 500 },
    http: { listen: `127.0.0.1:${o.httpPort}`, allowAnyNamespace: true },
  };
  if (o.nsqd) {
    base.nsq = {
      nsqdTcpAddresses: [o.nsqd.tcpAddress],
      reconnectMinMs: 50,
      reconnectMaxMs: 500,
      spool: { dir: path.join(o.dir, 'spool') },
    };
    base.relay = { enabled: true, messageTimeoutMs: 3000, requeueMinMs: 200, requeueMaxMs: 2000, lookupdPollIntervalSec: 1, topicRefreshMs: 1000 };
  }
  if (o.influxd) {
    base.sender = {
      backends: [{ name: 'influx', url: o.influxd.url, api: 'v1', timeoutMs: 2000 }],
      batchSize: 1000,
      flushIntervalMs: 100,
      retryMinMs: 100,
      retryMaxMs: 1000,
      downAfterFailures: 3,
      probeIntervalMs: 500,
    };
  }
  for (const [section, values] of Object.entries(o.extra ?? {})) {
    const prev = base[section] ?? {};
    const merged: Record<string, unknown> = { ...prev };
    for (const [k, v] of Object.entries(values)) {
      const p = prev[k];
      merged[k] = isPlainObject(p) && isPlainObject(v) ? { ...p, ...v } : v;
    }
    base[section] = merged;
  }
  return { hostname: HOSTNAME, dataDir: path.join(o.dir, 'data'), ...base };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface RunningAgent {
  run: AgentRun;
  api: AgentApi;
  configFile: string;
}

/** Starts bin/agent on the config and waits for its "agent started" line. */
export async function startAgent(dir: string, config: Record<string, unknown>): Promise<RunningAgent> {
  const configFile = writeConfig(dir, config);
  const run = runAgent(['start', '-f', configFile]);
  await run.waitFor(/agent started/, 30_000);
  const listen = (config.http as { listen: string }).listen;
  return { run, api: new AgentApi(`http://${listen}`), configFile };
}

/** SIGTERM, awaited; SIGKILL if it takes over 20 s. Returns the exit code. */
export async function stopAgent(run: AgentRun): Promise<number | null> {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return run.child.exitCode;
  run.child.kill('SIGTERM');
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 20_000);
  const { code } = await run.exited;
  clearTimeout(timer);
  return code;
}

export interface PostResult {
  status: number;
  body: string;
}

/** The agent's HTTP API as a test client sees it. */
export class AgentApi {
  constructor(readonly base: string) {}

  async post(ns: string, body: unknown, timeoutMs = 15_000): Promise<PostResult> {
    const res = await fetch(`${this.base}/post?ns=${encodeURIComponent(ns)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: await res.text() };
  }

  async health(timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await fetch(`${this.base}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      return res.status === 200 && (await res.text()).trim() === 'ok';
    } catch {
      return false;
    }
  }

  async status(): Promise<Record<string, any>> {
    const res = await fetch(`${this.base}/me/status`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { ok: boolean; data: Record<string, any> };
    return body.data;
  }

  async get(pathAndQuery: string, timeoutMs = 30_000): Promise<{ status: number; json: any }> {
    const res = await fetch(`${this.base}${pathAndQuery}`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  /** Sum of a Prometheus metric's samples whose labels include `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const res = await fetch(`${this.base}/metrics`, { signal: AbortSignal.timeout(5000) });
    return sumMetric(await res.text(), name, labels);
  }
}

export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1] as string] = pair[2] as string;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) total += Number(m[4]);
  }
  return total;
}

/** Lines the agent counted as dropped after acceptance: publisher bounds plus the sender's dead letters. */
export async function droppedCount(api: AgentApi): Promise<number> {
  return (await api.metric('nsagent_publish_dropped_lines_total')) + (await api.metric('nsagent_sender_send_drop_points_total'));
}

export const MEASUREMENT = 'fault';
/** Far enough in the past to collide with nothing, recent enough to be read as seconds. */
const BASE_TS = 1_600_000_000;

/** Points numbered from..from+n-1, each unique by its timestamp within the case's series. */
export function points(caseTag: string, from: number, n: number): Array<Record<string, unknown>> {
  return Array.from({ length: n }, (_, k) => ({
    name: MEASUREMENT,
    timestamp: BASE_TS + from + k,
    tags: { case: caseTag },
    value: from + k,
  }));
}

/** Distinct points of a case in its namespace's database (0 while the database does not exist). */
export async function arrivedCount(influxd: InfluxdHandle, ns: string, caseTag: string): Promise<number> {
  try {
    const r = await influxd.query(ns, `SELECT count(value) FROM "${MEASUREMENT}" WHERE "case"='${caseTag}'`);
    const v = r.results[0]?.series?.[0]?.values[0]?.[1];
    return typeof v === 'number' ? v : 0;
  } catch (err) {
    if (/database not found/.test((err as Error).message)) return 0;
    throw err;
  }
}

/**
 * Polls until `read()` returns `want` and stays there for `settleMs` (InfluxDB has no event for
 * "written"); returns the last value, so the caller's assertion shows what arrived.
 */
export async function settle(read: () => Promise<number>, want: number, timeoutMs: number, settleMs = 500): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  let since = last === want ? Date.now() : 0;
  while (Date.now() < deadline) {
    if (last === want && Date.now() - since >= settleMs) return last;
    await delay(100);
    const v = await read();
    if (v === want && last !== want) since = Date.now();
    last = v;
  }
  return last;
}

export interface Figures {
  sent: number;
  arrived: number;
  dropped: number;
  /** Items the API answered 503 (or failed to answer): neither acknowledged nor lost silently. */
  unacked?: number;
}

/** The one-line summary each case prints. */
export function report(name: string, f: Figures, extra = ''): void {
  const un = f.unacked === undefined ? '' : ` (unacknowledged ${f.unacked})`;
  process.stdout.write(`# [${name}] sent ${f.sent} / arrived ${f.arrived} / dropped ${f.dropped}${un}${extra ? `; ${extra}` : ''}\n`);
}

/** Posts `n` points in requests of `per`, counting what the API acknowledged (200). */
export async function postAll(api: AgentApi, ns: string, caseTag: string, from: number, n: number, per: number): Promise<{ acked: number; unacked: number; statuses: Record<number, number> }> {
  let acked = 0;
  let unacked = 0;
  const statuses: Record<number, number> = {};
  for (let i = 0; i < n; i += per) {
    const k = Math.min(per, n - i);
    let status = 0;
    try {
      status = (await api.post(ns, points(caseTag, from + i, k))).status;
    } catch {
      status = -1;
    }
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === 200) acked += k;
    else unacked += k;
  }
  return { acked, unacked, statuses };
}

/** Posts batches of `per` points, numbered from `first` on, until `stop()`; the totals are live. */
export function postLoop(api: AgentApi, ns: string, caseTag: string, per: number, paceMs = 0, first = 0) {
  const totals = { acked: 0, unacked: 0, first, next: first, statuses: {} as Record<number, number> };
  let stopping = false;
  const done = (async () => {
    while (!stopping) {
      const from = totals.next;
      totals.next += per;
      const r = await postAll(api, ns, caseTag, from, per, per);
      totals.acked += r.acked;
      totals.unacked += r.unacked;
      for (const [s, c] of Object.entries(r.statuses)) totals.statuses[Number(s)] = (totals.statuses[Number(s)] ?? 0) + c;
      if (paceMs > 0) await delay(paceMs);
    }
  })();
  return {
    totals,
    async stop() {
      stopping = true;
      await done;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A git plugin made on the spot

export { pluginRepo } from '../plugins/helpers.ts';

// ---------------------------------------------------------------------------------------------
// An HTTP registry the test controls: a good answer, an outage, or garbage

export type RegistryMode = 'good' | 'down' | 'garbage' | 'hostile';

export class ControlledRegistry {
  mode: RegistryMode = 'good';
  /** The good answer: one object holding all three keys, served to every endpoint. */
  answer: Record<string, unknown> = { namespaces: [], checks: {}, plugins: {} };
  /** Served in 'hostile' mode (a body the test built). */
  hostileBody: string | Buffer = '{}';
  requests = 0;
  private server: http.Server | undefined;
  private port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    req.resume();
    switch (this.mode) {
      case 'good':
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.answer));
        return;
      case 'down':
        // As a dead backend behind a proxy: the connection is cut without an answer.
        req.socket.destroy();
        return;
      case 'garbage': {
        const kinds = [
          () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"namespaces": [1, 2, {"x":'),
          () => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway</html>'),
          () => res.writeHead(500).end('internal error'),
          () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"namespaces": "not a list"}'),
          () => res.writeHead(200, { 'content-type': 'application/json' }).end(Buffer.from([0xff, 0xfe, 0x00, 0x7b])),
        ];
        (kinds[this.requests % kinds.length] as () => void)();
        return;
      }
      case 'hostile':
        res.writeHead(200, { 'content-type': 'application/json' }).end(this.hostileBody);
        return;
    }
  }
}

export { freePort };

/** nsqd run as the README advises, so it keeps what it acknowledged across a SIGKILL. */
export function durableNsqd(): Promise<NsqdHandle> {
  return startNsqd({ memQueueSize: 0, extraArgs: ['--sync-every=1'] });
}

/** The values (= point numbers) of a case missing in InfluxDB below `upTo`, for failure messages. */
export async function missingValues(influxd: InfluxdHandle, ns: string, caseTag: string, ranges: Array<[number, number]>): Promise<string> {
  const r = await influxd.query(ns, `SELECT value FROM "${MEASUREMENT}" WHERE "case"='${caseTag}'`);
  const have = new Set((r.results[0]?.series?.[0]?.values ?? []).map((v) => Number(v[1])));
  const missing: number[] = [];
  for (const [from, to] of ranges) for (let i = from; i < to; i++) if (!have.has(i)) missing.push(i);
  return `missing ${missing.length}: ${missing.slice(0, 40).join(',')}`;
}
