// The gateway sender against an in-process fake InfluxDB, for what a real server will not do on
// demand: 429/503 with Retry-After (honoured in seconds), a backend that keeps failing (marked
// down, probed back), a missing database (created), and the bounds (batch size, queue).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import type { Clock } from '../../src/clock.ts';
import { senderSchema, type SenderConfig } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { InfluxGatewaySender } from '../../src/sender/gateway-sender.ts';
import { RetryableWriteError } from '../../src/sender/types.ts';
import { RecordingClock } from '../helpers/clocks.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { FakeInflux } from './fake-influx.ts';

const fakes: FakeInflux[] = [];
const senders: InfluxGatewaySender[] = [];
after(async () => {
  await Promise.all(senders.map((s) => s.stop()));
  await Promise.all(fakes.map((f) => f.stop()));
});

async function fake(): Promise<FakeInflux> {
  const f = await new FakeInflux().start();
  fakes.push(f);
  return f;
}

function sender(backends: FakeInflux[], over: Partial<SenderConfig> = {}, metrics?: Registry, clock?: Clock): InfluxGatewaySender {
  const config = senderSchema.parse({
    backends: backends.map((b, i) => ({ name: `b${i}`, url: b.url, timeoutMs: 2000 })),
    retryMinMs: 20,
    retryMaxMs: 2000,
    probeIntervalMs: 100,
    flushIntervalMs: 50,
    stopTimeoutMs: 2000,
    ...over,
  });
  const deadLetterDir = tempDir('sender').dir;
  const s = new InfluxGatewaySender({ config: { ...config, deadLetterDir }, logger: silentLogger(), ...(metrics ? { metrics } : {}), ...(clock ? { clock } : {}) });
  senders.push(s);
  return s;
}

const lines = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `m,k=${(from + i) % 7} v=${from + i} ${1_700_000_000 + from + i}`);

function linesIn(body: string): number {
  return body.split('\n').filter((l) => l.trim() !== '').length;
}

