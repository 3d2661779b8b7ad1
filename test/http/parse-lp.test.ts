// The line-protocol parser on string literals: the syntax InfluxDB accepts, escapes, typed
// values, precisions, and bad lines refused alone with their line index and a reason.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLineProtocol, parsePrecision, toSeconds } from '../../src/points/parse-lp.ts';

describe('parseLineProtocol', () => {
  test('measurement, tags, typed fields and a nanosecond timestamp', () => {
    const r = parseLineProtocol('cpu,host=a,region=eu usage=12.5,count=3i,big=7u,up=true,msg="hi there" 1700000000123456789');
    assert.deepEqual(r.rejected, []);
    assert.deepEqual(r.lineIndexes, [0]);
    assert.deepEqual(r.metrics, [
      {
        name: 'cpu',
        tags: { host: 'a', region: 'eu' },
        fields: { usage: 12.5, count: 3, big: 7, up: true, msg: 'hi there' },
        timestamp: 1700000000,
      },
    ]);
  });

  test('no tags, no timestamp; blank lines, comments and CRLF are skipped', () => {
    const r = parseLineProtocol('# a comment\n\nmem free=1\r\n   \n  disk used=2.5e3  \n');
    assert.deepEqual(r.rejected, []);
    assert.deepEqual(r.metrics, [
      { name: 'mem', fields: { free: 1 } },
      { name: 'disk', fields: { used: 2500 } },
    ]);
    assert.deepEqual(r.lineIndexes, [2, 4]);
  });

  test('escapes in measurement, tag keys and values, field keys and string values', () => {
    const r = parseLineProtocol(String.raw`my\ meas\,x,tag\ key=va\,l\=ue,path=C:\dir f\=k="say \"hi\" \\ back",g=1 10`, { precision: 's' });
    assert.deepEqual(r.rejected, []);
    assert.deepEqual(r.metrics[0], {
      name: 'my meas,x',
      tags: { 'tag key': 'va,l=ue', path: String.raw`C:\dir` },
      fields: { 'f=k': String.raw`say "hi" \ back`, g: 1 },
      timestamp: 10,
    });
  });

  test('a quoted string may span lines; the next point keeps its own line index', () => {
    const r = parseLineProtocol('log msg="line one\nline two" 5\nm v=1', { precision: 's' });
    assert.deepEqual(r.rejected, []);
    assert.equal(r.metrics[0]?.fields?.msg, 'line one\nline two');
    assert.deepEqual(r.lineIndexes, [0, 2]);
  });

  test('every boolean spelling InfluxDB accepts', () => {
    const r = parseLineProtocol('b a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE');
    assert.deepEqual(r.metrics[0]?.fields, { a: true, b: true, c: true, d: true, e: true, f: false, g: false, h: false, i: false, j: false });
  });

  test('bad lines are refused alone, with their 0-based line index and a reason', () => {
    const body = [
      'good v=1', // 0
      'nofields', // 1
      'm,tag v=1', // 2: tag without =
      'm v=abc', // 3: bare word
      'm v=1 notatime', // 4
      'm v=', // 5
      ',t=1 v=1', // 6: no measurement
      'm v=1 12 extra', // 7
      'm v="unclosed', // 8
      'm v=-3u', // 9
      'm v=1e999', // 10
      'm v=1x', // 11
      'also v=2', // 12
    ].join('\n');
    const r = parseLineProtocol(body);
    assert.deepEqual(
      r.metrics.map((m) => m.name),
      ['good', 'also'],
    );
    assert.deepEqual(r.lineIndexes, [0, 12]);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    );
    const reason = (i: number) => r.rejected.find((x) => x.index === i)?.reason ?? '';
    assert.match(reason(1), /missing a field set/);
    assert.match(reason(2), /tag "tag" has no "="/);
    assert.match(reason(3), /not a number, an integer/);
    assert.match(reason(4), /timestamp "notatime" is not an integer/);
    assert.match(reason(5), /has no value/);
    assert.match(reason(6), /missing measurement/);
    assert.match(reason(7), /after the timestamp/);
    assert.match(reason(8), /no closing quote/);
    assert.match(reason(9), /negative/);
    assert.match(reason(10), /out of range/);
  });

  test('a string field value is not mistaken for a timestamp or a new field', () => {
    const r = parseLineProtocol('m s="a b,c=d" 1', { precision: 's' });
    assert.deepEqual(r.metrics[0], { name: 'm', fields: { s: 'a b,c=d' }, timestamp: 1 });
  });

  test('__proto__ as a key stays a plain key, never a prototype', () => {
    const r = parseLineProtocol('m,__proto__=x __proto__=1,v=2');
    assert.deepEqual(r.rejected, []);
    const m = r.metrics[0];
    assert.ok(m);
    assert.equal(Object.getPrototypeOf(m.fields), Object.prototype);
    assert.deepEqual(Object.keys(m.fields ?? {}), ['__proto__', 'v']);
    assert.equal(Object.getOwnPropertyDescriptor(m.fields, '__proto__')?.value, 1);
    assert.equal(Object.getOwnPropertyDescriptor(m.tags, '__proto__')?.value, 'x');
  });
});

describe('timestamps', () => {
  test('toSeconds cuts sub-second digits exactly, beyond 2^53', () => {
    assert.equal(toSeconds('1700000000999999999', 'ns'), 1700000000);
    assert.equal(toSeconds('1700000000999999', 'us'), 1700000000);
    assert.equal(toSeconds('1700000000999', 'ms'), 1700000000);
    assert.equal(toSeconds('1700000000', 's'), 1700000000);
    assert.equal(toSeconds('2', 'm'), 120);
    assert.equal(toSeconds('2', 'h'), 7200);
    assert.equal(toSeconds('999', 'ns'), 0);
    assert.equal(toSeconds('-5000000000', 'ns'), -5);
  });

  test('parsePrecision knows InfluxDB spellings only', () => {
    assert.equal(parsePrecision('n'), 'ns');
    assert.equal(parsePrecision('u'), 'us');
    assert.equal(parsePrecision('ms'), 'ms');
    assert.equal(parsePrecision('x'), undefined);
    assert.equal(parsePrecision('toString'), undefined);
  });

  test('a bare word that names an Object.prototype member is still refused', () => {
    const r = parseLineProtocol('m v=toString\nm v=constructor');
    assert.equal(r.metrics.length, 0);
    assert.equal(r.rejected.length, 2);
  });
});
