// Reading InfluxDB's write errors (texts captured from 1.6.7 and 1.8.10) and Retry-After.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchRejectedLines, readWriteError, refusalKind, retryAfterMs } from '../../src/sender/write-errors.ts';

void test('partial write with parse errors names each bad line', () => {
  const msg = "partial write: unable to parse 'm v=': missing field value\nunable to parse 'bad line here': invalid field format dropped=0";
  const r = readWriteError(msg);
  assert.equal(r.partial, true);
  assert.equal(r.dropped, 0);
  assert.equal(r.onlyParseErrors, true);
  assert.equal(r.unparsable.length, 2);
  const lines = ['m v=1 1', 'm v=', 'm v=2 2', 'bad line here'];
  assert.deepEqual([...matchRejectedLines(lines, r)], [
    [1, 'missing field value'],
    [3, 'invalid field format'],
  ]);
});

void test('all lines bad: no "partial write" prefix', () => {
  const r = readWriteError("unable to parse 'm v=': missing field value\nunable to parse 'bad': missing fields");
  assert.equal(r.partial, false);
  assert.equal(r.dropped, undefined);
  assert.equal(r.onlyParseErrors, true);
  assert.deepEqual([...matchRejectedLines(['m v=', 'bad'], r).keys()], [0, 1]);
});

void test('type conflict: partial, dropped=N, no line named', () => {
  const r = readWriteError('partial write: field type conflict: input field "v" on measurement "m" is type integer, already exists as type float dropped=2');
  assert.equal(r.partial, true);
  assert.equal(r.dropped, 2);
  assert.equal(r.onlyParseErrors, false);
  assert.equal(matchRejectedLines(['m v=1i'], r).size, 0);
});

void test("a bad line containing \"': \" and a quoted newline is still matched", () => {
  const bad = "m s=\"x': y\nz\" 1,";
  const msg = `partial write: unable to parse '${bad}': invalid number dropped=0`;
  const m = matchRejectedLines(['m v=1 1', bad], readWriteError(msg));
  assert.deepEqual([...m], [[1, 'invalid number']]);
});

void test('duplicate bad lines are each matched once', () => {
  const msg = "unable to parse 'x': missing fields\nunable to parse 'x': missing fields";
  assert.deepEqual([...matchRejectedLines(['x', 'x', 'y'], readWriteError(msg)).keys()], [0, 1]);
});

void test('Retry-After is seconds (not the client library milliseconds) or an HTTP date', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  assert.equal(retryAfterMs('1', now), 1000);
  assert.equal(retryAfterMs(' 30 ', now), 30_000);
  assert.equal(retryAfterMs('1.5', now), 1500);
  assert.equal(retryAfterMs('Mon, 01 Jan 2024 00:00:10 GMT', now), 10_000);
  assert.equal(retryAfterMs('Sun, 31 Dec 2023 00:00:10 GMT', now), 0);
  assert.equal(retryAfterMs(undefined, now), undefined);
  assert.equal(retryAfterMs('soon', now), undefined);
  assert.equal(retryAfterMs(['2', '3'], now), 2000);
});

void test('type conflict and max-values-per-tag answers name measurement and field or tag (texts from 1.6.7 and 1.8.10)', () => {
  const tc = readWriteError('partial write: field type conflict: input field "f=x" on measurement "my mem" is type float, already exists as type integer dropped=3');
  assert.deepEqual(tc.typeConflict, { measurement: 'my mem', field: 'f=x', type: 'float' });
  assert.equal(tc.dropped, 3);
  assert.equal(refusalKind(tc), 'field-type-conflict');
  const tl = readWriteError('partial write: max-values-per-tag limit exceeded (12/10): measurement="flood" tag="host" value="x\\"1" dropped=2');
  assert.deepEqual(tl.tagLimit, { measurement: 'flood', tag: 'host', value: 'x"1' });
  assert.equal(refusalKind(tl), 'max-values-per-tag');
  // A conflict inside one batch on a new field: the whole body is refused, nothing named.
  const bare = readWriteError('field type conflict');
  assert.equal(bare.partial, false);
  assert.equal(bare.typeConflict, undefined);
  assert.equal(refusalKind(bare), 'other');
  assert.equal(refusalKind(readWriteError("unable to parse 'x': missing fields")), 'unparsable');
});
