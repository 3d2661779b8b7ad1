// POST /post and /api/push over real HTTP into a recording MetricSink: JSON arrays and objects,
// line protocol, mixed good and bad items, body limits, namespaces, publisher refusal (503),
// and the Open-Falcon mapping.
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DroppedError } from '../../src/publish/publisher.ts';
import { call, postJson, startApi, type TestApi } from './helpers.ts';

describe('POST /post', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi({ http: { maxBodyBytes: 4096 }, deps: { maxReportedRejections: 5 } });
  });
  after(() => api.close());

  const post = (path: string, body: RequestInit["body"], contentType = 'application/json', extra: RequestInit = {}) =>
    call(`${api.url}${path}`, { method: 'POST', body, headers: { 'content-type': contentType }, ...extra });

  test('a JSON array goes to the sink as sent, in the namespace asked for', async () => {
    api.sink.pushes.length = 0;
    const metrics = [
      { name: 'qps', timestamp: 1700000000, tags: { api: 'login' }, value: 12.5 },
      { name: 'up', value: true },
    ];
    const r = await postJson(`${api.url}/post?ns=web`, metrics);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { ok: true, data: { namespace: 'web', accepted: 2, rejectedCount: 0, rejected: [] } });
    assert.deepEqual(api.sink.pushes.map(({ namespace, metrics }) => ({ namespace, metrics })), [{ namespace: 'web', metrics }]);
  });

  test('a single object is a batch of one', async () => {
    api.sink.pushes.length = 0;
    const r = await postJson(`${api.url}/post?ns=db`, { name: 'conn', value: 3 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.data.accepted, 1);
    assert.deepEqual(api.sink.pushes.map(({ namespace, metrics }) => ({ namespace, metrics })), [{ namespace: 'db', metrics: [{ name: 'conn', value: 3 }] }]);
  });

  test('mixed good and bad items: the good are published, the bad reported by index', async () => {
    api.sink.pushes.length = 0;
    const r = await postJson(`${api.url}/post?ns=web`, [
      { name: 'a', value: 1 },
      { value: 2 },
      'not a metric',
      { name: 'b', value: 3 },
      { name: 'c', value: 'x', tags: { t: 5 } },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.data.accepted, 2);
    assert.equal(r.json?.data.rejectedCount, 3);
    assert.deepEqual(
      r.json?.data.rejected.map((x: { index: number }) => x.index),
      [1, 2, 4],
    );
    assert.ok(r.json?.data.rejected.every((x: { reason: string }) => x.reason.length > 0));
    assert.deepEqual(
      api.sink.metrics().map((m) => m.name),
      ['a', 'b'],
    );
  });

  test('nothing accepted is a 400 that carries the per-item report', async () => {
    const r = await postJson(`${api.url}/post?ns=web`, [{ value: 1 }, { name: '' }]);
    assert.equal(r.status, 400);
    assert.match(r.json?.error ?? '', /nothing was accepted: 2 items rejected; the first \(index 0\): no name/);
    assert.equal(r.json?.details.accepted, 0);
    assert.equal(r.json?.details.rejectedCount, 2);
  });

  test('the list of rejections is capped, the count is not', async () => {
    const items = Array.from({ length: 12 }, (_, i) => (i === 0 ? { name: 'ok', value: 1 } : { bad: i }));
    const r = await postJson(`${api.url}/post?ns=web`, items);
    assert.equal(r.status, 200);
    assert.equal(r.json?.data.rejectedCount, 11);
    assert.equal(r.json?.data.rejected.length, 5);
  });

  test('bodies that are not metrics get a 400 saying what to send', async () => {
    const cases: Array<[RequestInit["body"], RegExp]> = [
      ['', /the body is empty/],
      ['   ', /the body is empty/],
      ['[]', /empty array/],
      ['42', /not valid JSON|JSON array or object/],
      ['"str"', /not valid JSON|JSON array or object/],
      ['[{"name":', /not valid JSON/],
      ['{"name":"m","value":1,"__proto__":{"x":1}}', /not valid JSON/],
    ];
    for (const [body, re] of cases) {
      const r = await post('/post?ns=web', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json?.ok, false);
      assert.match(r.json?.error ?? '', re, String(body));
    }
  });

  test('JSON sent as a form (curl -d) or as text/plain (fetch) is still JSON', async () => {
    api.sink.pushes.length = 0;
    const a = await post('/post?ns=web', '[{"name":"form","value":1}]', 'application/x-www-form-urlencoded');
    const b = await post('/post?ns=web', ' {"name":"text","value":2}', 'text/plain;charset=UTF-8');
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(
      api.sink.metrics().map((m) => m.name),
      ['form', 'text'],
    );
  });

  test('text/plain line protocol: fields and tags, seconds from ?precision, bad lines by line index', async () => {
    api.sink.pushes.length = 0;
    const body = 'cpu,core=0 user=1.5,idle=90i 1700000000000\n\nbroken line\n# comment\nmem used=2 1700000001000\n';
    const r = await post('/post?ns=web&precision=ms', body, 'text/plain');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.data.accepted, 2);
    assert.deepEqual(
      r.json?.data.rejected.map((x: { index: number }) => x.index),
      [2],
    );
    assert.deepEqual(api.sink.metrics(), [
      { name: 'cpu', tags: { core: '0' }, fields: { user: 1.5, idle: 90 }, timestamp: 1700000000 },
      { name: 'mem', fields: { used: 2 }, timestamp: 1700000001 },
    ]);
    const bad = await post('/post?ns=web&precision=fortnights', 'm v=1', 'text/plain');
    assert.equal(bad.status, 400);
    assert.match(bad.json?.error ?? '', /"precision" must be one of ns, us, ms, s, m, h/);
    const none = await post('/post?ns=web', '# only a comment\n\n', 'text/plain');
    assert.equal(none.status, 400);
    assert.match(none.json?.error ?? '', /no line-protocol points/);
  });

  test('line-protocol lines the sink rejects are reported by their body line', async () => {
    const r = await post('/post?ns=web', 'm v=1\nbad-line\nm,t=x v=NaNx\nm v="s"', 'text/plain');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      r.json?.data.rejected.map((x: { index: number }) => x.index),
      [1, 2],
    );
  });

  test('a body over http.maxBodyBytes is a 413, with or without Content-Length', async () => {
    api.sink.pushes.length = 0;
    const big = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ name: `metric_${i}`, value: i })));
    assert.ok(big.length > 4096);
    const sized = await post('/post?ns=web', big);
    assert.equal(sized.status, 413);
    assert.match(sized.json?.error ?? '', /larger than http\.maxBodyBytes \(4096 bytes\)/);
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < big.length; i += 1000) c.enqueue(new TextEncoder().encode(big.slice(i, i + 1000)));
        c.close();
      },
    });
    const chunked = await post('/post?ns=web', stream, 'application/json', { duplex: 'half' } as RequestInit);
    assert.equal(chunked.status, 413);
    const lp = await post('/post?ns=web', 'm v=1\n'.repeat(1000), 'text/plain');
    assert.equal(lp.status, 413);
    assert.equal(api.sink.pushes.length, 0);
    const m = await call(`${api.url}/metrics`);
    assert.match(m.text, /nsagent_http_refused_total\{reason="body_too_large"\} 3\b/);
  });

  test('gzip bodies are read; broken gzip and unknown encodings are 4xx', async () => {
    api.sink.pushes.length = 0;
    const zipped = gzipSync(Buffer.from('[{"name":"zipped","value":1}]'));
    const ok = await call(`${api.url}/post?ns=web`, {
      method: 'POST',
      body: zipped,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(api.sink.metrics()[0]?.name, 'zipped');
    const broken = await call(`${api.url}/post?ns=web`, {
      method: 'POST',
      body: Buffer.from('definitely not gzip'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(broken.status, 400, broken.text);
    assert.match(broken.json?.error ?? '', /not valid gzip data \(Z_DATA_ERROR\)/);
    const odd = await call(`${api.url}/post?ns=web`, {
      method: 'POST',
      body: Buffer.from('[]'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'x-snappy' },
    });
    assert.equal(odd.status, 415, odd.text);
    const bomb = gzipSync(Buffer.from(`[${'0,'.repeat(50_000)}0]`));
    assert.ok(bomb.length < 4096, 'small on the wire');
    const inflated = await call(`${api.url}/post?ns=web`, {
      method: 'POST',
      body: bomb,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(inflated.status, 413, 'the limit applies to the decompressed body');
    assert.match(odd.json?.error ?? '', /Content-Encoding "x-snappy" is not supported: send the body uncompressed, or as gzip, deflate or br/);
  });

  test('namespaces: required, known to the registry, else 404', async () => {
    const none = await postJson(`${api.url}/post`, [{ name: 'm', value: 1 }]);
    assert.equal(none.status, 400);
    assert.match(none.json?.error ?? '', /"ns" is required/);
    const tab = await postJson(`${api.url}/post?ns=web%09`, [{ name: 'm', value: 1 }]);
    assert.equal(tab.status, 400);
    assert.match(tab.json?.error ?? '', /control characters/);
    const unknown = await postJson(`${api.url}/post?ns=elsewhere`, [{ name: 'm', value: 1 }]);
    assert.equal(unknown.status, 404);
    assert.match(unknown.json?.error ?? '', /"elsewhere" is not one of this host's namespaces .*http\.allowAnyNamespace/);
    api.registry.namespaces = ['web', 'db', 'elsewhere'];
    try {
      const later = await postJson(`${api.url}/post?ns=elsewhere`, [{ name: 'm', value: 1 }]);
      assert.equal(later.status, 200, 'a namespace the registry adds is writable at once');
    } finally {
      api.registry.namespaces = ['web', 'db'];
    }
  });

  test('a publisher refusal is a 503 with Retry-After, never an acceptance', async () => {
    api.sink.failWith = new DroppedError('spool is full (1073741824 bytes)', 2);
    try {
      const r = await postJson(`${api.url}/post?ns=web`, [
        { name: 'a', value: 1 },
        { name: 'b', value: 2 },
      ]);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.equal(r.json?.ok, false);
      assert.match(r.json?.error ?? '', /nothing of this request is acknowledged: spool is full/);
    } finally {
      api.sink.failWith = undefined;
    }
    const m = await call(`${api.url}/metrics`);
    assert.match(m.text, /nsagent_http_ingest_points_total\{route="\/post",outcome="unacknowledged"\} 2/);
  });

  test('any other sink failure is a 500 that leaks no internals', async () => {
    api.sink.failWith = new Error('ECONNRESET at /secret/path');
    try {
      const r = await postJson(`${api.url}/post?ns=web`, [{ name: 'a', value: 1 }]);
      assert.equal(r.status, 500);
      assert.doesNotMatch(r.text, /secret/);
      assert.match(r.json?.error ?? '', /internal error/);
    } finally {
      api.sink.failWith = undefined;
    }
  });
});

describe('POST /api/push (Open-Falcon)', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi({ http: { defaultPushNamespace: 'falcon' }, deps: { knownNamespaces: () => ['falcon', 'web'] } });
  });
  after(() => api.close());

  test('items map onto metrics: endpoint → host, tags parsed, COUNTER kept, GAUGE and step dropped', async () => {
    api.sink.pushes.length = 0;
    const items = [
      { metric: 'cpu.idle', endpoint: 'host-1', timestamp: 1700000000, step: 60, value: 97.5, counterType: 'GAUGE', tags: 'idc=bj,role=web' },
      { metric: 'net.in', endpoint: 'host-2', timestamp: 1700000000, step: 60, value: '1024', counterType: 'counter', tags: '' },
    ];
    const r = await postJson(`${api.url}/api/push?ns=web`, items);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(api.sink.pushes.map(({ namespace, metrics }) => ({ namespace, metrics })), [
      {
        namespace: 'web',
        metrics: [
          { name: 'cpu.idle', value: 97.5, tags: { idc: 'bj', role: 'web', host: 'host-1' }, timestamp: 1700000000 },
          { name: 'net.in', value: 1024, tags: { host: 'host-2', counterType: 'COUNTER' }, timestamp: 1700000000 },
        ],
      },
    ]);
  });

  test('no ns: http.defaultPushNamespace; /v1/push is the same route', async () => {
    api.sink.pushes.length = 0;
    const r = await postJson(`${api.url}/v1/push`, { metric: 'm', endpoint: 'h', value: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(api.sink.pushes[0]?.namespace, 'falcon');
    const m = await call(`${api.url}/metrics`);
    assert.match(m.text, /nsagent_http_ingest_points_total\{route="\/v1\/push",outcome="accepted"\} 1/);
  });

  test('bad items are refused alone, with the reason', async () => {
    api.sink.pushes.length = 0;
    const r = await postJson(`${api.url}/api/push?ns=web`, [
      { metric: 'ok', endpoint: 'h', value: 1 },
      { endpoint: 'h', value: 1 },
      { metric: 'm', value: 'abc' },
      { metric: 'm', value: 1, tags: 'novalue' },
      { metric: 'm', value: 1, counterType: 'HISTOGRAM' },
      { metric: 'm', value: 1, timestamp: '1700000000' },
      [1, 2],
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.data.accepted, 1);
    const reasons = r.json?.data.rejected.map((x: { index: number; reason: string }) => `${x.index}: ${x.reason}`);
    assert.deepEqual(reasons, [
      '1: "metric" must be a non-empty string',
      '2: "value" "abc" is not a finite number',
      '3: "tags" must be "k=v,k=v"; "novalue" is not a k=v pair',
      '4: "counterType" must be GAUGE, COUNTER or DERIVE',
      '5: "timestamp" must be a number of seconds',
      '6: an item must be an object with metric, endpoint, timestamp, step, value, counterType and tags',
    ]);
  });
});

describe('POST /api/push without a default namespace', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi();
  });
  after(() => api.close());

  test('no ns and no http.defaultPushNamespace is a 400 naming both', async () => {
    const r = await postJson(`${api.url}/api/push`, [{ metric: 'm', value: 1 }]);
    assert.equal(r.status, 400);
    assert.match(r.json?.error ?? '', /"ns" is required \(or set http\.defaultPushNamespace\)/);
  });
});
