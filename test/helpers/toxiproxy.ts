// A real toxiproxy-server (built by scripts/test-servers.sh) between a client and a server on
// loopback, driven over its HTTP API: latency with jitter, a bandwidth cap, connection resets
// and partitions. The kernel here has no netem, so bad links are made in user space.

import { Proc, Server, binaryPath, freePort } from './servers.ts';

export type ToxicStream = 'upstream' | 'downstream';

export interface ToxicSpec {
  name: string;
  type: 'latency' | 'bandwidth' | 'reset_peer' | 'timeout' | 'slow_close' | 'limit_data' | 'slicer';
  stream?: ToxicStream;
  /** Share of connections the toxic applies to, 0..1. */
  toxicity?: number;
  attributes: Record<string, number>;
}

/** One proxied link: clients dial `listen`, toxiproxy forwards to `upstream`. */
export class ToxiLink {
  constructor(
    private readonly api: ToxiproxyHandle,
    readonly name: string,
    /** "127.0.0.1:port" clients dial. */
    readonly listen: string,
    readonly upstream: string,
  ) {}

  get port(): number {
    return Number(this.listen.slice(this.listen.lastIndexOf(':') + 1));
  }

  /** Adds a toxic in both directions unless a stream is named (one toxic per stream). */
  async add(spec: ToxicSpec): Promise<void> {
    const streams: ToxicStream[] = spec.stream ? [spec.stream] : ['downstream', 'upstream'];
    for (const stream of streams) {
      await this.api.call('POST', `/proxies/${this.name}/toxics`, {
        name: spec.stream ? spec.name : `${spec.name}_${stream}`,
        type: spec.type,
        stream,
        toxicity: spec.toxicity ?? 1,
        attributes: spec.attributes,
      });
    }
  }

  async remove(name: string): Promise<void> {
    const toxics = (await this.api.call('GET', `/proxies/${this.name}/toxics`)) as Array<{ name: string }>;
    for (const t of toxics) {
      if (t.name === name || t.name === `${name}_downstream` || t.name === `${name}_upstream`) {
        await this.api.call('DELETE', `/proxies/${this.name}/toxics/${t.name}`);
      }
    }
  }

  async clear(): Promise<void> {
    const toxics = (await this.api.call('GET', `/proxies/${this.name}/toxics`)) as Array<{ name: string }>;
    for (const t of toxics) await this.api.call('DELETE', `/proxies/${this.name}/toxics/${t.name}`);
  }

  /** Latency (ms) with jitter (ms) each way. */
  latency(latencyMs: number, jitterMs = 0): Promise<void> {
    return this.add({ name: 'latency', type: 'latency', attributes: { latency: latencyMs, jitter: jitterMs } });
  }

  /** A bandwidth cap each way, in KB/s (toxiproxy's unit). */
  bandwidth(kbPerSec: number): Promise<void> {
    return this.add({ name: 'bandwidth', type: 'bandwidth', attributes: { rate: kbPerSec } });
  }

  /** Resets (TCP RST) connections `afterMs` after their data starts flowing. */
  resetPeer(afterMs: number, toxicity = 1): Promise<void> {
    return this.add({ name: 'reset', type: 'reset_peer', stream: 'upstream', toxicity, attributes: { timeout: afterMs } });
  }

  /**
   * A partition: connections stay open but carry nothing (a black hole, as on a lost route),
   * and new connections are accepted and then hang the same way.
   */
  partition(): Promise<void> {
    return this.add({ name: 'partition', type: 'timeout', attributes: { timeout: 0 } });
  }

  heal(): Promise<void> {
    return this.remove('partition');
  }

  /** Disabled: listener closed and every connection cut (connection refused while down). */
  async setEnabled(enabled: boolean): Promise<void> {
    await this.api.call('POST', `/proxies/${this.name}`, { enabled });
  }
}

export interface ToxiproxyHandle {
  readonly url: string;
  call(method: string, path: string, body?: unknown): Promise<unknown>;
  /** Proxies 127.0.0.1:<free port> to `upstream` ("host:port"). */
  link(name: string, upstream: string): Promise<ToxiLink>;
  /** Bytes a proxy carried so far, each way (needs startToxiproxy({ proxyMetrics: true })). */
  bytes(name: string): Promise<{ upstream: number; downstream: number }>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

class Toxiproxy extends Server implements ToxiproxyHandle {
  private port = 0;
  private pendingPort = 0;

  constructor(private readonly proxyMetrics: boolean) {
    super();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  protected async spawn(): Promise<Proc> {
    this.pendingPort = this.port || (await freePort());
    return new Proc('toxiproxy', binaryPath('toxiproxy-server'), [
      '-host', '127.0.0.1', '-port', String(this.pendingPort), ...(this.proxyMetrics ? ['-proxy-metrics'] : []),
    ]);
  }

  protected async ready(proc: Proc, deadline: number): Promise<void> {
    await proc.waitForHttp(`http://127.0.0.1:${this.pendingPort}/version`, 200, deadline);
    this.port = this.pendingPort;
  }

  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status} ${text}`);
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  }

  async bytes(name: string): Promise<{ upstream: number; downstream: number }> {
    const res = await fetch(`${this.url}/metrics`);
    const text = await res.text();
    const out = { upstream: 0, downstream: 0 };
    // What toxiproxy passed on: toxiproxy_proxy_sent_bytes_total{direction=…,proxy=…} N
    for (const m of text.matchAll(/^toxiproxy_proxy_sent_bytes_total\{([^}]*)\} (\S+)$/gm)) {
      const labels = m[1] ?? '';
      if (!labels.includes(`proxy="${name}"`)) continue;
      if (labels.includes('direction="upstream"')) out.upstream += Number(m[2]);
      if (labels.includes('direction="downstream"')) out.downstream += Number(m[2]);
    }
    return out;
  }

  async link(name: string, upstream: string): Promise<ToxiLink> {
    // Port 0 would do, but toxiproxy reports it back only in the listing; a free port is simpler.
    for (let attempt = 0; ; attempt++) {
      const listen = `127.0.0.1:${await freePort()}`;
      try {
        await this.call('POST', '/proxies', { name, listen, upstream, enabled: true });
        return new ToxiLink(this, name, listen, upstream);
      } catch (err) {
        if (attempt >= 5 || !/address already in use/.test((err as Error).message)) throw err;
      }
    }
  }
}

export async function startToxiproxy(opts: { proxyMetrics?: boolean } = {}): Promise<ToxiproxyHandle> {
  binaryPath('toxiproxy-server');
  return new Toxiproxy(opts.proxyMetrics ?? false).start();
}
