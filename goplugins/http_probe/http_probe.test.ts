// http_probe against real HTTP and HTTPS servers on loopback; the certificate is made at test time.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import type { Metric } from '../../src/points/metric.ts';
import { httpProbe } from './index.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const dir = tempDir('nsagent-http-probe-').dir;
const sockets = new Set<Socket>();
let plain: http.Server;
let secure: https.Server;
let silent: http.Server;
let base: string;
let tlsBase: string;
let silentBase: string;
const certFile = path.join(dir, 'cert.pem');

function listen(server: http.Server | https.Server): Promise<number> {
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

const handler: http.RequestListener = (req, res) => {
  if (req.url === '/missing') {
    res.statusCode = 404;
    res.end('no');
  } else if (req.url === '/big') {
    res.end('x'.repeat(200_000) + 'NEEDLE');
  } else {
    res.end(`hello from ${req.method}`);
  }
};

before(async () => {
  // A self-signed certificate for 127.0.0.1 valid for 30 days.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', certFile, '-days', '30',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  plain = http.createServer(handler);
  secure = https.createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(certFile) }, handler);
  silent = http.createServer(() => {}); // never answers
  base = `http://127.0.0.1:${await listen(plain)}`;
  tlsBase = `https://127.0.0.1:${await listen(secure)}`;
  silentBase = `http://127.0.0.1:${await listen(silent)}`;
});

after(() => {
  for (const s of sockets) s.destroy();
  plain.close();
  secure.close();
  silent.close();
  rmSync(dir, { recursive: true, force: true });
});

function run(params: Record<string, unknown>, timeoutMs = 5000): Promise<Metric[]> {
  return httpProbe(params, { signal: new AbortController().signal, timeoutMs, logger: silentLogger() });
}

function byName(metrics: Metric[], url?: string): Record<string, Metric> {
  return Object.fromEntries(metrics.filter((m) => url === undefined || m.tags?.url === url).map((m) => [m.name, m]));
}

describe('http_probe', () => {
  test('status code and latency of a plain HTTP answer', async () => {
    const m = byName(await run({ url: `${base}/health` }));
    assert.deepEqual(Object.keys(m), ['up', 'status_code', 'response_ms']);
    assert.equal(m.up?.value, 1);
    assert.deepEqual(m.up?.tags, { url: `${base}/health`, result: 'ok' });
    assert.equal(m.status_code?.value, 200);
    assert.ok((m.response_ms?.value as number) > 0 && (m.response_ms?.value as number) < 5000);
  });

  test('expected status and body decide up; a mismatch is data, not an error', async () => {
    const missing = byName(await run({ url: `${base}/missing` }));
    assert.deepEqual([missing.up?.value, missing.up?.tags?.result, missing.status_code?.value], [0, 'status_mismatch', 404]);
    const wanted404 = byName(await run({ url: `${base}/missing`, expectStatus: [404, 410] }));
    assert.equal(wanted404.up?.value, 1);
    const body = byName(await run({ url: `${base}/big`, expectBody: 'NEEDLE' }));
    assert.equal(body.up?.value, 1);
    const cut = byName(await run({ url: `${base}/big`, expectBody: 'NEEDLE', maxBodyBytes: 1000 }));
    assert.deepEqual([cut.up?.value, cut.up?.tags?.result], [0, 'body_mismatch']);
    const head = byName(await run({ url: `${base}/`, method: 'HEAD' }));
    assert.equal(head.status_code?.value, 200);
  });

  test('https: days left on the certificate; verified against a CA file, refused unverified, or reported with tlsVerify false', async () => {
    const refused = byName(await run({ url: `${tlsBase}/` }));
    assert.deepEqual([refused.up?.value, refused.up?.tags?.result], [0, 'tls_error']);

    const verified = byName(await run({ url: `${tlsBase}/`, caFile: certFile }));
    assert.equal(verified.up?.value, 1);
    assert.equal(verified.tls_verified?.value, 1);
    const days = verified.tls_days_left?.value as number;
    assert.ok(days > 29.9 && days <= 30.01, `days left ${days}`);

    const unverified = byName(await run({ url: `${tlsBase}/`, tlsVerify: false }));
    assert.equal(unverified.up?.value, 1);
    assert.equal(unverified.tls_verified?.value, 0);
    assert.ok((unverified.tls_days_left?.value as number) > 29.9);
  });

  test('no answer: timeout and connection refused, per URL, in one run', async () => {
    const closed = http.createServer();
    const port = await new Promise<number>((r) => closed.listen(0, '127.0.0.1', () => r((closed.address() as AddressInfo).port)));
    await new Promise((r) => closed.close(r));
    const urls = [`${silentBase}/`, `http://127.0.0.1:${port}/`, `${base}/`];
    const t0 = Date.now();
    const metrics = await run({ urls, timeoutMs: 300 });
    assert.ok(Date.now() - t0 < 3000);
    assert.deepEqual(byName(metrics, urls[0]).up?.tags?.result, 'timeout');
    assert.deepEqual(byName(metrics, urls[1]).up?.tags?.result, 'connection_refused');
    assert.deepEqual(byName(metrics, urls[2]).up?.value, 1);
  });

  test('params are checked with a sentence naming the param', async () => {
    assert.throws(() => httpProbe.checkParams?.({}), /give either "url" or "urls"/);
    assert.throws(() => httpProbe.checkParams?.({ url: 'ftp://x/' }), /param "url": must be an http:\/\/ or https:\/\/ URL/);
    assert.throws(() => httpProbe.checkParams?.({ url: `${base}/`, method: 'DELETE' }), /param "method"/);
    assert.throws(() => httpProbe.checkParams?.({ url: `${base}/`, colour: 'red' }), /unknown param "colour"/);
    await assert.rejects(run({ url: 42 }), /param "url": expected string, received number/);
  });
});
