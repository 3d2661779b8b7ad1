import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { folderName, pluginDir } from '../../src/plugins/plugin-paths.ts';

const hostile = [
  '..',
  '.',
  '../..',
  '../../etc',
  '/etc/passwd',
  'a/b',
  'a\\b',
  '.hidden',
  '%2e%2e',
  '%',
  '%25',
  'ns with spaces',
  'näme',
  '名前',
  '\u0000',
  'a\nb',
  '-rf',
  'x'.repeat(300),
  'x'.repeat(300) + 'y',
  '.'.repeat(200),
  'demo.web',
  'demo_web',
  'demo-web',
  'Demo.Web',
];

describe('folderName', () => {
  test('keeps plain names readable', () => {
    assert.equal(folderName('demo.web'), 'demo.web');
    assert.equal(folderName('disk-usage_2'), 'disk-usage_2');
  });

  test('never yields a separator, ".", "..", a leading dot, or an over-long name', () => {
    for (const s of hostile) {
      const f = folderName(s);
      assert.ok(!f.includes('/') && !f.includes('\\') && !f.includes('\0'), `${JSON.stringify(s)} → ${f}`);
      assert.ok(!f.startsWith('.'), `${JSON.stringify(s)} → ${f}`);
      assert.ok(f !== '' && f.length <= 120, `${JSON.stringify(s)} → ${f}`);
    }
  });

  test('distinct inputs give distinct folders (injective, also against percent look-alikes)', () => {
    const seen = new Map<string, string>();
    const inputs = [...hostile];
    for (let c = 0; c < 0x300; c++) inputs.push(`n${String.fromCharCode(c)}`, String.fromCharCode(c) + 'n');
    for (const s of inputs) {
      if (s === '') continue;
      const f = folderName(s);
      const before = seen.get(f);
      assert.ok(before === undefined || before === s, `${JSON.stringify(before)} and ${JSON.stringify(s)} both map to ${f}`);
      seen.set(f, s);
    }
  });

  test('refuses the empty string', () => {
    assert.throws(() => folderName(''), /must not be empty/);
  });
});

describe('pluginDir', () => {
  test('always lands two levels below the cache folder', () => {
    const cache = '/var/lib/ns-agent/plugins-cache';
    for (const ns of hostile) {
      for (const name of hostile) {
        const dir = pluginDir(cache, ns, name);
        const rel = path.relative(cache, dir);
        assert.ok(!rel.startsWith('..') && !path.isAbsolute(rel), `${ns}/${name} → ${dir}`);
        assert.equal(rel.split(path.sep).length, 2, `${ns}/${name} → ${dir}`);
      }
    }
  });
});
