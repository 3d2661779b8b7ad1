// tcp_probe: connects to one or more host:port addresses and reports, per address, whether the
// connect worked and how long it took; optionally sends a string and expects one back (as
// Telegraf's net_response does). A failed probe is data (up=0 and a result tag), not an error.
import net from 'node:net';
import { z } from 'zod';
import type { Metric } from '../../src/points/metric.ts';
import { builtinPlugin, probeAll } from '../../src/plugins/builtin.ts';
import type { BuiltinPluginContext } from '../../src/plugins/types.ts';
import { classifyNetError } from '../net-errors.ts';

const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

const address = z
  .string()
  .regex(ADDRESS, 'must be "host:port" (e.g. "127.0.0.1:6379" or "[::1]:22")')
  .refine((a) => {
    const port = Number(ADDRESS.exec(a)?.[3]);
    return port >= 1 && port <= 65535;
  }, 'port must be 1 to 65535');

export const tcpProbeParams = z
  .object({
    address: address.optional(),
    addresses: z.array(address).min(1).max(100).optional(),
    /** Per probe; default: the run's timeout. */
    timeoutMs: z.number().int().min(1).optional(),
    /** Written once connected. */
    send: z.string().optional(),
    /** A substring the answer must hold within the timeout (at most 64 KiB are read). */
    expect: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(64).default(8),
  })
  .strict()
  .refine((p) => (p.address === undefined) !== (p.addresses === undefined), { message: 'give either "address" or "addresses"' });

export type TcpProbeParams = z.output<typeof tcpProbeParams>;

const MAX_READ_BYTES = 64 * 1024;

export const tcpProbe = builtinPlugin(tcpProbeParams, async (params, ctx) => {
  const addresses = params.addresses ?? [params.address as string];
  return probeAll(addresses, params.concurrency, (target) => probe(target, params, ctx));
});

async function probe(addr: string, p: TcpProbeParams, ctx: BuiltinPluginContext): Promise<Metric[]> {
  const m = ADDRESS.exec(addr) as RegExpExecArray;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(p.timeoutMs ?? ctx.timeoutMs)]);
  const outcome = await connect(host, port, p, signal);
  const tags = { address: addr, result: outcome.result };
  const out: Metric[] = [{ name: 'up', tags, value: outcome.result === 'ok' ? 1 : 0 }];
  if (outcome.connectMs !== null) out.push({ name: 'connect_ms', tags, value: outcome.connectMs });
  if (outcome.responseMs !== null) out.push({ name: 'response_ms', tags, value: outcome.responseMs });
  if (outcome.result !== 'ok') ctx.logger.debug({ address: addr, result: outcome.result }, 'tcp_probe: failed');
  return out;
}

interface Outcome {
  result: string;
  connectMs: number | null;
  responseMs: number | null;
}

function connect(host: string, port: number, p: TcpProbeParams, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let connectMs: number | null = null;
    let received = 0;
    let settled = false;
    const socket = net.connect({ host, port });
    const done = (result: string, responseMs: number | null = null) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ result, connectMs, responseMs });
    };
    // Bytes came but not the expected ones: a wrong answer, not a silent server.
    const onAbort = () => done(received > 0 ? 'expect_mismatch' : 'timeout');
    if (signal.aborted) return done('timeout');
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      connectMs = performance.now() - started;
      if (p.send !== undefined) socket.write(p.send);
      if (p.expect === undefined) return done('ok');
      const want = p.expect;
      let seen = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        received += Buffer.byteLength(chunk);
        seen = seen.slice(-want.length) + chunk;
        if (seen.includes(want)) done('ok', performance.now() - started);
        else if (received >= MAX_READ_BYTES) done('expect_mismatch');
      });
      socket.once('end', () => done('expect_mismatch'));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const cause = classifyNetError(err);
      done(cause === 'connection_failed' && connectMs !== null ? 'read_failed' : cause);
    });
  });
}
