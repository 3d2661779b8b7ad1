// HttpServer's bind-safety rule and lifecycle: beyond loopback only with a token or an explicit
// opt-in; start on a free port; stop is idempotent and lets an in-flight request finish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Koa from 'koa';
import { HttpServer, isLoopback, splitHostPort } from '../../src/http/server.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { httpConfig } from './helpers.ts';

test('a non-loopback bind without a token is refused at construction, with the fix', () => {
  assert.throws(
    () => new HttpServer({ config: httpConfig({ listen: '0.0.0.0:0' }), logger: silentLogger(), app: new Koa() }),
    /set a token, or set http.allowInsecureNonLoopback to true/,
  );
  assert.doesNotThrow(() => new HttpServer({ config: httpConfig({ listen: '0.0.0.0:0', token: 't' }), logger: silentLogger(), app: new Koa() }));
  assert.doesNotThrow(
    () => new HttpServer({ config: httpConfig({ listen: '0.0.0.0:0', allowInsecureNonLoopback: true }), logger: silentLogger(), app: new Koa() }),
  );
});

test('loopback detection and host:port splitting', () => {
  assert.deepEqual(splitHostPort('[::1]:1988'), { host: '::1', port: 1988 });
  assert.deepEqual(splitHostPort('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.ok(isLoopback('127.0.0.2') && isLoopback('::1') && isLoopback('localhost'));
  assert.ok(!isLoopback('0.0.0.0') && !isLoopback('10.0.0.1') && !isLoopback('::'));
});

test('start binds a free loopback port; stop lets an in-flight request finish, closes its socket, and is idempotent', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const arrival = new Promise<void>((r) => (arrived = r));
  const app = new Koa();
  app.use(async (ctx) => {
    arrived();
    await gate;
    ctx.body = 'done';
  });
  const server = new HttpServer({ config: httpConfig(), logger: silentLogger(), app });
  await server.start();
  assert.match(server.address(), /^127\.0\.0\.1:\d+$/);
  assert.notEqual(server.address(), '127.0.0.1:0');
  const address = server.address();
  const pending = fetch(`http://${address}/`).then(async (r) => ({ body: await r.text(), connection: r.headers.get('connection') }));
  await arrival;
  const stopping = server.stop();
  assert.equal(server.stop(), stopping, 'a second stop() is the same promise');
  release();
  // The request running at stop() is answered, and its socket is closed with the answer instead
  // of idling in keep-alive until the 2 s fallback.
  assert.deepEqual(await pending, { body: 'done', connection: 'close' });
  await stopping;
  await assert.rejects(fetch(`http://${address}/`), 'nothing listens after stop');
});
