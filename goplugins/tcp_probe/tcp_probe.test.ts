// tcp_probe against real TCP servers on loopback.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import type { Metric } from '../../src/points/metric.ts';
import { tcpProbe } from './index.ts';

const sockets = new Set<net.Socket>();
let echo: net.Server;
let mute: net.Server;
let echoAddr: string;
let muteAddr: string;

function listen(server: net.Server): Promise<string> {
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

before(async () => {
  echo = net.createServer((s) => s.on('data', (d) => s.write(`+PONG ${d.toString().trim()}\r\n`)));
  mute = net.createServer(() => {}); // accepts, never speaks
  echoAddr = await listen(echo);
  muteAddr = await listen(mute);
});

after(() => {
  for (const s of sockets) s.destroy();
  echo.close();
  mute.close();
});

function run(params: Record<string, unknown>): Promise<Metric[]> {
  return tcpProbe(params, { signal: new AbortController().signal, timeoutMs: 5000, logger: silentLogger() });
}

function of(metrics: Metric[], address: string): Record<string, Metric> {
  return Object.fromEntries(metrics.filter((m) => m.tags?.address === address).map((m) => [m.name, m]));
}

async function closedPort(): Promise<string> {
  const s = net.createServer();
  const addr = await new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`127.0.0.1:${(s.address() as AddressInfo).port}`)));
  await new Promise((r) => s.close(r));
  return addr;
}

describe('tcp_probe', () => {
  test('a listening port is up, with its connect time', async () => {
    const m = of(await run({ address: echoAddr }), echoAddr);
    assert.equal(m.up?.value, 1);
    assert.deepEqual(m.up?.tags, { address: echoAddr, result: 'ok' });
    assert.ok((m.connect_ms?.value as number) >= 0 && (m.connect_ms?.value as number) < 5000);
    assert.equal(m.response_ms, undefined);
  });

  test('a closed port is down with result connection_refused', async () => {
    const addr = await closedPort();
    const m = of(await run({ address: addr }), addr);
    assert.deepEqual([m.up?.value, m.up?.tags?.result, m.connect_ms], [0, 'connection_refused', undefined]);
  });

  test('send and expect: a matching answer, a wrong one, and silence until the timeout', async () => {
    const ok = of(await run({ address: echoAddr, send: 'PING\r\n', expect: '+PONG PING' }), echoAddr);
    assert.equal(ok.up?.value, 1);
    assert.ok(typeof ok.response_ms?.value === 'number');
    const wrong = of(await run({ address: echoAddr, send: 'PING\r\n', expect: 'NOPE', timeoutMs: 300 }), echoAddr);
    assert.deepEqual([wrong.up?.value, wrong.up?.tags?.result], [0, 'expect_mismatch']);
    const t0 = Date.now();
    const metrics = await run({ addresses: [muteAddr, echoAddr], expect: 'hello', timeoutMs: 300 });
    assert.ok(Date.now() - t0 < 3000);
    assert.deepEqual(of(metrics, muteAddr).up?.tags?.result, 'timeout');
    assert.equal(of(metrics, muteAddr).connect_ms !== undefined, true, 'it did connect');
  });

  test('params are checked with a sentence naming the param', () => {
    assert.throws(() => tcpProbe.checkParams?.({ address: 'localhost' }), /param "address": must be "host:port"/);
    assert.throws(() => tcpProbe.checkParams?.({ address: '127.0.0.1:70000' }), /port must be 1 to 65535/);
    assert.throws(() => tcpProbe.checkParams?.({ address: echoAddr, addresses: [echoAddr] }), /give either "address" or "addresses"/);
    assert.doesNotThrow(() => tcpProbe.checkParams?.({ addresses: ['[::1]:22', 'db.example.com:5432'] }));
  });
});
