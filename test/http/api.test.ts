// The HTTP API over real HTTP on loopback, with fakes above the seam: info routes, plugin
// routes with the replaced agent's query strings on GET and POST, auth on and off, the
// envelope for unknown routes and methods, and the self-metrics.
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, PLUGIN_REPO, runResult, startApi, type TestApi } from './helpers.ts';
import { waitUntil } from '../helpers/wait.ts';

const TOKEN = 's3cret-token';
const enc = encodeURIComponent;

describe('HTTP API without a token', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi();
  });
  after(() => api.close());

  test('GET /health answers ok as text', async () => {
    const r = await call(`${api.url}/health`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
  });

  test('/me/ns lists the namespaces and pollers, on GET and POST', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await call(`${api.url}/me/ns`, { method });
      assert.equal(r.status, 200, method);
      assert.deepEqual(r.json?.data.namespaces, ['web', 'db']);
      assert.deepEqual(
        r.json?.data.pollers.map((p: { name: string }) => p.name),
        ['namespaces', 'checks', 'plugins'],
      );
    }
  });

  test('/me/status is the status() dependency in the envelope, plus the API\'s own refusals and parse budget', async () => {
    const r = await call(`${api.url}/me/status`);
    assert.deepEqual(r.json, {
      ok: true,
      data: {
        version: '0.0.0-test',
        hostname: 'test-host',
        uptimeSec: 1,
        http: { refused: {}, parsing: { maxBytes: 64 * 1024 * 1024, inUseBytes: 0, refused: 0 } },
      },
    });
  });

  test('/update polls the registry; concurrent calls share one poll', async () => {
    let release!: () => void;
    api.registry.gate = new Promise<void>((resolve) => (release = resolve));
    const before = api.registry.polls;
    const pending = [call(`${api.url}/update`), call(`${api.url}/update`, { method: 'POST' }), call(`${api.url}/update`)];
    // No event says "all three arrived": poll the in-flight gauge (3 + the /metrics call itself).
    await waitUntil('the three /update requests in flight together', async () => /nsagent_http_requests_in_flight 4\b/.test((await call(`${api.url}/metrics`)).text), { everyMs: 5 });
    release();
    const answers = await Promise.all(pending);
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.equal(a.json?.data.pollers.length, 3);
    }
    assert.equal(api.registry.polls - before, 1);
    api.registry.gate = Promise.resolve();
    await call(`${api.url}/update`);
    assert.equal(api.registry.polls - before, 2, 'a later /update polls again');
  });

  test('/plugins/list answers every plugin, or those of one namespace', async () => {
    const all = await call(`${api.url}/plugins/list`);
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.json?.data.map((p: { name: string }) => p.name),
      ['nginx_status', 'tcp_probe'],
    );
    const web = await call(`${api.url}/plugins/list?ns=web`, { method: 'POST' });
    assert.deepEqual(
      web.json?.data.map((p: { name: string }) => p.name),
      ['nginx_status'],
    );
  });

  test('plugin update/enable/disable take ns and the full git URL, on GET and POST', async () => {
    for (const op of ['update', 'disable', 'enable'] as const) {
      for (const method of ['GET', 'POST']) {
        api.plugins.calls.length = 0;
        const r = await call(`${api.url}/plugins/${op}?ns=web&repo=${enc(PLUGIN_REPO)}`, { method });
        assert.equal(r.status, 200, `${method} ${op}: ${r.text}`);
        assert.equal(r.json?.ok, true);
        assert.equal(r.json?.data.repo, PLUGIN_REPO);
        assert.deepEqual(api.plugins.calls, [{ op, namespace: 'web', repo: PLUGIN_REPO }]);
      }
    }
    assert.equal(api.plugins.enabled, true);
  });

  test('a POST may carry the parameters in a form body', async () => {
    api.plugins.calls.length = 0;
    const r = await call(`${api.url}/plugins/disable`, {
      method: 'POST',
      body: new URLSearchParams({ ns: 'web', repo: PLUGIN_REPO }),
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(api.plugins.calls, [{ op: 'disable', namespace: 'web', repo: PLUGIN_REPO }]);
    await call(`${api.url}/plugins/enable?ns=web&repo=${enc(PLUGIN_REPO)}`);
  });

  test('plugin routes refuse a missing ns or repo and pass on unknown plugins as 404', async () => {
    const noNs = await call(`${api.url}/plugins/update?repo=${enc(PLUGIN_REPO)}`);
    assert.equal(noNs.status, 400);
    assert.match(noNs.json?.error ?? '', /"ns" is required/);
    const noRepo = await call(`${api.url}/plugins/run?ns=web`);
    assert.equal(noRepo.status, 400);
    assert.match(noRepo.json?.error ?? '', /"repo" is required/);
    const twice = await call(`${api.url}/plugins/enable?ns=web&ns=db&repo=x`);
    assert.equal(twice.status, 400);
    assert.match(twice.json?.error ?? '', /given 2 times/);
    const unknown = await call(`${api.url}/plugins/enable?ns=web&repo=${enc('git@x:y/z.git')}`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.json, { ok: false, error: 'no plugin git@x:y/z.git in namespace web' });
  });

  test('/plugins/run: timeout in seconds, param split like the replaced agent, repeated param verbatim', async () => {
    api.plugins.calls.length = 0;
    const r = await call(`${api.url}/plugins/run?ns=web&repo=${enc(PLUGIN_REPO)}&timeout=20&param=${enc('-v  --port 80')}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json?.data, runResult('web', 'nginx_status'));
    await call(`${api.url}/plugins/run?ns=web&repo=${enc(PLUGIN_REPO)}&param=${enc('a b')}&param=c`, { method: 'POST' });
    await call(`${api.url}/plugins/run?ns=web&repo=${enc(PLUGIN_REPO)}&param=`);
    assert.deepEqual(
      api.plugins.calls.map((c) => c.opts),
      [
        { timeoutSec: 20, params: ['-v', '--port', '80'] },
        { timeoutSec: undefined, params: ['a b', 'c'] },
        { timeoutSec: undefined, params: undefined },
      ],
    );
  });

  test('/plugins/run refuses a bad timeout and says when the plugin is already running', async () => {
    for (const t of ['abc', '0', '-1', '1.5', '3601']) {
      const r = await call(`${api.url}/plugins/run?ns=web&repo=${enc(PLUGIN_REPO)}&timeout=${enc(t)}`);
      assert.equal(r.status, 400, t);
      assert.match(r.json?.error ?? '', /"timeout" must be a whole number of seconds from 1 to 3600/);
    }
    api.plugins.running = true;
    try {
      const busy = await call(`${api.url}/plugins/run?ns=web&repo=${enc(PLUGIN_REPO)}`);
      assert.equal(busy.status, 409);
      assert.match(busy.json?.error ?? '', /already running/);
    } finally {
      api.plugins.running = false;
    }
  });

  test('unknown routes and methods get the envelope', async () => {
    const missing = await call(`${api.url}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json?.ok, false);
    assert.match(missing.json?.error ?? '', /no route GET "\/nope"/);
    const wrong = await call(`${api.url}/post`, { method: 'GET' });
    assert.equal(wrong.status, 405);
    assert.match(wrong.headers.get('allow') ?? '', /POST/);
    assert.match(wrong.json?.error ?? '', /GET is not allowed on \/post; use POST/);
  });

  test('/metrics serves Prometheus text with request counters by route pattern and status', async () => {
    await call(`${api.url}/health`);
    await call(`${api.url}/no/such/route`);
    const r = await call(`${api.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(r.text, /nsagent_http_requests_total\{route="\/health",method="GET",status="200"\} \d+/);
    assert.match(r.text, /nsagent_http_requests_total\{route="unmatched",method="GET",status="404"\} \d+/);
    assert.match(r.text, /nsagent_http_request_duration_seconds_bucket\{le="0.001",route="\/health"\}/);
    assert.doesNotMatch(r.text, /no\/such\/route/);
  });
});

describe('HTTP API with a token', () => {
  // A fresh API for each case: what one case sent is not counted in another's assertions.
  let api: TestApi;
  beforeEach(async () => {
    api = await startApi({ http: { token: TOKEN, allowAnyNamespace: true } });
  });
  afterEach(() => api.close());

  const guarded: Array<[string, string, RequestInit?]> = [
    ['GET', `/plugins/update?ns=web&repo=${enc(PLUGIN_REPO)}`],
    ['POST', `/plugins/run?ns=web&repo=${enc(PLUGIN_REPO)}`],
    ['GET', `/plugins/enable?ns=web&repo=${enc(PLUGIN_REPO)}`],
    ['POST', `/plugins/disable?ns=web&repo=${enc(PLUGIN_REPO)}`],
    ['GET', '/update'],
    ['POST', '/post?ns=web', { body: '[{"name":"m","value":1}]' }],
    ['POST', '/api/push?ns=web', { body: '[{"metric":"m","value":1}]' }],
    ['POST', '/v1/push?ns=web', { body: '[{"metric":"m","value":1}]' }],
    ['GET', '/log/offset?fpath=x.log'],
  ];

  test('mutating routes and /log/offset answer 401 without, or with a wrong, bearer token', async () => {
    for (const [method, path, init] of guarded) {
      for (const auth of [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, `Basic ${TOKEN}`, 'Bearer']) {
        const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
        const r = await call(`${api.url}${path}`, { method, headers, ...init });
        assert.equal(r.status, 401, `${method} ${path} with ${auth}`);
        assert.equal(r.json?.ok, false);
        assert.match(r.json?.error ?? '', /Bearer|token/);
        assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="ns-agent"');
      }
    }
    assert.equal(api.plugins.calls.length, 0, 'no refused request reached the plugins');
    assert.equal(api.sink.pushes.length, 0, 'no refused request reached the sink');
    assert.equal(api.registry.polls, 0);
  });

  test('the right token passes (any case of "bearer")', async () => {
    for (const [method, path, init] of guarded) {
      const r = await call(`${api.url}${path}`, { method, headers: { authorization: `bearer ${TOKEN}` }, ...init });
      assert.notEqual(r.status, 401, `${method} ${path}: ${r.text}`);
    }
    assert.equal(api.sink.pushes.length, 3);
    assert.equal(api.registry.polls, 1);
  });

  test('read-only routes need no token', async () => {
    for (const path of ['/health', '/metrics', '/me/ns', '/me/status', '/plugins/list']) {
      const r = await call(`${api.url}${path}`);
      assert.equal(r.status, 200, path);
    }
  });

  test('refusals are counted by reason', async () => {
    for (const auth of [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN}y`, `Basic ${TOKEN}`]) {
      const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
      assert.equal((await call(`${api.url}/update`, { headers })).status, 401);
    }
    const r = await call(`${api.url}/metrics`);
    assert.match(r.text, /nsagent_http_refused_total\{reason="auth_missing"\} 1\n/);
    assert.match(r.text, /nsagent_http_refused_total\{reason="auth_wrong"\} 2\n/);
    assert.match(r.text, /nsagent_http_refused_total\{reason="auth_malformed"\} 1\n/);
  });
});
