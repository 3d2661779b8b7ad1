// Real nsqd, nsqlookupd, influxd and victoria-metrics processes for tests and benches: started on free loopback
// ports with throwaway data dirs, awaited until they answer, stopped/killed/restarted on demand.
// Binaries come from scripts/test-servers.sh (.cache/servers/).

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Reader } from 'nsqjs';
import type { Message } from 'nsqjs';
import { tempDir as makeTempDir } from './temp-dir.ts';

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 20;
const LOG_LINES = 50;

export type InfluxVersion = '1.6' | '1.8';
export type ServerBinary = 'nsqd' | 'nsqlookupd' | 'nsq_tail' | 'influxd-1.6' | 'influxd-1.8' | 'toxiproxy-server' | 'victoria-metrics';

export function serversDir(): string {
  return fileURLToPath(new URL('../../.cache/servers/', import.meta.url));
}

function binaryLocation(name: ServerBinary): string {
  if (name === 'influxd-1.6') return join(serversDir(), 'influxdb-1.6', 'usr', 'bin', 'influxd');
  return join(serversDir(), 'bin', name);
}

/** Path of a server binary; throws when scripts/test-servers.sh has not provided it. */
export function binaryPath(name: ServerBinary): string {
  const path = binaryLocation(name);
  if (!existsSync(path)) {
    const marker = join(serversDir(), `${name}.unavailable`);
    const why = existsSync(marker) ? ` (${marker} says it could not be built)` : '';
    throw new Error(`${path} is missing${why}: run npm run test:servers`);
  }
  return path;
}

export function influxdAvailable(version: InfluxVersion): boolean {
  return existsSync(binaryLocation(`influxd-${version}`));
}

/** A loopback port that was free a moment ago; callers must cope with losing the race. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping

const children = new Set<ChildProcess>();
const servers = new Set<Server>();
let tempRoot: string | undefined;

// Children are unref'd so a test that forgets stopAll() still exits; this hook then kills them.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  removeTempRoot();
});

function removeTempRoot(): void {
  if (tempRoot === undefined) return;
  try {
    rmSync(tempRoot, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // A server killed a moment ago may still be writing; a stray temp dir is harmless.
  }
  tempRoot = undefined;
}

/** A folder for one server's data, under the root that stopAll() removes. */
export function tempDir(prefix: string): string {
  tempRoot ??= makeTempDir('servers').dir;
  return makeTempDir(prefix, tempRoot).dir;
}

/** Stops every server started by these helpers (SIGTERM, awaited) and removes their temp dirs. */
export async function stopAll(): Promise<void> {
  const results = await Promise.allSettled([...servers].map((s) => s.stop()));
  servers.clear();
  removeTempRoot();
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
  if (errors.length > 0) throw new AggregateError(errors, 'stopAll: some servers did not stop cleanly');
}

export class ServerError extends Error {
  constructor(message: string, readonly logs: readonly string[]) {
    super(`${message}\n--- last ${logs.length} log lines ---\n${logs.join('\n')}`);
  }
}

