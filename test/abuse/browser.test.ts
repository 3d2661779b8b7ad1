// What a web page can make the operator's browser send to the agent's loopback API: cross-site
// requests (Origin, Sec-Fetch-Site) and DNS-rebinding requests (a foreign Host). Against the real
// bin/agent on its default HTTP config (loopback, no token); each must be refused with 403 and a
// sentence, while curl-like requests (neither header) and same-origin pages keep working.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { agentConfig, freePort, startAgent, stopAgent, sumMetric, type RunningAgent } from '../faults/harness.ts';
import { startApi, type TestApi } from '../http/helpers.ts';
import { request } from './http-client.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'browser.ns';
let agent: RunningAgent;
let port: number;

before(async () => {
  const dir = tempDir('browser').dir;
  port = await freePort();
  agent = await startAgent(dir, agentConfig({ dir, httpPort: port, namespaces: [NS] }));
});

after(async () => {
  if (agent) await stopAgent(agent.run);
});

const EVIL = 'https://evil.example';
const point = JSON.stringify([{ name: 'browser', value: 1 }]);

test('a cross-site page cannot post points, disable or run plugins, or read the API', async () => {
  const attacks: Array<[string, Parameters<typeof request>[1]]> = [
    // What fetch(url, {method: 'POST', mode: 'no-cors', body}) sends: no preflight for text/plain.
    ['POST /post text/plain', { method: 'POST', path: `/post?ns=${NS}`, headers: { origin: EVIL, 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' }, body: point }],
    // <img src> or fetch GET: Sec-Fetch-Site, and no Origin on a no-cors GET.
    ['GET /plugins/disable', { path: `/plugins/disable?ns=${NS}&repo=x`, headers: { 'sec-fetch-site': 'cross-site' } }],
    ['GET /plugins/run', { path: `/plugins/run?ns=${NS}&repo=x`, headers: { 'sec-fetch-site': 'cross-site' } }],
    ['GET /me/status, Origin only', { path: '/me/status', headers: { origin: EVIL } }],
    ['POST /post, Origin null (sandboxed frame)', { method: 'POST', path: `/post?ns=${NS}`, headers: { origin: 'null' }, body: point }],
    ['GET /me/status, same-site page', { path: '/me/status', headers: { 'sec-fetch-site': 'same-site' } }],
    ['a loopback Origin on another scheme is still checked by host only, so a foreign one never passes', { path: '/me/ns', headers: { origin: 'http://127.0.0.1.evil.example:1988' } }],
  ];
  for (const [what, req] of attacks) {
    const r = await request(port, req);
    assert.equal(r.status, 403, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(r.json?.ok, false);
    assert.match(r.json?.error ?? '', /^refused: .*(another site|Sec-Fetch-Site)/, what);
  }
  const status = await agent.api.status();
  assert.ok(status.points.pointsIn === 0, 'no point from a refused request reached the pipeline');
});

test('a DNS-rebinding page (foreign Host) is refused on every route, /health included', async () => {
  for (const path of ['/me/status', '/log/offset?fpath=current.log', '/health', '/metrics', `/post?ns=${NS}`, '/no/such/route']) {
    const method = path.startsWith('/post') ? 'POST' : 'GET';
    const r = await request(port, { method, path, headers: { host: `rebind.evil.example:${port}` }, body: method === 'POST' ? point : undefined });
    assert.equal(r.status, 403, `${path}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.match(r.json?.error ?? '', /Host header "rebind\.evil\.example:\d+" is not a name of this agent.*http\.allowedHosts/);
  }
  for (const host of ['evil.example', '127.0.0.1.nip.io', 'localhost.evil.example', 'bad host', '[::1', '127.0.0.1:x']) {
    const r = await request(port, { path: '/me/status', headers: { host } });
    assert.equal(r.status, 403, host);
  }
});

test('curl, scripts and same-origin pages keep working with the old query strings', async () => {
  const ok: Array<[string, Record<string, string>]> = [
    ['curl (no Origin, no Sec-Fetch-Site)', {}],
    ['Host localhost', { host: `localhost:${port}` }],
    ['Host LOCALHOST. (case, trailing dot)', { host: `LOCALHOST.:${port}` }],
    ['Host [::1]', { host: `[::1]:${port}` }],
    ['Host 127.1.2.3', { host: `127.1.2.3:${port}` }],
    ['Host the OS name', { host: `${os.hostname()}:${port}` }],
    ['Host the config hostname', { host: 'fault-host' }],
    ['a page the agent served itself', { origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' }],
    ['a typed URL', { 'sec-fetch-site': 'none' }],
  ];
  for (const [what, headers] of ok) {
    const r = await request(port, { path: '/me/status', headers });
    assert.equal(r.status, 200, `${what}: ${r.text.slice(0, 200)}`);
  }
  const addr = Object.values(os.networkInterfaces()).flat().find((a) => a && !a.internal);
  if (addr) {
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    assert.equal((await request(port, { path: '/me/status', headers: { host } })).status, 200, `an interface address: ${host}`);
  }
  const post = await request(port, { method: 'POST', path: `/post?ns=${NS}`, body: point });
  assert.equal(post.status, 200, post.text);
  const plugins = await request(port, { path: `/plugins/disable?ns=${NS}&repo=x` });
  assert.equal(plugins.status, 404, 'a script reaches the plugin routes (no such plugin here)');
});

test('refusals are counted by reason in /metrics and /me/status', async () => {
  const text = await (await fetch(`${agent.api.base}/metrics`)).text();
  assert.ok(sumMetric(text, 'nsagent_http_refused_total', { reason: 'foreign_host' }) >= 12);
  assert.ok(sumMetric(text, 'nsagent_http_refused_total', { reason: 'foreign_origin' }) >= 3);
  assert.ok(sumMetric(text, 'nsagent_http_refused_total', { reason: 'cross_site' }) >= 3);
  const refused = (await agent.api.status()).http?.refused;
  assert.ok(refused?.foreign_host >= 12 && refused?.foreign_origin >= 3 && refused?.cross_site >= 3, JSON.stringify(refused));
  // The /ui page's history reads the same status: refusals by the browser guard are drop series there.
  const history = (await (await fetch(`${agent.api.base}/me/history`)).json()) as { data: { series: Record<string, { v: Array<number | null> }> } };
  const crossSite = history.data.series['drop:http.refused.cross_site']?.v.at(-1);
  assert.ok(typeof crossSite === 'number' && crossSite >= 3, `drop:http.refused.cross_site in /me/history: ${JSON.stringify(Object.keys(history.data.series))}`);
});

test('http.allowedHosts adds names, exact or "*.domain", for Host and Origin alike', async () => {
  let api: TestApi | undefined;
  try {
    api = await startApi({ http: { allowedHosts: ['agent.example.com', '*.dc1.example'] } });
    const p = Number(new URL(api.url).port);
    const answer = async (headers: Record<string, string>) => (await request(p, { path: '/me/status', headers })).status;
    assert.equal(await answer({ host: 'agent.example.com:1988' }), 200);
    assert.equal(await answer({ host: 'web-3.dc1.example' }), 200);
    assert.equal(await answer({ host: 'dc1.example' }), 403, '"*.dc1.example" covers subdomains only');
    assert.equal(await answer({ host: 'other.example.com' }), 403);
    assert.equal(await answer({ origin: 'https://agent.example.com' }), 200);
    assert.equal(await answer({ origin: 'https://agent.example.com.evil.example' }), 403);
  } finally {
    await api?.close();
  }
});
