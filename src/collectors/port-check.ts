// Port checks: is a TCP port listening on this host (a LISTEN socket in /proc/net/tcp or tcp6,
// any address), and, when the registry asks (`connect: true`), does a connect succeed and how
// long does it take. Every outcome is a `port_check` point; nothing here throws.
import net from 'node:net';
import { systemClock, type Clock } from '../clock.ts';
import { mapLimited } from '../concurrency.ts';
import type { PortCheck } from '../registry/types.ts';
import { isGone, type HostFs } from './hostfs.ts';
import type { Accumulator } from './types.ts';

const TCP_LISTEN = '0A';

/** The local port of a LISTEN line of /proc/net/tcp or tcp6, else null (header, other states). */
export function listeningPort(line: string): number | null {
  // "  sl  local_address rem_address   st …" / "   0: 0100007F:1F90 00000000:0000 0A …"
  const p = line.trim().split(/\s+/);
  if (p.length < 4 || p[3] !== TCP_LISTEN) return null;
  const local = p[1] as string;
  const colon = local.lastIndexOf(':');
  if (colon < 0) return null;
  const port = parseInt(local.slice(colon + 1), 16);
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : null;
}

export function parseListeningPorts(text: string): Set<number> {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    const port = listeningPort(line);
    if (port !== null) ports.add(port);
  }
  return ports;
}

export type ConnectOutcome = { ok: true; ms: number } | { ok: false; reason: 'timeout' | 'connection_failed'; error: string };

/** One TCP connect, closed at once; never rejects. */
export function tcpConnect(host: string, port: number, timeoutMs: number, clock: Clock = systemClock): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect({ host, port });
    let done = false;
    const finish = (outcome: ConnectOutcome) => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = clock.setTimeout(() => finish({ ok: false, reason: 'timeout', error: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => finish({ ok: true, ms: performance.now() - started }));
    socket.once('error', (err) => finish({ ok: false, reason: 'connection_failed', error: err.message }));
  });
}

export const PORT_RESULT_CODES = { success: 0, not_listening: 1, connection_failed: 2, timeout: 3, read_failed: 4 } as const;
export type PortResult = keyof typeof PORT_RESULT_CODES;

export interface PortCheckerOptions {
  hostFs: HostFs;
  connectTimeoutMs: number;
  clock?: Clock;
  /** Bytes read at most from each socket table (a busy host has hundreds of thousands of sockets). */
  maxSocketTableBytes?: number;
  /** Connects in flight at once within one check run. */
  maxConcurrentConnects?: number;
}

export const PORT_CHECK_DEFAULTS = { maxSocketTableBytes: 256 * 1024 * 1024, maxConcurrentConnects: 16 } as const;

export class PortChecker {
  private readonly hostFs: HostFs;
  private readonly connectTimeoutMs: number;
  private readonly clock: Clock;
  private readonly maxTableBytes: number;
  private readonly maxConcurrent: number;

  constructor(opts: PortCheckerOptions) {
    this.hostFs = opts.hostFs;
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.clock = opts.clock ?? systemClock;
    this.maxTableBytes = opts.maxSocketTableBytes ?? PORT_CHECK_DEFAULTS.maxSocketTableBytes;
    this.maxConcurrent = opts.maxConcurrentConnects ?? PORT_CHECK_DEFAULTS.maxConcurrentConnects;
  }

  /** The ports with a LISTEN socket, IPv4 and IPv6; null when neither table could be read. */
  async listeningPorts(acc: Accumulator): Promise<Set<number> | null> {
    const ports = new Set<number>();
    let readable = 0;
    for (const table of ['proc/net/tcp', 'proc/net/tcp6']) {
      try {
        const { truncated } = await this.hostFs.forEachLine(table, this.maxTableBytes, (line) => {
          const port = listeningPort(line);
          if (port !== null) ports.add(port);
        });
        if (truncated) acc.error(table, new Error(`read only the first ${this.maxTableBytes} bytes (maxSocketTableBytes)`));
        readable++;
      } catch (err) {
        // No tcp6 table on a host without IPv6 is normal; anything else is worth saying.
        if (!(table.endsWith('6') && isGone(err))) acc.error(table, err);
      }
    }
    return readable > 0 ? ports : null;
  }

  async check(checks: readonly PortCheck[], acc: Accumulator): Promise<void> {
    if (checks.length === 0) return;
    const listening = await this.listeningPorts(acc);
    const connects = await mapLimited(checks, this.maxConcurrent, (c) =>
      c.connect ? tcpConnect(c.host ?? '127.0.0.1', c.port, this.connectTimeoutMs, this.clock) : Promise.resolve(null),
    );
    for (const [i, c] of checks.entries()) {
      const conn = connects[i] ?? null;
      const tags: Record<string, string> = { port: String(c.port) };
      const fields: Record<string, number> = {};
      let result: PortResult;
      if (listening !== null) fields.listening = listening.has(c.port) ? 1 : 0;
      if (conn) {
        tags.server = c.host ?? '127.0.0.1';
        result = conn.ok ? 'success' : conn.reason;
        if (conn.ok) fields.response_time = conn.ms / 1000;
      } else if (listening === null) {
        result = 'read_failed';
      } else {
        result = listening.has(c.port) ? 'success' : 'not_listening';
      }
      tags.result = result;
      fields.result_code = PORT_RESULT_CODES[result];
      acc.add('port_check', fields, tags);
    }
  }
}
