// The hop from the gateway to a backend across a data centre: HTTPS against a real influxd with
// a throwaway CA, gzip bodies, Basic credentials. A wrong CA or name is refused with a sentence
// that says which.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { backendSchema, influxdbBackendSchema, type InfluxdbBackendConfig } from '../../src/config/schema.ts';
import { BackendClient } from '../../src/sender/backend-client.ts';
import { makeTestCerts, type TestCerts } from '../helpers/certs.ts';
import { startInfluxd, stopAll, type InfluxdHandle } from '../helpers/servers.ts';
import { FakeInflux } from './fake-influx.ts';

let certs: TestCerts;
let influx: InfluxdHandle;

before(async () => {
  certs = makeTestCerts();
  influx = await startInfluxd({ version: '1.6', tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile } });
});
after(() => stopAll());

function client(over: Record<string, unknown>): BackendClient {
  const backend: InfluxdbBackendConfig = influxdbBackendSchema.parse({ name: 'central', url: influx.url, timeoutMs: 5000, ...over });
  return new BackendClient({ backend, maxSockets: 2 });
}

function lines(n: number, measurement: string): string {
  return Array.from({ length: n }, (_, i) => `${measurement},host=h${i % 7} value=${i} ${1_700_000_000 + i}`).join('\n');
}

describe('sender → backend over HTTPS', () => {
  test('trusting the CA file, a gzipped write is stored whole', async () => {
    const c = client({ tls: { caFile: certs.caFile } });
    try {
      assert.equal(await c.createDatabase('tls_ok'), undefined);
      const body = lines(3000, 'tls_gzip');
      assert.ok(body.length > 1024, 'the body is large enough to be gzipped');
      assert.deepEqual(await c.write('tls_ok', body), { kind: 'ok' });
      assert.equal(await influx.count('tls_ok', 'tls_gzip'), 3000);
    } finally {
      c.close();
    }
  });

  test('a server certificate signed by another CA is refused, naming the CA file', async () => {
    const c = client({ tls: { caFile: certs.otherCaFile } });
    try {
      const answer = await c.write('tls_wrong_ca', lines(1, 'x'));
      assert.equal(answer.kind, 'retryable');
      assert.match((answer as { message: string }).message, /backend "central": TLS certificate not trusted: it is not signed by the CA file ".*other-ca\.crt"/);
    } finally {
      c.close();
    }
  });

  test('a server name the certificate does not hold is refused, naming the name', async () => {
    const c = client({ tls: { caFile: certs.caFile, serverName: 'influx.dc2.example' } });
    try {
      const answer = await c.write('tls_wrong_name', lines(1, 'x'));
      assert.equal(answer.kind, 'retryable');
      assert.match((answer as { message: string }).message, /TLS certificate does not hold the name "influx\.dc2\.example"/);
    } finally {
      c.close();
    }
  });

  test('serverName set to a name the certificate holds is accepted while dialing an address', async () => {
    const c = client({ tls: { caFile: certs.caFile, serverName: 'localhost' } });
    try {
      assert.equal(await c.createDatabase('tls_name'), undefined);
      assert.deepEqual(await c.write('tls_name', lines(5, 'named')), { kind: 'ok' });
    } finally {
      c.close();
    }
  });

  test('a missing CA file stops construction with the key and the path', () => {
    assert.throws(() => client({ tls: { caFile: `${certs.dir}/nope.crt` } }), /backend "central" tls\.caFile: cannot read ".*nope\.crt" \(ENOENT\)/);
  });
});

describe('sender → backend behind a proxy that asks for a client certificate', () => {
  // influxd 1.x does not verify client certificates; a TLS front (nginx, a load balancer) does.
  test('the client certificate opens it; without one the refusal says so', async () => {
    const server = createHttpsServer(
      { cert: readFileSync(certs.serverCertFile), key: readFileSync(certs.serverKeyFile), ca: readFileSync(certs.caFile), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(204).end());
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const make = (tls: Record<string, string>): BackendClient =>
      new BackendClient({ backend: influxdbBackendSchema.parse({ name: 'front', url, tls, timeoutMs: 5000 }), maxSockets: 1 });
    const withCert = make({ caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile });
    const without = make({ caFile: certs.caFile });
    const stranger = make({ caFile: certs.caFile, certFile: certs.strangerCertFile, keyFile: certs.strangerKeyFile });
    try {
      const refused = await without.write('ns', lines(3, 'm'));
      assert.equal(refused.kind, 'retryable');
      assert.match((refused as { message: string }).message, /backend "front": the server refused a missing client certificate/);
      assert.deepEqual(await withCert.write('ns', lines(3, 'm')), { kind: 'ok' });
      // A certificate from another CA: Node's TLS server resets without an alert, so the client
      // learns only that the connection was cut; it is refused all the same.
      assert.equal((await stranger.write('ns', lines(3, 'm'))).kind, 'retryable');
    } finally {
      withCert.close();
      without.close();
      stranger.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('sender → backend: gzip and credentials on the wire', () => {
  test('large bodies go gzipped unless gzip is off; username/password go as Basic', async () => {
    const fake = await new FakeInflux().start();
    try {
      const make = (over: Record<string, unknown>): BackendClient =>
        new BackendClient({ backend: influxdbBackendSchema.parse({ name: 'f', url: fake.url, ...over }), maxSockets: 1 });
      const on = make({ username: 'writer', password: 's3cret' });
      const off = make({ gzip: false });
      try {
        assert.deepEqual(await on.write('ns', lines(200, 'm')), { kind: 'ok' });
        assert.deepEqual(await on.write('ns', lines(1, 'm')), { kind: 'ok' });
        assert.deepEqual(await off.write('ns', lines(200, 'm')), { kind: 'ok' });
      } finally {
        on.close();
        off.close();
      }
      const writes = fake.requests.filter((r) => r.path === '/write');
      assert.deepEqual(
        writes.map((r) => r.headers['content-encoding'] ?? 'identity'),
        ['gzip', 'identity', 'identity'],
      );
      assert.equal(writes[0]?.headers.authorization, `Basic ${Buffer.from('writer:s3cret').toString('base64')}`);
    } finally {
      await fake.stop();
    }
  });

  test('the schema refuses tls on an http url and a password without a username', () => {
    assert.throws(() => backendSchema.parse({ name: 'x', url: 'http://h:8086', tls: {} }), /tls needs an https:\/\/ url/);
    assert.throws(() => backendSchema.parse({ name: 'x', url: 'http://h:8086', password: 'p' }), /password given without username/);
  });
});
