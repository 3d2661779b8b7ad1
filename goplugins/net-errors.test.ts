// The built-in probes name a failure the same way: against real TLS servers on loopback, one
// with a certificate from a CA the probe does not trust and one with a self-signed certificate,
// and a closed port. Certificates are made with openssl at test time.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../src/log/logger.ts';
import type { Metric } from '../src/points/metric.ts';
import { makeTestCerts, type TestCerts } from '../test/helpers/certs.ts';
import { stopAll } from '../test/helpers/servers.ts';
import { httpProbe } from './http_probe/index.ts';
import { classifyNetError } from './net-errors.ts';
import { promScrape } from './prom_scrape/index.ts';
import { tcpProbe } from './tcp_probe/index.ts';

let certs: TestCerts;
const servers: https.Server[] = [];
/** Signed by the test CA, which the probes trust only when given its caFile. */
let caSignedUrl: string;
/** A certificate that signs itself. */
let selfSignedUrl: string;
/** A loopback port nothing listens on. */
let closedPort: number;

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function tlsServer(certFile: string, keyFile: string): https.Server {
  const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (_req, res) => {
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end('up_probe 1\n');
  });
  servers.push(server);
  return server;
}

before(async () => {
  certs = makeTestCerts();
  caSignedUrl = `https://127.0.0.1:${await listen(tlsServer(certs.serverCertFile, certs.serverKeyFile))}/metrics`;
  // The CA's own certificate is self-signed: served as a leaf, it is DEPTH_ZERO_SELF_SIGNED_CERT.
  selfSignedUrl = `https://127.0.0.1:${await listen(tlsServer(certs.caFile, certs.caFile.replace(/\.crt$/, '.key')))}/metrics`;
  const closed = net.createServer();
  closedPort = await listen(closed);
  await new Promise((resolve) => closed.close(resolve));
});

after(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await stopAll();
});

const ctx = () => ({ signal: new AbortController().signal, timeoutMs: 5000, logger: silentLogger() });

function tag(metrics: Metric[], name: string, key: string): string | undefined {
  return metrics.find((m) => m.name === name)?.tags?.[key];
}

async function probeResults(url: string, params: Record<string, unknown> = {}): Promise<{ http: string | undefined; scrape: string | undefined }> {
  return {
    http: tag(await httpProbe({ url, ...params }, ctx()), 'up', 'result'),
    scrape: tag(await promScrape({ url, ...params }, ctx()), 'scrape_up', 'error'),
  };
}

/** The error Node gives for a plain HTTPS request to `url`. */
function requestError(url: string): Promise<unknown> {
  return new Promise((resolve) => {
    const req = https.get(url, { agent: false }, (res) => {
      res.resume();
      resolve(undefined);
    });
    req.on('error', resolve);
  });
}

describe('network failures of the built-in probes', () => {
  test('a certificate from an unknown CA is a TLS failure, in http_probe and prom_scrape alike', async () => {
    const err = (await requestError(caSignedUrl)) as NodeJS.ErrnoException;
    assert.equal(err.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(classifyNetError(err), 'tls_error');
    assert.deepEqual(await probeResults(caSignedUrl), { http: 'tls_error', scrape: 'tls_error' });
    assert.deepEqual(await probeResults(caSignedUrl, { caFile: certs.otherCaFile }), { http: 'tls_error', scrape: 'tls_error' });
    // Trusting the CA that signed it makes the same server answer: the failure was the trust.
    assert.deepEqual(await probeResults(caSignedUrl, { caFile: certs.caFile }), { http: 'ok', scrape: 'none' });
  });

  test('a self-signed certificate is a TLS failure too', async () => {
    const err = (await requestError(selfSignedUrl)) as NodeJS.ErrnoException;
    assert.equal(err.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.deepEqual(await probeResults(selfSignedUrl), { http: 'tls_error', scrape: 'tls_error' });
  });

  test('a closed port is connection_refused in all three probes', async () => {
    assert.deepEqual(await probeResults(`https://127.0.0.1:${closedPort}/metrics`), { http: 'connection_refused', scrape: 'connection_refused' });
    const tcp = await tcpProbe({ address: `127.0.0.1:${closedPort}` }, ctx());
    assert.equal(tag(tcp, 'up', 'result'), 'connection_refused');
  });
});