void test('v1 write: path, precision, rp and basic auth from a "user:password" token', async () => {
  const f = await fake();
  const s = sender([], {
    backends: [{ name: 'a', url: f.url, api: 'v1', token: 'u:p', org: '', rp: 'week', timeoutMs: 2000, createDatabase: true }],
  });
  await s.start();
  assert.deepEqual(await s.write('team/x', lines(3)), { written: 3, deadLettered: 0 });
  const [w] = f.writes();
  assert.ok(w);
  assert.equal(w.path, '/write');
  assert.deepEqual(Object.fromEntries(w.query), { db: 'team_x', precision: 's', rp: 'week' });
  assert.equal(w.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
  assert.match(String(w.headers['content-type']), /^text\/plain/);
  assert.equal(linesIn(w.body), 3);
});

void test('v2 write: /api/v2/write with bucket namespace/rp and a Token header', async () => {
  const f = await fake();
  const s = sender([], {
    backends: [{ name: 'a', url: f.url, api: 'v2', token: 'tok', org: 'o', rp: 'autogen', timeoutMs: 2000, createDatabase: true }],
  });
  await s.start();
  await s.write('ns1', lines(2));
  const [w] = f.writes();
  assert.ok(w);
  assert.equal(w.path, '/api/v2/write');
  assert.deepEqual(Object.fromEntries(w.query), { org: 'o', bucket: 'ns1/autogen', precision: 's' });
  assert.equal(w.headers.authorization, 'Token tok');
});

for (const status of [503, 429]) {
  void test(`${status} with Retry-After: 1 is retried after a second, not a millisecond`, async () => {
    const f = await fake();
    const clock = new RecordingClock();
    let calls = 0;
    let secondWaited = -1;
    f.handler = (r) => {
      if (r.path !== '/write') return undefined;
      if (++calls === 1) return { status, headers: { 'retry-after': '1' }, body: { error: 'busy' } };
      secondWaited = clock.fired(500, 1000);
      return undefined;
    };
    const s = sender([f], {}, undefined, clock);
    await s.start();
    assert.deepEqual(await s.write('ns', lines(5)), { written: 5, deadLettered: 0 });
    assert.equal(f.writes().length, 2, 'two attempts');
    // The second attempt came after a wait of up to a second (what was left of the hint) had run out,
    // not after the 20 ms backoff.
    assert.equal(secondWaited, 1, `timers: ${JSON.stringify(clock.timers)}`);
    const b = (s.status().backends as Record<string, { counters: { SendFail: { count: number }; Send: { count: number } } }>).b0;
    assert.equal(b?.counters.SendFail.count, 5);
    assert.equal(b?.counters.Send.count, 5);
  });
}

void test('a Retry-After longer than retryMaxMs hands the write back with the hint, and holds the backend', async () => {
  const f = await fake();
  f.handler = (r) => (r.path === '/write' ? { status: 429, headers: { 'retry-after': '120' }, body: { error: 'slow down' } } : undefined);
  const s = sender([f], { retryMaxMs: 1000 });
  await s.start();
  await assert.rejects(s.write('ns', lines(1)), (err: unknown) => {
    assert.ok(err instanceof RetryableWriteError);
    assert.equal(err.reason, 'retry-after');
    assert.ok((err.retryAfterMs ?? 0) >= 119_000);
    return true;
  });
  // Held: the next write fails fast, without a request.
  await assert.rejects(s.write('ns', lines(1)), (err: unknown) => err instanceof RetryableWriteError && err.reason === 'retry-after');
  assert.equal(f.writes().length, 1);
});

void test('a backend that keeps failing is marked down, fails fast, is probed back with /ping', async () => {
  const f = await fake();
  let failing = true;
  f.handler = (r) => {
    if (!failing) return undefined;
    if (r.path === '/ping') return { status: 503 };
    if (r.path === '/write') return { status: 500, body: { error: 'engine: boom' } };
    return undefined;
  };
  const s = sender([f], { downAfterFailures: 3, retryMinMs: 10, retryMaxMs: 20 });
  const availability: boolean[] = [];
  s.onAvailabilityChange((a) => availability.push(a));
  await s.start();
  await assert.rejects(s.write('ns', lines(4)), (err: unknown) => err instanceof RetryableWriteError && err.reason === 'down');
  assert.equal(f.writes().length, 3);
  assert.deepEqual(availability, [false]);
  // Down: refused without a request.
  await assert.rejects(s.write('ns', lines(1)), /is down \(last error: HTTP 500: engine: boom\)/);
  assert.equal(f.writes().length, 3);
  await f.waitFor((rs) => rs.filter((r) => r.path === '/ping').length >= 2);
  failing = false;
  await new Promise<void>((resolve) => s.onAvailabilityChange((a) => a && resolve()));
  assert.deepEqual(availability, [false, true]);
  assert.deepEqual(await s.write('ns', lines(4)), { written: 4, deadLettered: 0 });
  const st = s.status().backends as Record<string, { state: string; consecutiveFailures: number }>;
  assert.equal(st.b0?.state, 'up');
  assert.equal(st.b0?.consecutiveFailures, 0);
});

void test('404 database not found: CREATE DATABASE once, then the write goes through', async () => {
  const f = await fake();
  const dbs = new Set<string>();
  f.handler = (r) => {
    if (r.path === '/query') {
      const q = new URLSearchParams(r.body).get('q') ?? '';
      const m = /^CREATE DATABASE "(.*)"$/.exec(q);
      if (m?.[1]) dbs.add(m[1].replace(/\\(.)/g, '$1'));
      return { status: 200, body: { results: [{ statement_id: 0 }] } };
    }
    if (r.path === '/write' && !dbs.has(r.query.get('db') ?? '')) {
      return { status: 404, body: { error: `database not found: "${r.query.get('db')}"` } };
    }
    return undefined;
  };
  const s = sender([f]);
  await s.start();
  assert.deepEqual(await s.write('new"ns', lines(2)), { written: 2, deadLettered: 0 });
  assert.deepEqual([...dbs], ['new"ns']);
  await s.write('new"ns', lines(2, 2));
  assert.equal(f.requests.filter((r) => r.path === '/query').length, 1);
});

void test('createDatabase false: a missing database fails the write as retryable, without marking the backend down', async () => {
  const f = await fake();
  f.handler = (r) => (r.path === '/write' ? { status: 404, body: { error: 'database not found: "x"' } } : undefined);
  const s = sender([], { backends: [{ name: 'a', url: f.url, api: 'v1', org: '', timeoutMs: 2000, createDatabase: false }], downAfterFailures: 1 });
  await s.start();
  for (let i = 0; i < 3; i++) {
    await assert.rejects(s.write('x', lines(1)), (err: unknown) => err instanceof RetryableWriteError && err.reason === 'no-database');
  }
  assert.equal(f.requests.filter((r) => r.path === '/query').length, 0);
  assert.equal((s.status().backends as Record<string, { state: string }>).a?.state, 'up');
});

void test('batches: concurrent writes share requests, none over batchSize; an idle backend sends at once', async () => {
  const f = await fake();
  const clock = new RecordingClock();
  const s = sender([f], { batchSize: 100, flushIntervalMs: 60_000, maxConcurrentWrites: 2 }, undefined, clock);
  await s.start();
  // One write alone: the backend is idle, so it goes out without waiting for flushIntervalMs.
  await s.write('ns', lines(3));
  assert.equal(clock.fired(60_000), 0, 'the flush timer did not send it');
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.write('ns', lines(7, i * 7))));
  assert.equal(results.reduce((a, r) => a + r.written, 0), 350);
  const sizes = f.writes().slice(1).map((w) => linesIn(w.body));
  assert.equal(sizes.reduce((a, b) => a + b, 0), 350);
  assert.ok(sizes.every((n) => n <= 100), `sizes ${sizes.join(',')}`);
  assert.ok(sizes.length <= 6, `${sizes.length} requests for 50 writes: ${sizes.join(',')}`);
});

