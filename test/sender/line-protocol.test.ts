// Line splitting as InfluxDB does it (quoted newlines stay inside their line) and series keys
// for the shard ring, on string literals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Point } from '@influxdata/influxdb-client';
import { isDataLine, seriesKey, splitLines, lineShape } from '../../src/sender/line-protocol.ts';

void test('splitLines drops blank and comment lines and trims', () => {
  assert.deepEqual(splitLines('# ns=a\nm v=1 1\n\n  m v=2 2\r\n\t# c\nm v=3 3'), ['m v=1 1', 'm v=2 2', 'm v=3 3']);
  assert.deepEqual(splitLines(''), []);
  assert.deepEqual(splitLines('\n\n'), []);
});

void test('splitLines keeps a newline inside a quoted string field', () => {
  const body = 'q s="a\nb",t="x" 1\nq s="c" 2\nm,tag="x\ny" v=1 3';
  assert.deepEqual(splitLines(body), ['q s="a\nb",t="x" 1', 'q s="c" 2', 'm,tag="x', 'y" v=1 3']);
});

void test('splitLines: escaped quotes and quotes in tags do not open a string', () => {
  assert.deepEqual(splitLines('q s="a\\"\nb" 1\nq v=2 2'), ['q s="a\\"\nb" 1', 'q v=2 2']);
  assert.deepEqual(splitLines('m,t=a"b v=1 1\nm v=2 2'), ['m,t=a"b v=1 1', 'm v=2 2']);
});

void test('splitLines agrees with the client library on a string field holding a newline', () => {
  const line = new Point('m').tag('host', 'h').stringField('msg', 'two\nlines').intField('n', 1).timestamp(5).toLineProtocol();
  assert.ok(line);
  assert.deepEqual(splitLines(`${line}\n${line}`), [line, line]);
});

void test('isDataLine', () => {
  assert.equal(isDataLine('m v=1'), true);
  assert.equal(isDataLine('  # x'), false);
  assert.equal(isDataLine('   '), false);
  assert.equal(isDataLine(''), false);
});

void test('seriesKey: measurement and tags, tag order normalised, fields and time ignored', () => {
  assert.equal(seriesKey('cpu,host=a,cpu=0 usage=1 100'), 'cpu,cpu=0,host=a');
  assert.equal(seriesKey('cpu,cpu=0,host=a usage=2 200'), 'cpu,cpu=0,host=a');
  assert.equal(seriesKey('cpu usage=1'), 'cpu');
  assert.equal(seriesKey('  cpu,b=1 v=1'), 'cpu,b=1');
});

void test('seriesKey honours escapes in measurement, tag keys and values', () => {
  assert.equal(seriesKey('my\\ cpu,z=1,a\\,b=x\\ y v=1'), 'my\\ cpu,a\\,b=x\\ y,z=1');
  assert.notEqual(seriesKey('m,a=1 v=1'), seriesKey('m,a=2 v=1'));
  // Same key, different values: ordered by value too, so the key is canonical.
  assert.equal(seriesKey('m,k=b,k=a v=1'), seriesKey('m,k=a,k=b v=1'));
});

void test('lineShape: measurement, tags and field types unescaped, as InfluxDB names them in its errors', () => {
  const s = lineShape('my\\ mem,host=a\\ b,x=1 active=1.5,free=2i,s="a b\\" c",b=true,u=3u,f\\=x=1 1700000000');
  assert.equal(s?.measurement, 'my mem');
  assert.deepEqual([...(s?.tags ?? [])], [
    ['host', 'a b'],
    ['x', '1'],
  ]);
  assert.deepEqual([...(s?.fields ?? [])], [
    ['active', 'float'],
    ['free', 'integer'],
    ['s', 'string'],
    ['b', 'boolean'],
    ['u', 'unsigned'],
    ['f=x', 'float'],
  ]);
  assert.equal(lineShape('no_fields_here'), undefined);
});