async function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(resolve, ms, 'timeout');
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One run of a server binary, with its recent log lines and its exit as a promise. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<void>;
  exitStatus: string | undefined;
  private readonly lineListeners = new Set<(line: string) => void>();

  constructor(readonly name: string, bin: string, args: string[]) {
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.exited = new Promise((resolve) => {
      const done = (status: string): void => {
        this.exitStatus ??= status;
        children.delete(this.child);
        resolve();
      };
      this.child.once('exit', (code, signal) => done(signal ? `signal ${signal}` : `code ${code}`));
      this.child.once('error', (err) => done(err.message));
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => this.onLine(line));
      (stream as Socket).unref();
    }
    this.child.unref();
  }

  private onLine(line: string): void {
    if (process.env.TEST_SERVERS_LOG) process.stderr.write(`[${this.name}] ${line}\n`);
    this.lines.push(line);
    if (this.lines.length > LOG_LINES) this.lines.shift();
    for (const listener of this.lineListeners) listener(line);
  }

  get addrInUse(): boolean {
    return this.lines.some((l) => l.includes('address already in use'));
  }

  fail(what: string): ServerError {
    const exit = this.exitStatus === undefined ? '' : ` (exited: ${this.exitStatus})`;
    return new ServerError(`${this.name} ${what}${exit}`, [...this.lines]);
  }

  /** Resolves with the first capture group of the first log line matching `re`. */
  async waitForLine(re: RegExp, deadline: number): Promise<string> {
    const seen = this.lines.map((l) => re.exec(l)).find((m) => m);
    if (seen) return seen[1] ?? seen[0];
    let listener: ((line: string) => void) | undefined;
    const match = new Promise<string>((resolve) => {
      listener = (line) => {
        const m = re.exec(line);
        if (m) resolve(m[1] ?? m[0]);
      };
      this.lineListeners.add(listener);
    });
    try {
      const result = await raceTimeout(Promise.race([match, this.exited.then(() => 'exited' as const)]), deadline - Date.now());
      if (result === 'timeout' || result === 'exited') throw this.fail(`never logged ${re}`);
      return result;
    } finally {
      if (listener) this.lineListeners.delete(listener);
    }
  }

  /** Polls `url` until it answers `status`, the process exits, or the deadline passes. */
  async waitForHttp(url: string, status: number, deadline: number): Promise<void> {
    let last = 'no answer';
    while (Date.now() < deadline && this.exitStatus === undefined) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === status) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await Promise.race([delay(POLL_MS), this.exited]);
    }
    throw this.fail(`did not answer ${status} on ${url} (last: ${last})`);
  }

  async signal(signal: NodeJS.Signals): Promise<void> {
    if (this.exitStatus === undefined) this.child.kill(signal);
    if ((await raceTimeout(this.exited, STOP_TIMEOUT_MS)) !== 'timeout') return;
    this.child.kill('SIGKILL');
    await this.exited;
    throw this.fail(`ignored ${signal} for ${STOP_TIMEOUT_MS} ms and was SIGKILLed`);
  }
}

export abstract class Server {
  protected proc: Proc | undefined;

  get pid(): number | undefined {
    return this.proc?.exitStatus === undefined ? this.proc?.child.pid : undefined;
  }

  get logs(): readonly string[] {
    return [...(this.proc?.lines ?? [])];
  }