void test('a busy backend: a partial batch waits for flushIntervalMs, then takes a free slot', async () => {
  const f = await fake();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const clock = new RecordingClock();
  let quickAfterFlushes = -1;
  f.handler = async (r) => {
    if (r.path === '/write' && r.query.get('db') === 'slow') await gate;
    if (r.path === '/write' && r.query.get('db') === 'quick') quickAfterFlushes = clock.fired(300);
    return undefined;
  };
  const s = sender([f], { batchSize: 1000, flushIntervalMs: 300, maxConcurrentWrites: 2 }, undefined, clock);
  await s.start();
  const slow = s.write('slow', lines(1));
  await f.waitFor((rs) => rs.length >= 1);
  assert.equal(clock.fired(300), 0, '"slow" went out at once, on an idle backend');
  // The backend is busy with "slow": this partial batch is not sent at once, but when its flush
  // timer fires, in the second slot, while "slow" is still unanswered.
  assert.deepEqual(await s.write('quick', lines(1)), { written: 1, deadLettered: 0 });
  assert.equal(quickAfterFlushes, 1, `timers: ${JSON.stringify(clock.timers)}`);
  release();
  assert.deepEqual(await slow, { written: 1, deadLettered: 0 });
});

void test('maxQueuedPoints: a write that does not fit waits for room; past the line or the wait it is refused and counted', async () => {
  const f = await fake();
  f.handler = (r) => (r.path === '/write' ? { status: 503 } : undefined);
  const registry = new Registry();
  const s = sender([f], { maxQueuedPoints: 10, maxQueueWaitMs: 5000, downAfterFailures: 1000, retryMinMs: 50, retryMaxMs: 50 }, registry);
  await s.start();
  const first = s.write('ns', lines(8));
  // Does not fit beside the 8 queued: waits in line (backpressure).
  const second = s.write('ns', lines(5));
  await f.waitFor((rs) => rs.length >= 2);
  assert.equal(s.status().waitingPoints, 5);
  // The line itself is bounded by maxQueuedPoints too: refused at once.
  await assert.rejects(s.write('ns', lines(8)), (err: unknown) => err instanceof RetryableWriteError && err.reason === 'queue-full');
  assert.equal(s.status().refusedPoints, 8);
  assert.match(await registry.metrics(), /nsagent_sender_refused_points_total 8/);
  f.handler = () => undefined;
  assert.deepEqual(await first, { written: 8, deadLettered: 0 });
  assert.deepEqual(await second, { written: 5, deadLettered: 0 });
  assert.equal(s.status().queuedPoints, 0);
  assert.equal(s.status().waitingPoints, 0);
});

