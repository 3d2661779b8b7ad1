// The HTTP registry against a real HTTP server on loopback: the contract's URLs and bearer
// token, ETag/304, a malformed answer refused whole with the field named (the last good one
// stays), the cache used when the registry is down at start, size and time limits, and polls
// on the interval at the host's phase.
import { after, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { registrySchema, type RegistryConfig } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { RegistryClient } from '../../src/registry/registry-client.ts';
import type { RegistrySnapshot } from '../../src/registry/types.ts';
import { jobPhaseMs, nextAlignedRun } from '../../src/job-timing.ts';
import { captureLogger } from '../helpers/capture-log.ts';
import { RegistryServer } from './registry-server.ts';
import { FakeClock } from '../helpers/clocks.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('nsagent-http-registry-').dir;
const servers: RegistryServer[] = [];
const clients: RegistryClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
let dir = '';
beforeEach(() => {
  dir = path.join(tmp, `t${++n}`);
});

const WEB1 = {
  namespaces: ['demo.web', 'demo.infra'],
  checks: { 'demo.web': { ports: [{ port: 8080, connect: true }], processes: [{ name: 'nginx' }] }, other: { ports: [{ port: 1 }] } },
  plugins: { 'demo.web': [{ builtin: 'http_probe', interval: 30, params: { url: 'http://127.0.0.1:8080/' } }] },
};

const EXPECTED: RegistrySnapshot = {
  namespaces: ['demo.web', 'demo.infra'],
  checks: {
    'demo.web': { ports: [{ port: 8080, connect: true }], processes: [{ name: 'nginx' }] },
    'demo.infra': { ports: [], processes: [] },
  },
  plugins: { 'demo.web': [{ builtin: 'http_probe', interval: 30, params: { url: 'http://127.0.0.1:8080/' } }], 'demo.infra': [] },
};

async function server(): Promise<RegistryServer> {
  const s = new RegistryServer();
  s.hosts['web-1'] = structuredClone(WEB1);
  await s.start();
  servers.push(s);
  return s;
}

function config(url: string, extra: Partial<RegistryConfig> = {}): RegistryConfig {
  return { ...registrySchema.parse({ source: 'http', url, token: 's3cret', timeoutMs: 2000 }), ...extra };
}

function client(url: string, opts: { extra?: Partial<RegistryConfig>; logger?: ReturnType<typeof silentLogger>; clock?: FakeClock; hostname?: string } = {}) {
  const c = new RegistryClient({
    hostname: opts.hostname ?? 'web-1',
    config: config(url, opts.extra),
    cacheDir: path.join(dir, 'registry'),
    logger: opts.logger ?? silentLogger(),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  clients.push(c);
  const changes: RegistrySnapshot[] = [];
  c.onChange((s) => changes.push(s));
  return { c, changes };
}

function byName(c: RegistryClient) {
  return Object.fromEntries(c.status().map((s) => [s.name, s]));
}

describe('HTTP registry', () => {
  test('polls the three endpoints with the bearer token, then honours ETag / 304', async () => {
    const s = await server();
    const { c, changes } = client(s.url());
    await c.start();
    assert.deepEqual(c.current(), EXPECTED, 'namespaces not listed (other) are left out');
    assert.deepEqual(s.requests.map((r) => r.path).sort(), [
      '/registry/hosts/web-1/checks',
      '/registry/hosts/web-1/namespaces',
      '/registry/hosts/web-1/plugins',
    ]);
    assert.ok(s.requests.every((r) => r.authorization === 'Bearer s3cret' && r.ifNoneMatch === undefined));
    assert.deepEqual(changes.at(-1), EXPECTED);
    const changesAfterStart = changes.length;

    const statuses = await c.pollNow();
    const second = s.requests.slice(3);
    assert.equal(second.length, 3);
    for (const r of second) assert.equal(r.ifNoneMatch, `"v1-${r.path.split('/').pop()}"`, 'If-None-Match carries the ETag');
    assert.ok(statuses.every((st) => st.lastError === null && st.source === 'registry' && st.lastSuccessAt !== null));
    assert.equal(changes.length, changesAfterStart, '304: no change announced');
    assert.deepEqual(c.current(), EXPECTED);
  });

  test('a malformed answer is refused whole with the field named, and the last good one stays', async () => {
    const s = await server();
    const cap = captureLogger();
    const { c, changes } = client(s.url(), { logger: cap.logger });
    await c.start();
    const before = changes.length;

    s.hosts['web-1']!.plugins = {
      'demo.web': [{ builtin: 'http_probe', interval: -5 }, { builtin: 'tcp_probe', interval: 10 }],
    };
    s.bump();
    await c.pollNow();
    const st = byName(c);
    assert.match(st.plugins!.lastError!, /answer refused.*\$\.plugins\["demo\.web"\]\[0\]\.interval: must be >= 0/);
    assert.ok(st.plugins!.lastErrorAt !== null);
    assert.equal(st.namespaces!.lastError, null);
    assert.deepEqual(c.current(), EXPECTED, 'the good part of the bad answer is not applied either');
    assert.equal(changes.length, before);
    const logged = cap.records.filter((r) => r.msg === 'registry poll failed');
    assert.equal(logged.length, 1);
    assert.match(String(logged[0]!.error), /\$\.plugins\["demo\.web"\]\[0\]\.interval/);

    await c.pollNow(); // the same bad answer again: not logged again at warn
    assert.equal(cap.records.filter((r) => r.msg === 'registry poll failed').length, 1);

    s.hosts['web-1']!.plugins = { 'demo.web': [{ builtin: 'tcp_probe', interval: 10 }] };
    s.bump();
    await c.pollNow();
    assert.equal(byName(c).plugins!.lastError, null);
    assert.deepEqual(c.current().plugins['demo.web'], [{ builtin: 'tcp_probe', interval: 10 }]);
    assert.equal(changes.length, before + 1);
    assert.equal(cap.count('registry poll succeeds again'), 1);
  });

  test('registry down at start: the cached answer is used, and its ETag after the registry is back', async () => {
    const s = await server();
    const first = client(s.url());
    await first.c.start();
    await first.c.stop();
    for (const kind of ['namespaces', 'checks', 'plugins']) assert.ok(existsSync(path.join(dir, 'registry', `${kind}.json`)));
    const port = s.port;
    await s.stop();

    const second = client(`http://127.0.0.1:${port}/registry`);
    await second.c.start();
    assert.deepEqual(second.c.current(), EXPECTED);
    assert.deepEqual(second.changes[0], EXPECTED, 'listeners hear of the cached answer');
    for (const st of second.c.status()) {
      assert.equal(st.source, 'cache');
      assert.match(st.lastError!, /ECONNREFUSED/);
    }

    const back = new RegistryServer();
    back.hosts['web-1'] = structuredClone(WEB1);
    await back.start(port);
    servers.push(back);
    await second.c.pollNow();
    assert.deepEqual(back.requests.map((r) => r.ifNoneMatch).sort(), ['"v1-checks"', '"v1-namespaces"', '"v1-plugins"']);
    for (const st of second.c.status()) {
      assert.equal(st.source, 'registry', '304 confirms the cached answer');
      assert.equal(st.lastError, null);
    }
  });

  test('a cache written for another host is not used', async () => {
    const s = await server();
    s.hosts['web-2'] = structuredClone(WEB1);
    const a = client(s.url(), { hostname: 'web-2' });
    await a.c.start();
    await a.c.stop();
    await s.stop();
    const cap = captureLogger();
    const b = client(s.url(), { hostname: 'web-1', logger: cap.logger });
    await b.c.start();
    assert.deepEqual(b.c.current(), { namespaces: [], checks: {}, plugins: {} });
    assert.equal(cap.count('registry cache not used'), 3);
  });

  test('an unknown host, a non-JSON answer, a huge answer and a silent registry are errors that say so', async () => {
    const s = await server();
    const unknown = client(s.url(), { hostname: 'nobody' });
    await unknown.c.start();
    assert.match(byName(unknown.c).namespaces!.lastError!, /404: the registry does not know host "nobody"/);

    s.behaviour = 'not-json';
    const bad = client(s.url());
    await bad.c.start();
    assert.match(byName(bad.c).namespaces!.lastError!, /the answer is not JSON/);

    s.behaviour = 'huge-declared';
    const big = client(s.url(), { extra: { maxAnswerBytes: 1024 * 1024 } });
    await big.c.start();
    assert.match(byName(big.c).checks!.lastError!, /answer of 10485760 bytes refused \(registry\.maxAnswerBytes = 1048576\)/);

    s.behaviour = 'huge-chunked';
    const chunked = client(s.url(), { extra: { maxAnswerBytes: 1024 * 1024 } });
    await chunked.c.start();
    assert.match(byName(chunked.c).plugins!.lastError!, /answer over 1048576 bytes refused/);

    s.behaviour = 'hang';
    const silent = client(s.url(), { extra: { timeoutMs: 300 } });
    await silent.c.start();
    assert.match(byName(silent.c).namespaces!.lastError!, /no complete answer within 300 ms \(registry\.timeoutMs\)/);
    assert.deepEqual(silent.c.current(), { namespaces: [], checks: {}, plugins: {} });
  });

  test('concurrent /update calls share one poll per endpoint', async () => {
    const s = await server();
    const { c } = client(s.url());
    await c.start();
    s.requests.length = 0;
    await Promise.all([c.pollNow(), c.pollNow(), c.pollNow()]);
    assert.equal(s.requests.length, 3);
  });

  test('polls again on its interval, at the host phase', async () => {
    const s = await server();
    const clock = new FakeClock(1_700_000_000_000);
    const { c } = client(s.url(), { clock, extra: { namespacesIntervalSec: 60, checksIntervalSec: 300, pluginsIntervalSec: 300 } });
    await c.start();
    const ns = byName(c).namespaces!;
    const expected = nextAlignedRun(clock.now(), 60_000, jobPhaseMs('web-1', 'registry:namespaces', 60_000));
    assert.equal(ns.nextPollAt, expected);
    assert.equal(s.requests.length, 3);
    await clock.advanceSettled(expected - clock.now());
    // The poll is a real HTTP request: no fake-clock event tells when it was answered.
    await waitUntil('the fourth request', () => s.requests.length >= 4);
    assert.equal(s.requests.length, 4);
    assert.equal(s.requests[3]!.path, '/registry/hosts/web-1/namespaces');
    const next = await waitUntil('the next poll planned', () => byName(c).namespaces!.nextPollAt !== expected && byName(c).namespaces!.nextPollAt);
    assert.equal(next, expected + 60_000, 'the next poll is one interval later');
  });
});