  async stop(): Promise<void> {
    await this.proc?.signal('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.proc?.signal('SIGKILL');
  }

  /** Starts again with the same ports and data, stopping the current run first if needed. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Spawns the process; the server's ports stay unset (0) until the first run is ready. */
  protected abstract spawn(): Promise<Proc>;
  protected abstract ready(proc: Proc, deadline: number): Promise<void>;

  async start(): Promise<this> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const proc = await this.spawn();
      try {
        await this.ready(proc, deadline);
        this.proc = proc;
        servers.add(this);
        return this;
      } catch (err) {
        await proc.signal('SIGKILL');
        // A port picked by freePort() can be taken meanwhile, and a restart's fixed port can
        // still be held by a dying process: neither has an event to await, so retry.
        if (!proc.addrInUse || Date.now() >= deadline) throw err;
        await delay(POLL_MS * 5);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// nsqd and nsqlookupd

export interface NsqdOptions {
  memQueueSize?: number;
  dataPath?: string;
  tcpPort?: number;
  httpPort?: number;
  lookupdTcpAddresses?: string[];
  extraArgs?: string[];
}

/** What every handle offers; restart() reuses the same ports and data. */
export interface ServerHandle {
  readonly pid: number | undefined;
  readonly logs: readonly string[];
  /** SIGTERM, awaited (SIGKILL and a thrown error if it takes over 15 s). */
  stop(): Promise<void>;
  /** SIGKILL, awaited. */
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export interface NsqdAddresses {
  /** "127.0.0.1:port" */
  readonly tcpAddress: string;
  readonly httpAddress: string;
}

export interface NsqlookupdHandle extends ServerHandle, NsqdAddresses {
  readonly tcpPort: number;
  readonly httpPort: number;
}

export interface NsqdHandle extends NsqlookupdHandle {
  readonly dataPath: string;
}

/** nsqd and nsqlookupd both log `TCP: listening on` and `HTTP: listening on`. */
abstract class NsqServer extends Server implements NsqdAddresses {
  constructor(public tcpPort = 0, public httpPort = 0) {
    super();
  }

  get tcpAddress(): string {
    return `127.0.0.1:${this.tcpPort}`;
  }

  get httpAddress(): string {
    return `127.0.0.1:${this.httpPort}`;
  }

  protected async ready(proc: Proc, deadline: number): Promise<void> {
    const [tcp, http] = await Promise.all([
      proc.waitForLine(/TCP: listening on \S+:(\d+)/, deadline),
      proc.waitForLine(/HTTP: listening on \S+:(\d+)/, deadline),
    ]);
    await proc.waitForHttp(`http://127.0.0.1:${http}/ping`, 200, deadline);
    this.tcpPort = Number(tcp);
    this.httpPort = Number(http);
  }
}

class Nsqd extends NsqServer implements NsqdHandle {
  constructor(readonly dataPath: string, private readonly opts: NsqdOptions) {
    super(opts.tcpPort, opts.httpPort);
  }

  protected async spawn(): Promise<Proc> {
    const { memQueueSize, lookupdTcpAddresses = [], extraArgs = [] } = this.opts;
    return new Proc('nsqd', binaryPath('nsqd'), [
      `--tcp-address=127.0.0.1:${this.tcpPort}`,
      `--http-address=127.0.0.1:${this.httpPort}`,
      '--https-address=',
      '--broadcast-address=127.0.0.1',
      `--data-path=${this.dataPath}`,
      ...(memQueueSize === undefined ? [] : [`--mem-queue-size=${memQueueSize}`]),
      ...lookupdTcpAddresses.map((a) => `--lookupd-tcp-address=${a}`),
      ...extraArgs,
    ]);
  }
}

class Nsqlookupd extends NsqServer implements NsqlookupdHandle {
  protected async spawn(): Promise<Proc> {
    return new Proc('nsqlookupd', binaryPath('nsqlookupd'), [
      `--tcp-address=127.0.0.1:${this.tcpPort}`,
      `--http-address=127.0.0.1:${this.httpPort}`,
      '--broadcast-address=127.0.0.1',
    ]);
  }
}

export async function startNsqd(opts: NsqdOptions = {}): Promise<NsqdHandle> {
  binaryPath('nsqd');
  const dataPath = opts.dataPath ?? tempDir('nsqd-');
  await mkdir(dataPath, { recursive: true });
  return new Nsqd(dataPath, opts).start();
}

export function startNsqlookupd(): Promise<NsqlookupdHandle> {
  return new Nsqlookupd().start();
}

export interface NsqdChannelStats {
  channel_name: string;
  depth: number;
  backend_depth: number;
  in_flight_count: number;
  deferred_count: number;
  message_count: number;
  requeue_count: number;
  timeout_count: number;
  client_count: number;
}

export interface NsqdTopicStats {
  topic_name: string;
  depth: number;
  backend_depth: number;
  message_count: number;
  channels: NsqdChannelStats[];
}

export interface NsqdStats {
  version: string;
  health: string;
  topics: NsqdTopicStats[];
}

async function nsqdHttp(httpAddress: string, path: string, method = 'GET'): Promise<string> {
  const res = await fetch(`http://${httpAddress}${path}`, { method });
  const body = await res.text();
  if (!res.ok) throw new Error(`nsqd ${method} ${path}: HTTP ${res.status} ${body}`);
  return body;
}

/** GET /stats?format=json, optionally for one topic; nsqd's nulls become empty arrays. */
export async function nsqdStats(httpAddress: string, topic?: string): Promise<NsqdStats> {
  const filter = topic === undefined ? '' : `&topic=${encodeURIComponent(topic)}`;
  const stats = JSON.parse(await nsqdHttp(httpAddress, `/stats?format=json${filter}`)) as NsqdStats;
  stats.topics = (stats.topics ?? []).map((t) => ({ ...t, channels: t.channels ?? [] }));
  return stats;
}

/** Messages queued (memory + disk, not in flight) in a topic or one of its channels; 0 if absent. */
export async function topicDepth(httpAddress: string, topic: string, channel?: string): Promise<number> {
  const t = (await nsqdStats(httpAddress, topic)).topics.find((x) => x.topic_name === topic);
  if (channel === undefined) return t?.depth ?? 0;
  return t?.channels.find((c) => c.channel_name === channel)?.depth ?? 0;
}

/** Creating the channel up front makes nsqd keep messages for it before any reader connects. */
export async function createTopic(httpAddress: string, topic: string, channel?: string): Promise<void> {
  const t = encodeURIComponent(topic);
  await nsqdHttp(httpAddress, `/topic/create?topic=${t}`, 'POST');
  if (channel !== undefined) {
    await nsqdHttp(httpAddress, `/channel/create?topic=${t}&channel=${encodeURIComponent(channel)}`, 'POST');
  }
}

export interface ReadAllOptions {
  /** Resolve once this many messages arrived (waits up to timeoutMs for them). */
  count?: number;
  /** Without count: resolve when nothing arrived for idleMs and /stats shows the channel empty. */
  idleMs?: number;
  timeoutMs?: number;
  maxInFlight?: number;
}

function nsqdAddresses(nsqd: string | NsqdAddresses): NsqdAddresses {
  if (typeof nsqd !== 'string') return nsqd;
  for (const s of servers) if (s instanceof Nsqd && s.tcpAddress === nsqd) return s;
  throw new Error(`readAll: ${nsqd} is not an nsqd started here; pass { tcpAddress, httpAddress }`);
}

async function channelDrained(httpAddress: string, topic: string, channel: string): Promise<boolean> {
  const t = (await nsqdStats(httpAddress, topic)).topics.find((x) => x.topic_name === topic);
  const c = t?.channels.find((x) => x.channel_name === channel);
  return t !== undefined && c !== undefined && t.depth + c.depth + c.in_flight_count + c.deferred_count === 0;
}

/**
 * Consumes (and finishes) messages from topic/channel with an nsqjs Reader. An nsqd given by its
 * TCP address alone must have been started by these helpers, since the idle rule needs /stats.
 */
export async function readAll(
  nsqd: string | NsqdAddresses,
  topic: string,
  channel: string,
  opts: ReadAllOptions = {},
): Promise<Buffer[]> {
  const { tcpAddress, httpAddress } = nsqdAddresses(nsqd);
  const { count, idleMs = 300, timeoutMs = 30_000, maxInFlight = 1000 } = opts;
  if (count === 0) return [];
  const reader = new Reader(topic, channel, {
    nsqdTCPAddresses: tcpAddress,
    maxInFlight,
    maxAttempts: 0,
    // Reader re-dials direct addresses only at this interval (seconds; default 60).
    lookupdPollInterval: 1,
  });
  const received: Buffer[] = [];
  let connections = 0;
  let lastArrival = Date.now();
  let settled = false;
  let idleTimer: NodeJS.Timeout | undefined;

  const result = new Promise<Buffer[]>((resolve, reject) => {
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idleTimer);
      clearTimeout(overall);
      void closeReader().then(() => (err ? reject(err) : resolve(received)));
    };
    const armIdle = (): void => {
      if (count !== undefined) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        channelDrained(httpAddress, topic, channel).then(
          (drained) => (drained && Date.now() - lastArrival >= idleMs ? finish() : armIdle()),
          (err: Error) => finish(err),
        );
      }, idleMs);
    };
    const overall = setTimeout(() => {
      const wanted = count === undefined ? '' : ` of ${count}`;
      finish(new Error(`readAll ${topic}/${channel}: ${received.length}${wanted} messages after ${timeoutMs} ms`));
    }, timeoutMs);

    reader.on('error', (err) => finish(new Error(`readAll ${topic}/${channel}: ${err.message}`)));
    reader.on('nsqd_connected', () => connections++);
    reader.on('nsqd_closed', () => connections--);
    reader.on('message', (msg: Message) => {
      // Messages beyond the count are left unfinished: nsqd requeues them when we disconnect.
      if (settled) return;
      msg.finish();
      received.push(msg.body);
      lastArrival = Date.now();
      if (count !== undefined && received.length >= count) finish();
      else armIdle();
    });
    armIdle();
    reader.connect();
  });