void test('maxQueueWaitMs: a write waiting longer for room is refused', async () => {
  const f = await fake();
  f.handler = (r) => (r.path === '/write' ? { status: 503 } : undefined);
  const clock = new RecordingClock();
  const s = sender([f], { maxQueuedPoints: 10, maxQueueWaitMs: 300, downAfterFailures: 1000, retryMinMs: 50, retryMaxMs: 50 }, undefined, clock);
  await s.start();
  const first = s.write('ns', lines(10));
  await assert.rejects(s.write('ns', lines(1)), /waited 300 ms for room/);
  assert.equal(clock.fired(300), 1, 'refused when its 300 ms wait ran out');
  assert.equal(s.status().refusedPoints, 1);
  f.handler = () => undefined;
  await first;
});

void test('a write larger than maxQueuedPoints goes alone into an empty queue', async () => {
  const f = await fake();
  const s = sender([f], { maxQueuedPoints: 10, batchSize: 10 });
  await s.start();
  const [big, after] = await Promise.all([s.write('ns', lines(25)), s.write('ns', lines(3, 100))]);
  assert.deepEqual(big, { written: 25, deadLettered: 0 });
  assert.deepEqual(after, { written: 3, deadLettered: 0 });
  assert.equal(s.status().refusedPoints, 0);
});

