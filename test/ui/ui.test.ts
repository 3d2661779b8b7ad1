// The /ui page in real headless Chromium against the real agent (bin/agent on a file registry,
// with a git plugin that writes to stderr): it loads with no console error and no request
// leaving the host, drives the plugin routes by clicking, draws the counters /me/status reports,
// asks for the token when one is set, and cannot be read or driven from another origin.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { minimalAgentConfig, runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { TestRepo } from '../plugins/helpers.ts';
import { launchChromium } from './browser.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';

const NS = 'ui.web';
const PLUGIN = 'ui-plugin';
const TOKEN = 'ui-s3cret';

interface TestAgent {
  run: AgentRun;
  dir: string;
  origin: string;
  repoUrl: string;
  /** JSON `data` of a route, with the token when `auth`. */
  get(route: string, auth?: boolean): Promise<any>;
  stop(): Promise<void>;
}

async function startAgent(opts: { token?: string } = {}): Promise<TestAgent> {
  const { dir } = tempDir('ui');
  const repo = new TestRepo(dir, PLUGIN);
  repo.commit({ 'plugin.sh': '#!/bin/bash\necho "warming up the probe" >&2\necho "probe ready: 3 targets" >&2\necho \'[{"name": "up", "value": 1}]\'\n' });
  const registry = { hosts: { '*': { namespaces: [NS], plugins: { [NS]: [{ repo: repo.url, interval: 3600 }] } } } };
  const { port, config: agentConfig } = await minimalAgentConfig(dir, {
    hostname: 'ui-host',
    collect: { systemIntervalSec: 3600, checksIntervalSec: 3600 },
    plugins: { cacheDir: 'cache', allowLocalRepos: true },
    http: { ...(opts.token ? { token: opts.token } : {}), ui: { historyIntervalSec: 1 } },
  }, registry);
  const config = writeConfig(dir, agentConfig);
  const run = runAgent(['start', '-f', config]);
  await run.waitFor(/agent started/);
  const origin = `http://127.0.0.1:${port}`;
  const get = async (route: string, auth = false) => {
    const r = await fetch(`${origin}${route}`, { headers: auth && opts.token ? { Authorization: `Bearer ${opts.token}` } : {} });
    const body = (await r.json()) as { ok: boolean; data: any; error?: string };
    assert.ok(body.ok, `${route}: ${r.status} ${body.error}`);
    return body.data;
  };
  // The plugin is cloned in the background: the page's buttons are for a plugin that is ready.
  await waitUntil('the plugin is cloned', async () => {
    const list = await get('/plugins/list');
    return list.some((p: any) => p.name === PLUGIN && p.commit);
  });
  return {
    run,
    dir,
    origin,
    repoUrl: repo.url,
    get,
    async stop() {
      run.child.kill('SIGTERM');
      await run.exited;
    },
  };
}

interface Watched {
  page: Page;
  consoleErrors: string[];
  requests: string[];
}

