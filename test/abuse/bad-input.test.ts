// Every route of the real bin/agent, walked with hostile parameters: repeated (arrays), with NUL
// and other control bytes, huge, of the wrong type, as query strings and as form/JSON bodies.
// No answer may be a 5xx or hang; a route that reads the parameter answers 4xx with a sentence.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { agentConfig, freePort, startAgent, stopAgent, type RunningAgent } from '../faults/harness.ts';
import { request, type RawAnswer } from './http-client.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'walk.ns';
let agent: RunningAgent;
let port: number;

before(async () => {
  const dir = tempDir('walk').dir;
  port = await freePort();
  agent = await startAgent(dir, agentConfig({ dir, httpPort: port, namespaces: [NS] }));
});

after(async () => {
  if (agent) await stopAgent(agent.run);
});

/** Routes and the parameters each reads, with a good value for each. */
const ROUTES: Array<{ path: string; methods: string[]; params: Record<string, string> }> = [
  { path: '/plugins/list', methods: ['GET', 'POST'], params: { ns: NS } },
  { path: '/plugins/update', methods: ['GET', 'POST'], params: { ns: NS, repo: 'r' } },
  { path: '/plugins/enable', methods: ['GET', 'POST'], params: { ns: NS, repo: 'r' } },
  { path: '/plugins/disable', methods: ['GET', 'POST'], params: { ns: NS, repo: 'r' } },
  { path: '/plugins/run', methods: ['GET', 'POST'], params: { ns: NS, repo: 'r', timeout: '5', param: '-v' } },
  { path: '/post', methods: ['POST'], params: { ns: NS, precision: 's' } },
  { path: '/api/push', methods: ['POST'], params: { ns: NS } },
  { path: '/v1/push', methods: ['POST'], params: { ns: NS } },
  { path: '/log/offset', methods: ['GET'], params: { fpath: 'current.log', offset: '0', num: '10' } },
];
/** Routes that read no parameter: anything but a 5xx or a hang is fine. */
const PLAIN = ['/health', '/metrics', '/me/ns', '/me/status', '/update'];

const HUGE = 'a'.repeat(5000);
const LONG_PATH = `${'d'.repeat(300)}/${'f'.repeat(300)}`;
/** Bad values for one parameter: each as a query string (already encoded). */
const BAD_VALUES: Array<[string, (name: string, good: string) => string]> = [
  ['given twice', (n, g) => `${n}=${encodeURIComponent(g)}&${n}=${encodeURIComponent(g)}x`],
  ['NUL byte', (n, g) => `${n}=${encodeURIComponent(g)}%00`],
  ['other control bytes', (n, g) => `${n}=${encodeURIComponent(g)}%01%1b%7f`],
  ['5,000 characters', (n) => `${n}=${HUGE}`],
  ['bracket array syntax', (n, g) => `${n}[]=${encodeURIComponent(g)}&${n}[]=x`],
  ['bad percent-encoding', (n) => `${n}=%zz%`],
  ['a 601-character path segment', (n) => `${n}=${LONG_PATH}`],
];
/** Bad values as JSON body fields (POST routes that take their parameters from a body). */
const BAD_FIELDS: Array<[string, unknown]> = [
  ['an array', ['a', 'b']],
  ['an object', { $gt: '' }],
  ['a nested array', [['a']]],
  ['NUL', `a\u0000b`],
];

/** What went wrong, all of it: one run shows every route that misbehaves. */
const problems: string[] = [];

function check(what: string, r: RawAnswer, mustRefuse: boolean): void {
  const bad = r.status >= 500 || (mustRefuse && (r.status < 400 || r.json?.ok !== false || (r.json?.error ?? '').length < 10));
  if (bad) problems.push(`${what}: ${r.status} ${r.text.slice(0, 200)}`);
}

test('every parameter of every route, given hostile values in the query string: 4xx with a sentence, never 5xx or a hang', { timeout: 240_000 }, async () => {
  let sent = 0;
  for (const route of ROUTES) {
    for (const method of route.methods) {
      for (const name of Object.keys(route.params)) {
        for (const [what, bad] of BAD_VALUES) {
          const others = Object.entries(route.params).filter(([k]) => k !== name).map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
          const qs = [...others, bad(name, route.params[name] as string)].join('&');
          const body = method === 'POST' ? '[{"name":"walk","value":1}]' : undefined;
          const r = await request(port, { method, path: `${route.path}?${qs}`, body, timeoutMs: 10_000 });
          // Some "bad" values are still acceptable values of some parameters (a 601-character
          // repo name that no plugin has, "%zz%" as a namespace that does not exist): those
          // must be refused too, as unknown, with a 4xx.
          check(`${method} ${route.path} ${name} ${what}`, r, true);
          sent++;
        }
      }
    }
  }
  for (const path of PLAIN) {
    for (const [what, bad] of BAD_VALUES) {
      const r = await request(port, { path: `${path}?${bad('x', 'y')}`, timeoutMs: 10_000 });
      check(`GET ${path} ${what}`, r, false);
      sent++;
    }
  }
  process.stdout.write(`# [bad input walk] ${sent} requests\n`);
  assert.deepEqual(problems.splice(0), []);
  assert.ok(await agent.api.health());
});

test('POST routes reading their parameters from a JSON or form body: wrong types and NUL are 4xx', { timeout: 120_000 }, async () => {
  for (const route of ROUTES.filter((r) => r.methods.includes('POST') && r.path.startsWith('/plugins/'))) {
    for (const name of Object.keys(route.params)) {
      for (const [what, value] of BAD_FIELDS) {
        const fields = { ...route.params, [name]: value };
        const r = await request(port, { method: 'POST', path: route.path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(fields) });
        check(`POST ${route.path} body ${name} ${what}`, r, true);
      }
      const form = new URLSearchParams({ ...route.params });
      form.append(name, 'again');
      const r = await request(port, { method: 'POST', path: route.path, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
      check(`POST ${route.path} form ${name} twice`, r, true);
    }
  }
  assert.deepEqual(problems.splice(0), []);
});
