// The parse budget shared by ingest requests (http.maxParsingBytes): a body that does not fit
// beside those being read is answered 503 with Retry-After once its upload is over (declared
// length or chunked), the budget is given back when a request ends however it ends, and a body
// larger than the whole budget still goes through alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { startApi, type TestApi } from './helpers.ts';
import { request } from '../abuse/http-client.ts';

const BUDGET = 64 * 1024;
let api: TestApi;
let port: number;

before(async () => {
  api = await startApi({ http: { maxParsingBytes: BUDGET, maxBodyBytes: 256 * 1024, allowAnyNamespace: true } });
  port = Number(new URL(api.url).port);
});
after(() => api.close());

const status = async () => (await request(port, { path: '/me/status' })).json?.data.http.parsing as { inUseBytes: number; refused: number };

/** Starts a POST whose body is sent only in part; returns the request and how to finish it. */
async function holdOpen(declared: number): Promise<{ finish: () => Promise<number> }> {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/post?ns=web', headers: { 'content-length': String(declared), 'content-type': 'application/json' } });
  const answered = once(req, 'response') as Promise<[http.IncomingMessage]>;
  const head = '[{"name":"held","value":1}';
  req.write(head);
  // The server has taken the declared length from the budget once it reads the headers.
  for (let i = 0; i < 100 && (await status()).inUseBytes === 0; i++) await new Promise((r) => setTimeout(r, 20));
  return {
    async finish() {
      req.end(`${' '.repeat(declared - head.length - 1)}]`);
      const [res] = await answered;
      res.resume();
      return res.statusCode ?? 0;
    },
  };
}

test('a body that does not fit beside another is a 503 with Retry-After (declared length and chunked); the first goes through', async () => {
  const held = await holdOpen(48 * 1024);
  assert.equal((await status()).inUseBytes, 48 * 1024);
  const body = `[${'{"name":"x","value":1},'.repeat(1500)}{"name":"x","value":1}]`;
  assert.ok(body.length > 16 * 1024);
  const declared = await request(port, { method: 'POST', path: '/post?ns=web', headers: { 'content-type': 'application/json' }, body });
  assert.equal(declared.status, 503, declared.text);
  assert.equal(declared.headers['retry-after'], '1');
  assert.match(declared.json?.error ?? '', /http\.maxParsingBytes/);
  // No Content-Length: the budget is taken as bytes arrive.
  const chunked = await request(port, { method: 'POST', path: '/post?ns=web', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body });
  assert.equal(chunked.status, 503, chunked.text);
  const small = await request(port, { method: 'POST', path: '/post?ns=web', body: '[{"name":"small","value":1}]' });
  assert.equal(small.status, 200, 'a body that fits goes through beside the held one');
  assert.equal(await held.finish(), 200);
  const s = await status();
  assert.equal(s.inUseBytes, 0, 'every reservation was given back');
  assert.equal(s.refused, 2);
  assert.equal((await request(port, { method: 'POST', path: '/post?ns=web', body })).status, 200, 'alone, it fits again');
});

test('a body larger than the whole budget goes through when it is alone; an aborted upload gives its share back', async () => {
  const big = `[${'{"name":"x","value":1},'.repeat(4000)}{"name":"x","value":1}]`;
  assert.ok(big.length > BUDGET);
  assert.equal((await request(port, { method: 'POST', path: '/post?ns=web', body: big })).status, 200);
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/post?ns=web', headers: { 'content-length': '50000' } });
  req.on('error', () => {});
  req.write('[');
  for (let i = 0; i < 100 && (await status()).inUseBytes === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal((await status()).inUseBytes, 50_000);
  req.destroy();
  for (let i = 0; i < 100 && (await status()).inUseBytes !== 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal((await status()).inUseBytes, 0);
});