void test('a bad line among good ones (fake 400 naming it): dead-lettered with the reason, the rest accepted', async () => {
  const f = await fake();
  f.handler = (r) => {
    if (r.path !== '/write') return undefined;
    const bad = r.body.split('\n').filter((l) => l.includes('oops'));
    if (bad.length === 0) return undefined;
    const why = bad.map((l) => `unable to parse '${l}': invalid field format`).join('\n');
    return { status: 400, body: { error: `partial write: ${why} dropped=0` } };
  };
  const s = sender([f]);
  await s.start();
  const out = await s.write('ns', [...lines(3), 'oops here', ...lines(2, 3)]);
  assert.deepEqual(out, { written: 5, deadLettered: 1 });
  const dl = readFileSync(path.join((s.status().deadLetter as { file: string }).file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  assert.equal(dl.length, 1);
  assert.equal(dl[0]?.line, 'oops here');
  assert.equal(dl[0]?.namespace, 'ns');
  assert.equal(dl[0]?.backend, 'b0');
  assert.match(dl[0]?.reason ?? '', /unable to parse: invalid field format/);
  assert.equal(f.writes().length, 1, 'exactly named: no bisection');
});

void test('shard mode routes each series to its ring backend; replicate sends all to all', async () => {
  const [a, b] = [await fake(), await fake()];
  const s = sender([a, b], { mode: 'shard' });
  await s.start();
  const data = Array.from({ length: 200 }, (_, i) => `m,host=h${i} v=1 ${1_700_000_000 + i}`);
  await s.write('ns', data);
  const got = (f: FakeInflux) => new Set(f.writes().flatMap((w) => w.body.split('\n')));
  const [ga, gb] = [got(a), got(b)];
  assert.equal(ga.size + gb.size, 200);
  for (const line of data) assert.ok((s.backendFor('ns', line) === 'b0' ? ga : gb).has(line), line);
  assert.ok(ga.size > 50 && gb.size > 50, `${ga.size}/${gb.size}`);

  const [c, d] = [await fake(), await fake()];
  const r = sender([c, d], { mode: 'replicate' });
  await r.start();
  assert.deepEqual(await r.write('ns', data), { written: 400, deadLettered: 0 });
  assert.equal(got(c).size, 200);
  assert.equal(got(d).size, 200);
});

void test('stop() flushes what is queued, then refuses writes', async () => {
  const f = await fake();
  const s = sender([f], { batchSize: 1000, flushIntervalMs: 60_000 });
  await s.start();
  const ws = [s.write('a', lines(5)), s.write('b', lines(5)), s.write('c', lines(5))];
  await s.stop();
  const outs = await Promise.all(ws);
  assert.equal(outs.reduce((n, o) => n + o.written, 0), 15);
  await assert.rejects(s.write('a', lines(1)), (err: unknown) => err instanceof RetryableWriteError && err.reason === 'stopped');
});

void test('stop() with a backend that does not answer: the deadline hands the writes back as retryable', async () => {
  const f = await fake();
  f.handler = (r) => (r.path === '/write' ? { status: 503 } : undefined);
  const clock = new RecordingClock();
  const s = sender([f], { stopTimeoutMs: 300, retryMinMs: 50, retryMaxMs: 50, downAfterFailures: 1000 }, undefined, clock);
  await s.start();
  const w = s.write('a', lines(2));
  await s.stop();
  // Ended by its deadline (a timer for what is left of stopTimeoutMs; the others are the 50 ms
  // retries and flushes), while the backend still answered 503.
  assert.equal(clock.timers.filter((t) => t.fired && t.ms !== 50).length, 1, `timers: ${JSON.stringify(clock.timers)}`);
  await assert.rejects(w, (err: unknown) => err instanceof RetryableWriteError && err.reason === 'stopped');
});

void test('prom metrics: nsagent_sender_* per backend', async () => {
  const f = await fake();
  const registry = new Registry();
  const s = sender([f], {}, registry);
  await s.start();
  await s.write('ns', lines(4));
  const text = await registry.metrics();
  assert.match(text, /nsagent_sender_recv_points_total\{backend="b0"\} 4/);
  assert.match(text, /nsagent_sender_send_points_total\{backend="b0"\} 4/);
  assert.match(text, /nsagent_sender_sent_bytes_total\{backend="b0"\} \d+/);
  assert.match(text, /nsagent_sender_queue_points\{backend="b0"\} 0/);
  assert.match(text, /nsagent_sender_backend_up\{backend="b0"\} 1/);
  assert.match(text, /nsagent_sender_requests_total\{backend="b0",result="ok"\} 1/);
});

void test('a namespace whose lines are being narrowed down never holds another namespace back', async () => {
  const f = await fake();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  let mostHeld = 0;
  f.handler = async (r) => {
    if (r.path !== '/write' || r.query.get('db') !== 'refusing') return undefined;
    const n = linesIn(r.body);
    // A whole batch: refused without naming a line, so it is narrowed down by halves.
    if (n === 10) return { status: 400, body: { error: 'partial write: points beyond retention policy dropped=1' } };
    held++;
    mostHeld = Math.max(mostHeld, held);
    await gate;
    held--;
    const refused = r.body.split('\n').filter((l) => l.includes('oops')).length;
    return refused > 0 ? { status: 400, body: { error: `partial write: points beyond retention policy dropped=${refused}` } } : undefined;
  };
  const s = sender([f], { batchSize: 10, maxConcurrentWrites: 4 });
  await s.start();
  const refusing = Array.from({ length: 40 }, (_, i) => (i % 10 === 3 ? `m oops=${i} ${1_700_000_000 + i}` : `m v=${i} ${1_700_000_000 + i}`));
  const bad = s.write('refusing', refusing);
  await f.waitFor((reqs) => reqs.filter((r) => r.query.get('db') === 'refusing' && linesIn(r.body) < 10).length >= 2);
  // The follow-up requests of "refusing" hang; another namespace's write goes through meanwhile.
  assert.deepEqual(await s.write('healthy', lines(25)), { written: 25, deadLettered: 0 });
  assert.equal(held, 2, 'follow-up requests hold at most half of the 4 write slots');
  release();
  assert.deepEqual(await bad, { written: 36, deadLettered: 4 });
  assert.equal(mostHeld, 2);
});

void test('a namespace holding half the queue or more waits while another namespace waits for room', async () => {
  const f = await fake();
  const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
  for (const name of ['hold1', 'hold2']) {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    gates.set(name, { promise, open });
  }
  f.handler = async (r) => {
    for (const [name, gate] of gates) if (r.path === '/write' && r.body.includes(name)) await gate.promise;
    return undefined;
  };
  const s = sender([f], { maxQueuedPoints: 100, maxQueueWaitMs: 5000, batchSize: 1000 });
  await s.start();
  const tagged = (tag: string, n: number, from: number) => lines(n, from).map((l) => l.replace('m,', `m,${tag}=1,`));
  const first = s.write('busy', tagged('hold1', 60, 0));
  await f.waitFor((reqs) => reqs.some((r) => r.body.includes('hold1')));
  const second = s.write('busy', tagged('hold2', 30, 100));
  await f.waitFor((reqs) => reqs.some((r) => r.body.includes('hold2')));
  // 90 of 100 queued, all of "busy": both writes below wait for room, "busy" first.
  const third = s.write('busy', tagged('hold1', 40, 200));
  const quick = s.write('other', lines(20, 300));
  assert.equal(s.status().waitingWrites, 2);
  (gates.get('hold2') as { open: () => void }).open();
  await second;
  // 30 points of room: "busy" still holds 60 of 100, so "other" goes first (its 40 would take
  // the room and hang with hold1).
  assert.deepEqual(await quick, { written: 20, deadLettered: 0 });
  (gates.get('hold1') as { open: () => void }).open();
  assert.deepEqual(await first, { written: 60, deadLettered: 0 });
  assert.deepEqual(await third, { written: 40, deadLettered: 0 });
});

void test('a write failing after some of its lines were dead-lettered comes back whole: those lines are not kept or counted twice', async () => {
  const f = await fake();
  let goodFails = true;
  f.handler = (r) => {
    if (r.path !== '/write') return undefined;
    const n = linesIn(r.body);
    const refused = r.body.split('\n').filter((l) => l.includes('oops')).length;
    if (n === 1 && refused === 0 && goodFails) return { status: 503, body: { error: 'overloaded' } };
    return refused > 0 ? { status: 400, body: { error: `partial write: points beyond retention policy dropped=${refused}` } } : undefined;
  };
  const s = sender([f], { downAfterFailures: 1 });
  await s.start();
  const backUp = new Promise<void>((resolve) => s.onAvailabilityChange((available) => available && resolve()));
  const batch = ['m oops=1 1700000000', 'm v=1 1700000001'];
  // The refused line is found and dead-lettered, the good one fails: the write is handed back.
  await assert.rejects(s.write('ns', batch), RetryableWriteError);
  goodFails = false;
  await backUp;
  // As the relay does with a requeued message: the same lines again.
  assert.deepEqual(await s.write('ns', batch), { written: 1, deadLettered: 1 });
  const file = (s.status().deadLetter as { file: string }).file;
  assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1, 'one record');
  const b0 = (s.status().backends as Record<string, { counters: { SendDrop: { count: number } } }>).b0;
  assert.equal(b0?.counters.SendDrop.count, 1, 'counted once');
});