  async function closeReader(): Promise<void> {
    const closed: Promise<unknown> = connections > 0 ? once(reader, 'not_ready') : Promise.resolve();
    reader.close();
    await raceTimeout(closed, 2000);
  }

  return result;
}

// ---------------------------------------------------------------------------------------------
// influxd

export interface InfluxQueryResult {
  results: Array<{
    statement_id: number;
    error?: string;
    series?: Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }>;
  }>;
  error?: string;
}

export interface InfluxdHandle extends ServerHandle {
  /** http://127.0.0.1:port */
  readonly url: string;
  readonly version: InfluxVersion;
  readonly port: number;
  /** Holds the config file and the meta/data/wal dirs. */
  readonly dir: string;
  /** GET /query for SELECT/SHOW, POST otherwise; throws on any error in the answer. */
  query(db: string, influxql: string, params?: Record<string, string>): Promise<InfluxQueryResult>;
  /** Points in a measurement (or the whole db): the largest per-field count of each measurement. */
  count(db: string, measurement?: string): Promise<number>;
  createDatabase(db: string): Promise<void>;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

class Influxd extends Server implements InfluxdHandle {
  port = 0;
  private rpcPort = 0;
  // Ports of the run being started; they become the server's only once it answers.
  private pendingPorts = { port: 0, rpcPort: 0 };

