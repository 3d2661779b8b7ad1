// The line-protocol fast path (src/points/lp-fast.ts) against the general path it must equal
// (LineProtocolParser, then the Normaliser behind Pipeline.push): generated and hand-written
// bodies through POST /post over real HTTP into two real Pipelines, one taking the fast path and
// one wrapped so the route cannot see it, comparing answers, published lines, counters in
// /metrics and the pipeline's status; and the stamper alone on large bodies, stepped in slices.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { Clock } from '../../src/clock.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { LineProtocolStamper } from '../../src/points/lp-fast.ts';
import type { MetricSink } from '../../src/points/metric.ts';
import { emptyBatch, Normaliser, type NormaliserOptions } from '../../src/points/normalise.ts';
import { parseLineProtocol, type LpPrecision } from '../../src/points/parse-lp.ts';
import { Pipeline } from '../../src/points/pipeline.ts';
import { call, MemoryPublisher, startApi, type Answer, type TestApi } from '../http/helpers.ts';

const NOW_MS = 1_700_000_123_456;
const clock: Clock = { now: () => NOW_MS, setTimeout: () => ({}), clearTimeout: () => undefined };

/** A small seeded generator, so a failure names a body that can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Pools of parts: the usual (which the fast path must take itself) and the odd (escapes,
// unicode, reserved and duplicate keys, every field type and spelling, bad values).
const NAMES = ['cpu', 'mem_used', 'disk.io', 'ü-temp', '日本', 'a=b', 'q"x', 'app_7_latency', 'PLUGIN.x.y'];
const ODD_NAMES = ['m\\,n', 'm\\ n', 'm\\\\', 'x\\y', 'e\\', '\\#x', 'tab\\\tx', 'nl\\\nx', 'm\\=n', '😀'];
const TAG_KEYS = ['api', 'dc', 'shard', 'host', 'zone', 'a', 'Å', '1', '02', 'hostname', 'hos', 'H'];
const ODD_TAG_KEYS = ['time', '__proto__', 'k\\=y', 'k\\ y', 'k\\,', 'k\\\\', 'constructor', 'x\\'];
const TAG_VALUES = ['a', 'eu-west-1', '7', '日本', 'time', '"q"', 'endpoint_12', 'host-b'];
const ODD_TAG_VALUES = ['t\\ x', 'v\\,w', 'v\\=w', 'x\\', 'a\\\\', 'b\\c'];
const FIELD_KEYS = ['value', 'v', 'x', 'ü', 'count', 'a', 'Z', '1'];
const ODD_FIELD_KEYS = ['time', '__proto__', 'y\\ z', 'f\\\\ g', 'k\\=v', 'k\\\\\\,v', 'e\\'];
const VALUES = [
  '1', '0', '-3', '12.5', '0.5', '-0.25', '123456789012345', '0.000001', '99.99', '3i', '-7i', '0i', 'T', 'F', 't', 'true',
  'False', 'FALSE', 'f', '"s"', '""', '"a b,c=d"', '"ü 日本"', '42u', '"x=1"',
];
const ODD_VALUES = [
  '1.50', '01', '.5', '5.', '-0', '+3', '1e3', '1E-2', '0.0000001', '0.0000010', '1234567890123456', '0.123456789012345',
  '1e400', '-1e308', '1e21', '123456789012345678901', 'NaN', 'inf', '-0i', '007i', '+7i', '12345678901234567890i', '-5u',
  '9223372036854775807i', '1.5i', 'tru', 'yes', 'TRue', '"q\\"x"', '"b\\\\s"', '"b\\s"', '"multi\nline"', '"cr\rx"',
  '"open', '1"', '=1', '-', '+', '"\\\\"', '0.00', '-0.0', '10', '100.0',
];
const TIMES = ['', '', '', '1700000000', '1700000000123', '1700000000123456789', '1600000000000000000'];
const ODD_TIMES = [
  '0', '-5', '+1700000000', '0001700000000', '9223372036854775807', '9223372037000000000', '99999999999', '1.5', 'abc',
  '17000000000000000000000000', '-0', '1', '999999999', '1000000000',
];
const BROKEN = ['bad', 'm v=', 'm,t v=1', 'm, v=1', 'm v=1 x y', 'm  ', ',t=1 v=1', 'm,t=1', 'm v=1,', 'm v=1 1 2', 'm =1'];

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)] as T;
}

function generatedLine(rnd: () => number): string {
  const odd = rnd() < 0.35;
  const from = <T>(usual: readonly T[], unusual: readonly T[]) => (odd && rnd() < 0.25 ? pick(rnd, unusual) : pick(rnd, usual));
  if (odd && rnd() < 0.1) return pick(rnd, BROKEN);
  let line = from(NAMES, ODD_NAMES);
  const tagKeys: string[] = [];
  for (let n = Math.floor(rnd() * 5); n > 0; n--) tagKeys.push(from(TAG_KEYS, ODD_TAG_KEYS));
  if (!odd || rnd() < 0.5) tagKeys.sort();
  for (const k of tagKeys) line += `,${k}=${from(TAG_VALUES, ODD_TAG_VALUES)}`;
  line += odd && rnd() < 0.2 ? pick(rnd, ['  ', '\t', ' \r ']) : ' ';
  const fieldKeys: string[] = [];
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) fieldKeys.push(from(FIELD_KEYS, ODD_FIELD_KEYS));
  if (!odd || rnd() < 0.5) fieldKeys.sort();
  line += fieldKeys.map((k) => `${k}=${from(VALUES, ODD_VALUES)}`).join(',');
  const time = from(TIMES, ODD_TIMES);
  if (time !== '') line += (odd && rnd() < 0.2 ? '  ' : ' ') + time;
  if (odd && rnd() < 0.1) line += pick(rnd, [' ', '\t', '\r']);
  if (odd && rnd() < 0.05) line = `  ${line}`;
  return line;
}

function generatedBody(rnd: () => number, lines: number): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const r = rnd();
    out.push(r < 0.04 ? '' : r < 0.07 ? '# a comment' : r < 0.08 ? '   ' : generatedLine(rnd));
  }
  return out.join(rnd() < 0.2 ? '\r\n' : '\n') + (rnd() < 0.3 ? '\n' : '');
}

const HAND_WRITTEN: string[] = [
  'cpu,host=a,zone=b usage_idle=99.5,usage_user=0.25 1700000000000000000',
  'cpu usage_idle=99.5',
  'cpu,zone=b,api=x v=1',
  'cpu v=1,a=2,m=3i,b=t,s="str"',
  'cpu,host=given v=1',
  'cpu,hos=a,hostname=b v=1',
  'cpu,Host=a v=1',
  'm v=1\nm v=2\r\nm v=3\n\n\n# c\nm v=4',
  'm v="a\nb" 1700000000\nm v=2',
  'm v="unterminated\nm v=2\nm v=3',
  'm,t=a,t=b v=1',
  'm v=1,v=2',
  'm,b=1,a=2,b=3 v=1',
  'm v=1,b=2,v=3',
  'm,time=1 v=1',
  'm time=1',
  'm,__proto__=x v=1',
  'm __proto__=1',
  'm __proto__=1,v=2',
  'm\\ name,tag\\ key=tag\\ value field\\ key="str\\"ing"',
  'm\\\\ v=1',
  'm v=1 -1',
  'm v=1 0',
  'm v=1 9223372036854775807',
  'm v=1 9223372037000000000',
  'm v=0.0000001,w=1e-7,x=100,y=1e21,z=-0',
  'm v=12345678901234567890i,w=-9223372036854775808i',
  'm v=5u,w=-5u',
  'm v=NaN',
  'm v=1e999',
  '日本,地=東京 値=1.5,文="字" 1700000000',
  'm v="😀",w="\u0000"',
  '   m v=1   ',
  '\tm v=1\t1700000000\t',
  'm v=1 1700000000 extra',
  'm v=1x',
  'm, v=1',
  'm,=x v=1',
  'm,t= v=1',
  'm v=1,',
  'm v=1,,w=2',
  'm v=',
  'm v="a\\\\b",w="a\\b",x="a\\"b"',
  `m v="${'x'.repeat(400)}"`,
  `m,${'k'.repeat(30)}=${'v'.repeat(300)} v=1`,
  `m v=1 1700000000\n${'bad\n'.repeat(10)}m v=2`,
  'cpu,a=1 v=1\nm,1=a,2=b,10=c v=1',
  'm,a=1 Z=1,a=2,B=3',
  'nothing here but a name',
  '#only a comment',
];

interface Setting {
  name: string;
  normaliser: Omit<NormaliserOptions, 'clock'>;
  maxLineBytes?: number;
  maxReportedRejections: number;
  maxPointsPerBody?: number;
}

const SETTINGS: Setting[] = [
  { name: 'defaults', normaliser: { hostname: 'web-1' }, maxReportedRejections: 100 },
  {
    name: 'a hostname to escape, short lines, a low seconds bound, few listed rejections',
    normaliser: { hostname: 'h ost,=x日', maxSecondsTimestamp: 1_650_000_000 },
    maxLineBytes: 120,
    maxReportedRejections: 3,
  },
  { name: 'few points per body', normaliser: { hostname: 'zz' }, maxReportedRejections: 100, maxPointsPerBody: 12 },
];

const PRECISIONS = ['', 'n', 'ns', 'u', 'us', 'µ', 'µs', 'ms', 's', 'm', 'h'];

interface Side {
  api: TestApi;
  metrics: Registry;
  publisher: MemoryPublisher;
  pipeline: Pipeline;
}

async function startSide(setting: Setting, fast: boolean): Promise<Side> {
  const metrics = new Registry();
  const publisher = new MemoryPublisher();
  const pipeline = new Pipeline({
    normaliser: new Normaliser({ ...setting.normaliser, clock }),
    publisher,
    metrics,
    logger: silentLogger(),
    maxLineBytes: setting.maxLineBytes,
  });
  // Wrapped, the route sees a plain MetricSink and takes the general path.
  const sink: MetricSink = fast ? pipeline : { push: (ns, m, o) => pipeline.push(ns, m, o) };
  const api = await startApi({
    http: setting.maxPointsPerBody === undefined ? {} : { maxPointsPerBody: setting.maxPointsPerBody },
    deps: { sink, metrics, maxReportedRejections: setting.maxReportedRejections },
  });
  return { api, metrics, publisher, pipeline };
}

async function post(side: Side, body: string, precision: string): Promise<{ answer: Answer; lines: string[] }> {
  const query = precision === '' ? '' : `&precision=${encodeURIComponent(precision)}`;
  const answer = await call(`${side.api.url}/post?ns=web${query}`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  const lines = side.publisher.lines;
  side.publisher.published.length = 0;
  return { answer, lines };
}

/** /metrics without what is timing (latency histograms) rather than counting. */
async function countedMetrics(side: Side): Promise<string> {
  const text = await side.metrics.metrics();
  return text
    .split('\n')
    .filter((l) => !l.includes('duration_seconds') && !l.includes('in_flight'))
    .join('\n');
}

