// Lines held as byte ranges of their message: the lines read back, and the request body made of
// views, equal what the string path (splitLines, join) gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineBlock, LineList } from '../../src/sender/line-block.ts';
import { splitLines } from '../../src/sender/line-protocol.ts';

const body = '# ns=a\nm v=1 1\n\n  m v=2 2\r\nq s="x\ny" 3\n# c\nm,t=é v=4 4\nm v=5 5';

function joined(pieces: readonly Buffer[]): string {
  return Buffer.concat(pieces).toString('utf8');
}

void test('fromBody reads the data lines as splitLines does, from an offset, without copying the buffer', () => {
  const buf = Buffer.from(`# ns=x\n${body}`);
  const block = LineBlock.fromBody(buf, 7);
  assert.deepEqual([...block], splitLines(body));
  assert.equal(block.length, 5);
  assert.equal(block.buf, buf);
  assert.equal(block.line(4), 'm v=5 5');
});

void test('the body is the lines joined by newlines; adjacent lines share one view', () => {
  const block = LineBlock.fromBody(Buffer.from(body));
  const lines = splitLines(body);
  const all = block.body();
  assert.equal(joined(all), lines.join('\n'));
  const list = new LineList();
  list.add(block, 2, 5);
  list.add(block, 0, 1);
  assert.equal(joined(list.body()), [...lines.slice(2, 5), lines[0]].join('\n'));
  assert.equal(list.byteLength(), Buffer.byteLength([...lines.slice(2, 5), lines[0]].join('\n')));
  const dense = LineBlock.fromLines(['a v=1 1', 'b v=2 2', 'c v=3 3']);
  assert.equal(dense.body().length, 1, 'one view for lines that follow each other');
});

void test('fromLines keeps the data lines as given; pick shares the buffer', () => {
  const block = LineBlock.fromLines(['m v=1 1', '', '# c', ' m v=2 2', 'm,t=é v=3 3']);
  assert.deepEqual([...block], ['m v=1 1', ' m v=2 2', 'm,t=é v=3 3']);
  const picked = block.pick([0, 2]);
  assert.deepEqual([...picked], ['m v=1 1', 'm,t=é v=3 3']);
  assert.equal(picked.buf, block.buf);
  assert.equal(joined(picked.body()), 'm v=1 1\nm,t=é v=3 3');
  assert.equal(LineBlock.fromLines([]).length, 0);
});

void test('a LineList merges runs and copies single lines from another list', () => {
  const a = LineBlock.fromLines(['a1 v=1', 'a2 v=1', 'a3 v=1']);
  const b = LineBlock.fromLines(['b1 v=1', 'b2 v=1']);
  const list = new LineList();
  list.add(a, 0, 2);
  list.add(a, 2, 3);
  list.add(b, 0, 2);
  assert.equal(list.length, 5);
  assert.deepEqual(list.strings(), ['a1 v=1', 'a2 v=1', 'a3 v=1', 'b1 v=1', 'b2 v=1']);
  const odd = new LineList();
  for (const i of [1, 3, 4]) odd.addFrom(list, i);
  assert.deepEqual(odd.strings(), ['a2 v=1', 'b1 v=1', 'b2 v=1']);
  assert.equal(joined(odd.body()), 'a2 v=1\nb1 v=1\nb2 v=1');
  assert.throws(() => odd.addFrom(list, 5), RangeError);
});
