import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePluginOutput } from '../../src/plugins/plugin-output.ts';
import { paramsFromArgs } from '../../src/plugins/builtin.ts';

describe('parsePluginOutput', () => {
  test('a JSON array of metrics', () => {
    const r = parsePluginOutput('[{"name":"a","value":1},{"name":"b","value":2,"tags":{"x":"y"}}]\n');
    assert.ok(r.ok);
    assert.equal(r.metrics.length, 2);
  });

  test('one object is an array of one; empty output is no metrics', () => {
    const one = parsePluginOutput(Buffer.from('{"name":"a","value":1}'));
    assert.ok(one.ok);
    assert.equal(one.metrics.length, 1);
    const none = parsePluginOutput('  \n');
    assert.ok(none.ok);
    assert.equal(none.metrics.length, 0);
  });

  test('garbage and scalars are refused with the start of the output quoted', () => {
    const garbage = parsePluginOutput('this is not JSON\n');
    assert.ok(!garbage.ok);
    assert.match(garbage.error, /^stdout is not JSON .*"this is not JSON"/);
    const scalar = parsePluginOutput('42');
    assert.ok(!scalar.ok);
    assert.match(scalar.error, /found number/);
    const long = parsePluginOutput('x'.repeat(500));
    assert.ok(!long.ok);
    assert.ok(long.error.length < 300);
  });
});

describe('paramsFromArgs', () => {
  test('key=value, values read as JSON when they parse', () => {
    assert.deepEqual(paramsFromArgs(['url=http://x/', 'timeoutMs=500', 'tlsVerify=false', 'urls=["a","b"]']), {
      url: 'http://x/',
      timeoutMs: 500,
      tlsVerify: false,
      urls: ['a', 'b'],
    });
    assert.throws(() => paramsFromArgs(['novalue']), /must be key=value/);
  });
});
