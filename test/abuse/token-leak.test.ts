// Secrets stay secret: a real agent runs with an HTTP token, a registry token and backend tokens,
// is driven through its API (good and bad credentials, writes a backend refuses, a reload), and
// then every output an operator or a caller can see is searched for the secrets: the log files,
// stdout and stderr, /me/status, /metrics, 401 answers, `agent check` and `agent status`.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/servers.ts';
import { agentCommand, runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { RegistryServer } from '../registry/registry-server.ts';
import { FakeInflux } from '../sender/fake-influx.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const HOST = 'token-host';
const NS = 'tok.ns';
const HTTP_TOKEN = 'http-tok-5d1f0b9e72c4';
const REGISTRY_TOKEN = 'registry-tok-a83c1e6f40b2';
const V2_TOKEN = 'backend-tok-c02b7d95e1a8';
const V1_USER = 'writer';
const V1_PASSWORD = 'backend-pw-71e9a4c3d05f';
const SECRETS = [
  HTTP_TOKEN,
  REGISTRY_TOKEN,
  V2_TOKEN,
  V1_PASSWORD,
  Buffer.from(`${V1_USER}:${V1_PASSWORD}`).toString('base64'),
];

let dir: string;
let file: string;
let agent: AgentRun;
let url: string;
const registry = new RegistryServer();
const v2 = new FakeInflux();
const v1 = new FakeInflux();
const seen: Array<{ where: string; text: string }> = [];

before(async () => {
  await registry.start();
  registry.hosts[HOST] = { namespaces: [NS] };
  await Promise.all([v2.start(), v1.start()]);
  // The v2 backend refuses the credentials once, the v1 one fails twice, then both accept: the
  // failure paths write their log lines and the write is still acknowledged.
  v2.handler = (r) =>
    r.path === '/api/v2/write' && v2.writes().length <= 1 ? { status: 401, body: { code: 'unauthorized', message: 'unauthorized access' } } : undefined;
  v1.handler = (r) => (r.path === '/write' && v1.writes().length <= 2 ? { status: 500, body: { error: 'engine: cannot write' } } : undefined);
  dir = tempDir('ns-agent-tokens-').dir;
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  file = writeConfig(dir, {
    hostname: HOST,
    dataDir: 'data',
    log: { level: 'trace', dir: 'log', pretty: 'always' },
    registry: { source: 'http', url: registry.url(), token: REGISTRY_TOKEN, namespacesIntervalSec: 1 },
    http: { listen: `127.0.0.1:${port}`, token: HTTP_TOKEN },
    sender: {
      mode: 'replicate',
      flushIntervalMs: 50,
      retryMinMs: 50,
      retryMaxMs: 200,
      backends: [
        { name: 'v2', url: v2.url, api: 'v2', token: V2_TOKEN, org: 'o' },
        { name: 'v1', url: v1.url, api: 'v1', token: `${V1_USER}:${V1_PASSWORD}` },
      ],
    },
  });
  agent = runAgent(['start', '-f', file]);
  await agent.waitFor(/agent started/);
});

after(async () => {
  if (agent.child.exitCode === null) {
    agent.child.kill('SIGTERM');
    await agent.exited;
  }
  await Promise.all([registry.stop(), v2.stop(), v1.stop()]);
});

async function call(where: string, pathAndQuery: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(`${url}${pathAndQuery}`, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  seen.push({ where: `${where} (${res.status})`, text: `${JSON.stringify([...res.headers])}\n${text}` });
  return new Response(text, { status: res.status });
}

test('the tokens are used: the registry and both backends received them', async () => {
  const bearer = { authorization: `Bearer ${HTTP_TOKEN}` };
  const posted = await call('POST /post', `/post?ns=${encodeURIComponent(NS)}`, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json' },
    body: JSON.stringify([{ name: 'm', value: 1 }]),
  });
  assert.ok(posted.status < 300, `POST /post answered ${posted.status}`);
  await Promise.all([v2.waitFor((r) => r.some((q) => q.path === '/api/v2/write')), v1.waitFor((r) => r.some((q) => q.path === '/write'))]);
  assert.ok(registry.requests.some((r) => r.authorization === `Bearer ${REGISTRY_TOKEN}`));
  assert.equal(v2.writes()[0]?.headers.authorization, `Token ${V2_TOKEN}`);
  assert.match(v1.writes()[0]?.headers.authorization ?? '', /^Basic /);
});

test('no output holds a secret: logs, stdout, /me/status, /metrics, 401 answers, agent check and status', async () => {
  const bearer = { authorization: `Bearer ${HTTP_TOKEN}` };
  await call('/me/status', '/me/status', { headers: bearer });
  await call('/metrics', '/metrics');
  await call('401 without a token', '/update');
  await call('401 with a wrong token', '/update', { headers: { authorization: `Bearer not-${HTTP_TOKEN.split('').reverse().join('')}` } });
  await call('401 malformed', '/log/offset?fpath=current.log', { headers: { authorization: `Token ${HTTP_TOKEN}x` } });
  await call('/update', '/update', { headers: bearer });
  await call('/log/offset', '/log/offset?fpath=current.log&num=100000', { headers: bearer });
  await call('404', `/nope?token=x`, { headers: bearer });
  const check = await agentCommand(['check', '-f', file]);
  assert.equal(check.code, 0, check.output);
  seen.push({ where: 'agent check', text: check.output });
  const status = await agentCommand(['status', '-f', file]);
  assert.equal(status.code, 0, status.output);
  seen.push({ where: 'agent status', text: status.output });

  agent.child.kill('SIGHUP');
  await agent.waitFor(/config reloaded/);
  agent.child.kill('SIGTERM');
  await agent.exited;
  seen.push({ where: 'agent stdout/stderr', text: agent.output() });
  const logDir = path.join(dir, 'log');
  for (const f of readdirSync(logDir)) seen.push({ where: `log file ${f}`, text: readFileSync(path.join(logDir, f), 'utf8') });
  assert.ok(seen.some((s) => s.where.startsWith('log file') && /backend|write/i.test(s.text)), 'the log holds the backend failures');

  const leaks = seen.flatMap((s) => SECRETS.filter((secret) => s.text.includes(secret)).map((secret) => `${s.where}: ${secret}`));
  assert.deepEqual(leaks, []);
});