async function openPage(browser: Browser, url: string): Promise<Watched> {
  const page = await browser.newPage();
  const w: Watched = { page, consoleErrors: [], requests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') w.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => w.consoleErrors.push(`uncaught: ${e.message}`));
  page.on('request', (r) => w.requests.push(r.url()));
  await page.goto(url);
  await page.waitForSelector('body[data-loaded]', { timeout: 20_000 });
  return w;
}

const row = (name: string) => `#plugin-table tr[data-plugin="${name}"]`;

async function pluginEnabled(agent: TestAgent, name = PLUGIN): Promise<boolean> {
  const list = await agent.get('/plugins/list');
  return list.find((p: any) => p.name === name).enabled;
}

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

describe('the /ui page, no token configured', () => {
  let agent: TestAgent;
  before(async () => {
    agent = await startAgent();
  });
  after(() => agent?.stop());

  test('/ redirects to /ui; the page loads with a strict CSP, no console error and no request leaving the host', async () => {
    const res = await fetch(`${agent.origin}/ui`);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const redirect = await fetch(`${agent.origin}/`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/ui');

    const w = await openPage(browser, `${agent.origin}/`);
    assert.equal(w.page.url(), `${agent.origin}/ui`);
    assert.equal(await w.page.textContent('#host'), 'ui-host');
    await w.page.waitForSelector(row(PLUGIN));
    await w.page.waitForSelector('#registry tbody tr td.ok');
    // The log read and a second poll round, before judging what was sent.
    await w.page.waitForSelector('#log-table tbody tr');
    await w.page.waitForResponse((r) => r.url().endsWith('/me/history'));
    assert.deepEqual(w.consoleErrors, []);
    const foreign = w.requests.filter((u) => !u.startsWith(`${agent.origin}/`) && !u.startsWith('data:'));
    assert.deepEqual(foreign, [], 'every request goes to the agent itself');
    assert.ok(w.requests.some((u) => u.endsWith('/me/history')), w.requests.join('\n'));
    await w.page.close();
  });

  test('a plugin is disabled and enabled again by clicking, and the row shows it', async () => {
    const w = await openPage(browser, `${agent.origin}/ui`);
    await w.page.click(`${row(PLUGIN)} button.op-disable`);
    await w.page.waitForSelector(`${row(PLUGIN)}[data-enabled="false"]`);
    assert.equal(await pluginEnabled(agent), false);
    assert.match((await w.page.textContent(`${row(PLUGIN)} td.enabled`)) ?? '', /^no\b/);

    await w.page.click(`${row(PLUGIN)} button.op-enable`);
    await w.page.waitForSelector(`${row(PLUGIN)}[data-enabled="true"]`);
    assert.equal(await pluginEnabled(agent), true);
    assert.deepEqual(w.consoleErrors, []);
    await w.page.close();
  });

  test("run, then the plugin's stderr tail is one click away", async () => {
    const w = await openPage(browser, `${agent.origin}/ui`);
    await w.page.click(`${row(PLUGIN)} button.op-run`);
    await w.page.waitForSelector(`${row(PLUGIN)} button.stderr:not([disabled])`);
    await w.page.click(`${row(PLUGIN)} button.stderr`);
    const tail = await w.page.textContent('#plugin-table tr.stderr-row pre', { timeout: 10_000 });
    assert.match(tail ?? '', /warming up the probe\nprobe ready: 3 targets/);
    assert.match((await w.page.textContent(`${row(PLUGIN)}`)) ?? '', /ok · exit 0/);
    assert.deepEqual(w.consoleErrors, []);
    await w.page.close();
  });

  test('a sparkline moves while points are posted, and its total is the one /me/status reports', async () => {
    const w = await openPage(browser, `${agent.origin}/ui`);
    const card = `#ns-sparks [data-series="ns:${NS}:accepted"]`;
    const shape = () => w.page.getAttribute(`${card} polyline`, 'points').catch(() => null);
    const before = await shape();
    let posted = 0;
    const post = async (n: number) => {
      const body = Array.from({ length: n }, (_, i) => ({ name: 'ui.test', tags: { i: String(i) }, value: i }));
      const r = await fetch(`${agent.origin}/post?ns=${NS}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 200);
      posted += n;
    };
    await post(50);
    await waitUntil('the sparkline changes shape', async () => {
      const now = await shape();
      if (now !== null && now !== before && now.includes(' ')) return true;
      await post(50);
      return false;
    });
    // Quiet now: the total on the page converges on the accepted count /me/status reports.
    const status = await agent.get('/me/status');
    const accepted = status.namespaces[NS].accepted;
    assert.ok(accepted >= posted, `${accepted} ≥ ${posted}`);
    await w.page.waitForSelector(`${card} .value[data-total="${accepted}"]`, { timeout: 10_000 });
    const metrics = await (await fetch(`${agent.origin}/metrics`)).text();
    assert.match(metrics, new RegExp(`nsagent_points_namespace_total\\{namespace="${NS.replace('.', '\\.')}",outcome="accepted"\\} ${accepted}\\b`));
    assert.deepEqual(w.consoleErrors, []);
    await w.page.close();
  });

  test('the log is shown newest first and filters by level and component', async () => {
    const w = await openPage(browser, `${agent.origin}/ui`);
    await w.page.selectOption('#log-level', '0');
    await w.page.waitForSelector('#log-component option[value="registry"]', { state: 'attached' });
    await w.page.selectOption('#log-component', 'registry');
    const components = await w.page.$$eval('#log-table tbody tr td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
    assert.ok(components.length > 0);
    assert.deepEqual([...new Set(components)], ['registry']);
    await w.page.selectOption('#log-component', '');
    const times = await w.page.$$eval('#log-table tbody tr td:first-child', (tds) => tds.map((td) => td.getAttribute('title') ?? ''));
    assert.ok(times.length > 1);
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    assert.deepEqual(w.consoleErrors, []);
    await w.page.close();
  });

  test('a page of another origin can neither read the agent nor drive it', async () => {
    // The attacker's page: served from another port (another origin) and under "localhost"
    // (another site), it tries to read /me/status, to frame /ui and to disable the plugin with
    // a form post, which a browser sends without asking.
    const evilHtml = `<!doctype html><body>
      <iframe id="frame" src="${agent.origin}/ui"></iframe>
      <iframe name="sink"></iframe>
      <form id="f" method="POST" target="sink" enctype="text/plain"
        action="${agent.origin}/plugins/disable?ns=${encodeURIComponent(NS)}&amp;repo=${encodeURIComponent(agent.repoUrl)}"></form>
      <script>
        window.readResult = fetch('${agent.origin}/me/status').then((r) => r.text()).then((t) => 'read: ' + t, (e) => 'refused: ' + e.message);
        document.getElementById('f').submit();
      </script></body>`;
    const evil = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(evilHtml);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    const evilPort = (evil.address() as AddressInfo).port;
    try {
      for (const host of ['127.0.0.1', 'localhost']) {
        const page = await browser.newPage();
        const submitted = page.waitForResponse((r) => r.url().includes('/plugins/disable'));
        await page.goto(`http://${host}:${evilPort}/`);
        const read = await page.evaluate('window.readResult');
        assert.match(String(read), /^refused: /, `${host}: the status must not be readable: ${String(read).slice(0, 200)}`);
        await submitted;
        // page.goto waited for the load event, which waits for the frames too.
        for (const f of page.frames()) assert.equal(await f.$('#host'), null, `${host}: /ui must not render in a frame (${f.url()})`);
        assert.equal(await pluginEnabled(agent), true, `${host}: a cross-origin form post must not disable the plugin`);
        await page.close();
      }
      // The operator's own page tells of the refused requests (a drop series and a warning).
      const w = await openPage(browser, `${agent.origin}/ui`);
      await w.page.waitForSelector('#problems li:has-text("http › refused › ")');
      assert.equal(await w.page.textContent('#health'), 'degraded');
      await w.page.close();
    } finally {
      evil.close();
    }
  });
  test('a broken registry turns the badge to failing and says why', async () => {
    const w = await openPage(browser, `${agent.origin}/ui`);
    // Healthy or degraded by what the cases before did (refused requests), never failing yet.
    assert.notEqual(await w.page.textContent('#health'), 'failing');
    writeFileSync(path.join(agent.dir, 'registry.json'), '{"hosts": ');
    await fetch(`${agent.origin}/update`);
    await w.page.waitForSelector('#health.bad');
    assert.equal(await w.page.textContent('#health'), 'failing');
    assert.match((await w.page.textContent('#problems')) ?? '', /registry poller "namespaces" is failing: .+/);
    assert.match((await w.page.textContent('#registry')) ?? '', /namespaces.*registry\.json/s);
    assert.deepEqual(w.consoleErrors, []);
    await w.page.close();
  });
});

describe('the /ui page with http.token set', () => {
  let agent: TestAgent;
  before(async () => {
    agent = await startAgent({ token: TOKEN });
  });
  after(() => agent?.stop());

  test('a click without the token is refused and says so; with the token it succeeds', async () => {
    const w = await openPage(browser, `${agent.origin}/ui`);
    await w.page.click(`${row(PLUGIN)} button.op-disable`);
    await w.page.waitForSelector('#notice.error:not([hidden])');
    assert.match((await w.page.textContent('#notice')) ?? '', /needs the agent's http\.token/);
    assert.equal(await pluginEnabled(agent), true);
    assert.match((await w.page.textContent('#log-table')) ?? '', /needs the agent's http\.token/);

    await w.page.fill('#token', TOKEN);
    await w.page.click(`${row(PLUGIN)} button.op-disable`);
    await w.page.waitForSelector(`${row(PLUGIN)}[data-enabled="false"]`);
    assert.equal(await pluginEnabled(agent), false);
    // The token lives in the page's memory only: nothing in storage or cookies.
    const stored = await w.page.evaluate<string>('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie');
    assert.ok(!stored.includes(TOKEN));
    // The log is readable with the token too.
    await w.page.click('#log-refresh');
    await w.page.selectOption('#log-level', '0');
    await w.page.waitForSelector('#log-table tbody tr.lvl-30');
    // The refusals were 401 answers the browser reports as failed loads, and nothing else.
    assert.ok(w.consoleErrors.every((e) => /401/.test(e)), w.consoleErrors.join('\n'));
    await w.page.close();
  });
});
