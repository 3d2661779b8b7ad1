// The shard ring: deterministic, balanced enough, and adding a backend moves only the series
// it takes over (none move between the old backends).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashRing, hash32 } from '../../src/sender/hash-ring.ts';

const keys = Array.from({ length: 20_000 }, (_, i) => `ns\ncpu,host=h${i % 997},cpu=${i}`);

void test('hash32 is stable (the placement of series must not change between versions)', () => {
  assert.equal(hash32(''), hash32(''));
  assert.deepEqual([hash32('a'), hash32('b#0'), hash32('é')], [hash32('a'), hash32('b#0'), hash32('é')]);
  assert.notEqual(hash32('é'), hash32('e'));
  // Pinned values: FNV-1a 32 + murmur3 fmix32 over UTF-8.
  assert.deepEqual([hash32('a'), hash32('ns\ncpu,host=a')].map((h) => h.toString(16)), [pin('a'), pin('ns\ncpu,host=a')]);
});

function pin(s: string): string {
  // Reference implementation written out independently of the module.
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0).toString(16);
}

void test('the ring is deterministic and spreads series over the backends', () => {
  const a = new HashRing(['a', 'b', 'c'], 160);
  const b = new HashRing(['a', 'b', 'c'], 160);
  const counts = [0, 0, 0];
  for (const k of keys) {
    const i = a.locate(k);
    assert.equal(b.locate(k), i);
    counts[i] = (counts[i] as number) + 1;
  }
  for (const c of counts) assert.ok(c > keys.length * 0.25 && c < keys.length * 0.42, `unbalanced: ${counts.join(',')}`);
});

void test('adding a backend moves only its share: nothing moves between the old backends', () => {
  const before = new HashRing(['a', 'b'], 160);
  const after = new HashRing(['a', 'b', 'c'], 160);
  let moved = 0;
  for (const k of keys) {
    const was = before.nodes[before.locate(k)];
    const now = after.nodes[after.locate(k)];
    if (was !== now) {
      assert.equal(now, 'c', `${JSON.stringify(k)} moved from ${was} to ${now}`);
      moved++;
    }
  }
  // c takes roughly a third, not more.
  assert.ok(moved > keys.length * 0.25 && moved < keys.length * 0.42, `moved ${moved}`);
});

void test('removing a backend moves only the series it held', () => {
  const before = new HashRing(['a', 'b', 'c'], 160);
  const after = new HashRing(['a', 'c'], 160);
  for (const k of keys) {
    const was = before.nodes[before.locate(k)];
    if (was !== 'b') assert.equal(after.nodes[after.locate(k)], was);
  }
});

void test('the ring refuses bad input with a sentence', () => {
  assert.throws(() => new HashRing([], 10), /at least one node/);
  assert.throws(() => new HashRing(['a', 'a'], 10), /unique/);
  assert.throws(() => new HashRing(['a'], 0), /virtualNodes/);
});