  constructor(
    readonly version: InfluxVersion,
    readonly dir: string,
    private readonly opts: InfluxdOptions = {},
  ) {
    super();
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** fetch, or https.request trusting the test CA (Node's fetch takes no CA). */
  private async http(url: string, init: { method?: string; body?: URLSearchParams } = {}): Promise<{ status: number; text: string }> {
    if (!this.opts.tls) {
      const res = await fetch(url, init);
      return { status: res.status, text: await res.text() };
    }
    const ca = readFileSync(this.opts.tls.caFile);
    const body = init.body?.toString();
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: init.method ?? 'GET',
          ca,
          // Socket idle time: a count over millions of points can take a while to start answering.
          timeout: 120_000,
          headers: body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  protected async spawn(): Promise<Proc> {
    const port = this.port || (await freePort());
    const rpcPort = this.rpcPort || (await freePort());
    const config = join(this.dir, `influxd-${port}.toml`);
    // Both reporting keys: Debian's 1.6 renamed upstream's reporting-disabled; unknown keys and
    // the [admin] section (gone since 1.3) are ignored by both versions.
    await writeFile(
      config,
      `reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${this.dir}/meta"
[data]
  dir = "${this.dir}/data"
  wal-dir = "${this.dir}/wal"
  query-log-enabled = false
  max-values-per-tag = ${this.opts.maxValuesPerTag ?? 100_000}
[monitor]
  store-enabled = false
[admin]
  enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  https-enabled = ${this.opts.tls ? 'true' : 'false'}
  https-certificate = "${this.opts.tls?.certFile ?? ''}"
  https-private-key = "${this.opts.tls?.keyFile ?? ''}"
  log-enabled = false
  pprof-enabled = false
[[udp]]
  enabled = false
[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[continuous_queries]
  enabled = false
[logging]
  suppress-logo = true
`,
    );
    const proc = new Proc(`influxd-${this.version}`, binaryPath(`influxd-${this.version}`), ['run', '-config', config]);
    this.pendingPorts = { port, rpcPort };
    return proc;
  }

  protected async ready(proc: Proc, deadline: number): Promise<void> {
    if (!this.opts.tls) {
      await proc.waitForHttp(`http://127.0.0.1:${this.pendingPorts.port}/ping`, 204, deadline);
    } else {
      let last = 'no answer';
      for (;;) {
        if (proc.exitStatus !== undefined || Date.now() > deadline) throw proc.fail(`did not answer 204 on https /ping (last: ${last})`);
        try {
          const { status } = await this.http(`https://127.0.0.1:${this.pendingPorts.port}/ping`);
          if (status === 204) break;
          last = `HTTP ${status}`;
        } catch (err) {
          last = (err as Error).message;
        }
        await delay(POLL_MS * 5);
      }
    }
    ({ port: this.port, rpcPort: this.rpcPort } = this.pendingPorts);
  }

  async query(db: string, influxql: string, params: Record<string, string> = {}): Promise<InfluxQueryResult> {
    const search = new URLSearchParams({ db, q: influxql, ...params });
    const read = /^\s*(SELECT|SHOW)\b/i.test(influxql) && !/\bINTO\b/i.test(influxql);
    const res = read
      ? await this.http(`${this.url}/query?${search}`)
      : await this.http(`${this.url}/query`, { method: 'POST', body: search });
    const text = res.text;
    let body: InfluxQueryResult;
    try {
      body = JSON.parse(text) as InfluxQueryResult;
    } catch {
      throw new Error(`influxd query ${influxql}: HTTP ${res.status} ${text}`);
    }
    const error = body.error ?? body.results?.find((r) => r.error)?.error;
    if (res.status >= 300 || error) throw new Error(`influxd query ${influxql}: HTTP ${res.status} ${error ?? text}`);
    return body;
  }

  async count(db: string, measurement?: string): Promise<number> {
    const from = measurement === undefined ? '/.*/' : quoteIdent(measurement);
    const { results } = await this.query(db, `SELECT count(*) FROM ${from}`);
    let total = 0;
    for (const series of results[0]?.series ?? []) {
      const row = series.values[0] ?? [];
      total += Math.max(0, ...row.slice(1).map((v) => Number(v ?? 0)));
    }
    return total;
  }

  async createDatabase(db: string): Promise<void> {
    await this.query(db, `CREATE DATABASE ${quoteIdent(db)}`);
  }
}

export interface InfluxdTlsOptions {
  certFile: string;
  keyFile: string;
  /** The CA this helper trusts for its own queries. */
  caFile: string;
}

export interface InfluxdOptions {
  version?: InfluxVersion;
  /** [data] max-values-per-tag: distinct values a tag key may hold (100,000 = influxd's default). */
  maxValuesPerTag?: number;
  /** HTTPS only (influxd serves one protocol on its HTTP port); url is https://. */
  tls?: InfluxdTlsOptions;
}

export async function startInfluxd(opts: InfluxdOptions = {}): Promise<InfluxdHandle> {
  const version = opts.version ?? '1.6';
  binaryPath(`influxd-${version}`);
  return new Influxd(version, tempDir(`influxd-${version}-`), opts).start();
}

// ---------------------------------------------------------------------------------------------
// victoria-metrics (single node)

/** One series as /api/v1/export writes it (one JSON object a line). */
export interface VmSeries {
  metric: Record<string, string>;
  values: number[];
  /** Milliseconds. */
  timestamps: number[];
}

export interface VictoriaMetricsHandle extends ServerHandle {
  /** http://127.0.0.1:port */
  readonly url: string;
  readonly port: number;
  /** The -storageDataPath. */
  readonly dir: string;
  /**
   * Every sample of the series matching a selector (`{db="ns"}`), all time, after making what
   * was just written searchable (/internal/force_flush).
   */
  exportSeries(selector: string): Promise<VmSeries[]>;
}

export interface VictoriaMetricsOptions {
  /** -httpAuth.username / -httpAuth.password: HTTP Basic on every path. */
  basicAuth?: { username: string; password: string };
  extraArgs?: string[];
}

class VictoriaMetrics extends Server implements VictoriaMetricsHandle {
  port = 0;
  private pendingPort = 0;

  constructor(
    readonly dir: string,
    private readonly opts: VictoriaMetricsOptions,
  ) {
    super();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  protected async spawn(): Promise<Proc> {
    const port = this.port || (await freePort());
    const { basicAuth, extraArgs = [] } = this.opts;
    this.pendingPort = port;
    return new Proc('victoria-metrics', binaryPath('victoria-metrics'), [
      `-httpListenAddr=127.0.0.1:${port}`,
      `-storageDataPath=${this.dir}`,
      // Tests write points stamped years back; the default (1 month) would drop them.
      '-retentionPeriod=100y',
      '-loggerLevel=WARN',
      '-http.shutdownDelay=0s',
      ...(basicAuth ? [`-httpAuth.username=${basicAuth.username}`, `-httpAuth.password=${basicAuth.password}`] : []),
      ...extraArgs,
    ]);
  }

  protected async ready(proc: Proc, deadline: number): Promise<void> {
    // /health answers without credentials even under -httpAuth.*.
    await proc.waitForHttp(`http://127.0.0.1:${this.pendingPort}/health`, 200, deadline);
    this.port = this.pendingPort;
  }

  private headers(): Record<string, string> {
    const auth = this.opts.basicAuth;
    return auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {};
  }

  async exportSeries(selector: string): Promise<VmSeries[]> {
    const flush = await fetch(`${this.url}/internal/force_flush`, { headers: this.headers() });
    await flush.arrayBuffer();
    if (!flush.ok) throw new Error(`victoria-metrics /internal/force_flush: HTTP ${flush.status}`);
    const res = await fetch(`${this.url}/api/v1/export?${new URLSearchParams({ 'match[]': selector, start: '0' })}`, { headers: this.headers() });
    const text = await res.text();
    if (!res.ok) throw new Error(`victoria-metrics export ${selector}: HTTP ${res.status} ${text}`);
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as VmSeries);
  }
}

export async function startVictoriaMetrics(opts: VictoriaMetricsOptions = {}): Promise<VictoriaMetricsHandle> {
  binaryPath('victoria-metrics');
  return new VictoriaMetrics(tempDir('victoria-metrics-'), opts).start();
}