for (const setting of SETTINGS) {
  describe(`line protocol fast path = general path (${setting.name})`, () => {
    let fast: Side;
    let general: Side;
    before(async () => {
      fast = await startSide(setting, true);
      general = await startSide(setting, false);
    });
    after(async () => {
      await fast.api.close();
      await general.api.close();
    });

    const same = async (body: string, precision: string) => {
      const [a, b] = await Promise.all([post(fast, body, precision), post(general, body, precision)]);
      const what = `precision=${precision} body=${JSON.stringify(body)}`;
      assert.equal(a.answer.status, b.answer.status, what);
      assert.deepEqual(a.answer.json, b.answer.json, what);
      assert.deepEqual(a.lines, b.lines, what);
    };

    test('hand-written bodies, each alone and all in one at every precision', async () => {
      for (const [i, body] of HAND_WRITTEN.entries()) await same(body, ['', 's', 'ms', 'h'][i % 4] as string);
      for (const precision of PRECISIONS) await same(HAND_WRITTEN.join('\n'), precision);
    });

    test('generated bodies', async () => {
      const rnd = random(setting.name.length * 7919);
      for (let i = 0; i < 100; i++) await same(generatedBody(rnd, 1 + Math.floor(rnd() * (i % 2 === 0 ? 10 : 60))), pick(rnd, PRECISIONS));
    });

    test('the same counters in /metrics and in the status', async () => {
      assert.equal(await countedMetrics(fast), await countedMetrics(general));
      assert.deepEqual(fast.pipeline.status(), general.pipeline.status());
      assert.ok(fast.pipeline.status().accepted > 0);
    });
  });
}

