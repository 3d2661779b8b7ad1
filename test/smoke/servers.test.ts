// Smoke test of the real test servers: a message round-trips through nsqd (also across a SIGKILL
// and a restart on the same ports), and points written to InfluxDB 1.6 (and 1.8's /api/v2/write
// when it could be built) can be queried back.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writer } from 'nsqjs';
import {
  createTopic,
  influxdAvailable,
  readAll,
  serversDir,
  startInfluxd,
  startNsqd,
  startNsqlookupd,
  stopAll,
  topicDepth,
  type NsqdHandle,
} from '../helpers/servers.ts';

after(stopAll);

/** Connects a Writer, publishes, and closes it; nsqjs's Writer must always have an error listener. */
async function publish(nsqd: NsqdHandle, topic: string, messages: string[]): Promise<void> {
  const writer = new Writer('127.0.0.1', nsqd.tcpPort);
  try {
    await new Promise<void>((resolve, reject) => {
      writer.on('error', reject);
      writer.on('ready', () => writer.publish(topic, messages, (err) => (err ? reject(err) : resolve())));
      writer.connect();
    });
  } finally {
    writer.close();
  }
}

void test('nsqd: a published message is read back', { timeout: 30_000 }, async () => {
  const nsqd = await startNsqd();
  assert.match(nsqd.tcpAddress, /^127\.0\.0\.1:\d+$/);
  await publish(nsqd, 'smoke', ['hello']);
  const got = await readAll(nsqd, 'smoke', 'ch', { count: 1 });
  assert.deepEqual(got.map(String), ['hello']);
  assert.equal(await topicDepth(nsqd.httpAddress, 'smoke', 'ch'), 0);
});

void test('nsqd: SIGTERM keeps queued messages, SIGKILL + restart reuses the same ports', { timeout: 60_000 }, async () => {
  const nsqd = await startNsqd({ memQueueSize: 100 });
  const { tcpPort, httpPort } = nsqd;
  await createTopic(nsqd.httpAddress, 'durable', 'ch');
  await publish(nsqd, 'durable', ['a', 'b']);

  await nsqd.restart();
  assert.equal(await topicDepth(nsqd.httpAddress, 'durable', 'ch'), 2);

  // A connected client leaves the server side of its socket in TIME_WAIT after the kill.
  const writer = new Writer('127.0.0.1', nsqd.tcpPort);
  writer.on('error', () => {});
  const writerReady = new Promise((resolve) => writer.once('ready', resolve));
  writer.connect();
  await writerReady;
  await nsqd.kill();
  writer.close();
  await nsqd.restart();

  assert.deepEqual([nsqd.tcpPort, nsqd.httpPort], [tcpPort, httpPort]);
  await publish(nsqd, 'durable', ['c']);
  const got = await readAll(nsqd.tcpAddress, 'durable', 'ch', { idleMs: 200 });
  assert.deepEqual(got.map(String).sort(), ['a', 'b', 'c']);
});

void test('nsqlookupd: nsqd registers its topics', { timeout: 30_000 }, async () => {
  const lookupd = await startNsqlookupd();
  const nsqd = await startNsqd({ lookupdTcpAddresses: [lookupd.tcpAddress] });
  await createTopic(nsqd.httpAddress, 'registered');
  // Registration is asynchronous and nsqlookupd has no event for it: poll briefly.
  const deadline = Date.now() + 10_000;
  let producers: Array<{ tcp_port: number }> = [];
  while (producers.length === 0 && Date.now() < deadline) {
    const res = await fetch(`http://${lookupd.httpAddress}/lookup?topic=registered`);
    producers = res.ok ? ((await res.json()) as { producers: typeof producers }).producers : [];
    if (producers.length === 0) await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(producers.map((p) => p.tcp_port), [nsqd.tcpPort]);
});

void test('influxd 1.6: /write then /query, data kept across SIGKILL + restart', { timeout: 60_000 }, async () => {
  const influx = await startInfluxd({ version: '1.6' });
  assert.match(influx.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  await influx.createDatabase('x');
  const res = await fetch(`${influx.url}/write?db=x&precision=s`, {
    method: 'POST',
    body: 'cpu,host=a value=1 1700000000\n',
  });
  assert.equal(res.status, 204, await res.text());
  assert.equal(await influx.count('x', 'cpu'), 1);

  const port = influx.port;
  await influx.kill();
  await influx.restart();
  assert.equal(influx.port, port);
  assert.equal(await influx.count('x'), 1);
  await assert.rejects(influx.query('x', 'SELECT * FROM'), /error parsing query/);
});

void test('influxd 1.8: /api/v2/write then /query (or a recorded reason why 1.8 is unavailable)', { timeout: 60_000 }, async () => {
  if (!influxdAvailable('1.8')) {
    const marker = join(serversDir(), 'influxd-1.8.unavailable');
    assert.ok(existsSync(marker), `influxd 1.8 is missing and ${marker} does not say why`);
    assert.match(readFileSync(marker, 'utf8'), /influxd@v1\.8\.10 (failed|timed out)/);
    return;
  }
  // Two servers at once also proves the RPC bind-address is not the shared default :8088.
  const [v18, v16] = await Promise.all([startInfluxd({ version: '1.8' }), startInfluxd({ version: '1.6' })]);
  assert.notEqual(v18.port, v16.port);
  await v18.createDatabase('x');
  const res = await fetch(`${v18.url}/api/v2/write?bucket=x/autogen&precision=s`, {
    method: 'POST',
    body: 'cpu,host=a value=1 1700000000\n',
  });
  assert.equal(res.status, 204, await res.text());
  assert.equal(await v18.count('x', 'cpu'), 1);
  const ping = await fetch(`${v18.url}/ping`);
  assert.equal(ping.headers.get('x-influxdb-version'), '1.8.10');
});