/** The general path's result for a body (parse, then normalise with the pipeline's line bound). */
function generalPath(body: string, normaliser: Normaliser, precision: LpPrecision, maxLineBytes: number) {
  const parsed = parseLineProtocol(body, { precision });
  const batch = emptyBatch();
  normaliser.normaliseSlice(parsed.metrics, 0, parsed.metrics.length, batch, { maxLineBytes }, normaliser.nowSec());
  batch.rejected = batch.rejected.map((r) => ({ ...r, index: parsed.lineIndexes[r.index] as number }));
  return { parsed, batch };
}

describe('LineProtocolStamper', () => {
  const normaliser = new Normaliser({ hostname: 'web-1', clock });
  const stamp = (body: string, precision: LpPrecision, sliceLines = Number.POSITIVE_INFINITY, maxLineBytes = 256 * 1024) => {
    const stamper = new LineProtocolStamper(body, {
      normaliser,
      maxLineBytes,
      precision,
      maxListedRejections: Number.POSITIVE_INFINITY,
      nowSec: normaliser.nowSec(),
    });
    while (!stamper.step(sliceLines));
    return stamper;
  };

  test('large generated bodies, stepped a few lines at a time, give the general path result', () => {
    const rnd = random(42);
    for (let round = 0; round < 6; round++) {
      const body = generatedBody(rnd, 5000);
      const precision = pick(rnd, ['ns', 'us', 'ms', 's', 'm', 'h'] as const);
      const stamper = stamp(body, precision, 1 + Math.floor(rnd() * 7), 200);
      const expected = generalPath(body, normaliser, precision, 200);
      const got = stamper.result;
      assert.equal(got.pointsIn, expected.parsed.metrics.length);
      assert.deepEqual(got.parseRejected, expected.parsed.rejected);
      assert.equal(got.parseRejectedCount, expected.parsed.rejectedCount);
      assert.deepEqual(got.batch, expected.batch);
      assert.ok(stamper.generalLines < got.pointsIn + got.parseRejectedCount, 'some lines were sliced');
    }
  });

  test('usual lines (sorted or not, every field type, each sub-minute precision) never take the general path', () => {
    const body = [
      'cpu,api=login,dc=eu,shard=3 value=12.5 1700000000',
      'cpu,zone=b,api=x value=-0.25,count=3i,up=t,state="ok" 1700000000',
      'mem used=1,free=2u,ok=FALSE',
      'disk,host=h2 io=0.000001',
      'net,x=1,a=2 b=1,a=2 1700000001',
    ].join('\n');
    for (const precision of ['s', 'ms', 'us', 'ns'] as const) {
      const stamper = stamp(body, precision);
      assert.equal(stamper.generalLines, 0, precision);
      assert.equal(stamper.result.pointsIn, 5);
    }
    assert.deepEqual(stamp(body, 's').result.batch.lines, [
      'cpu,api=login,dc=eu,host=web-1,shard=3 value=12.5 1700000000',
      'cpu,api=x,host=web-1,zone=b count=3,state="ok",up=T,value=-0.25 1700000000',
      `mem,host=web-1 free=2,ok=F,used=1 ${Math.floor(NOW_MS / 1000)}`,
      `disk,host=h2 io=0.000001 ${Math.floor(NOW_MS / 1000)}`,
      'net,a=2,host=web-1,x=1 a=2,b=1 1700000001',
    ]);
  });

  test('a decimal it passes through unchanged is what String(Number()) prints', () => {
    const rnd = random(7);
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const int = rnd() < 0.3 ? '0' : String(Math.floor(rnd() * 10 ** Math.floor(rnd() * 17)));
      const frac = rnd() < 0.4 ? '' : `.${'0'.repeat(Math.floor(rnd() * 8))}${Math.floor(rnd() * 10 ** Math.floor(1 + rnd() * 10))}`;
      lines.push(`m v=${rnd() < 0.3 ? '-' : ''}${int}${frac}`);
    }
    const stamper = stamp(lines.join('\n'), 's');
    const expected = generalPath(lines.join('\n'), normaliser, 's', 256 * 1024);
    assert.deepEqual(stamper.result.batch.lines, expected.batch.lines);
    assert.equal(stamper.generalLines, 0);
  });
});
