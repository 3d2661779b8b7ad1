// Registry answer validation on literals: good answers pass (and keep only their part),
// each kind of bad answer is refused with the JSON path of the offending field.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPath, validateAnswer } from '../../src/registry/validate.ts';

const http = { keyRequired: true };

function problems(kind: 'namespaces' | 'checks' | 'plugins', body: unknown, keyRequired = true): string[] {
  const v = validateAnswer(kind, body, { keyRequired });
  assert.equal(v.ok, false, `expected a refusal of ${JSON.stringify(body)}`);
  return v.ok ? [] : v.problems;
}

describe('registry answer validation', () => {
  test('a good host entry gives each poller its part, with defaults filled', () => {
    const entry = {
      namespaces: ['a.web', 'b'],
      checks: { 'a.web': { ports: [{ port: 80, connect: true }] } },
      plugins: { b: [{ builtin: 'http_probe', interval: 30, params: { url: 'http://x' } }, { repo: 'https://git/x.git', interval: 0, params: ['-v'] }] },
    };
    assert.deepEqual(validateAnswer('namespaces', entry, http), { ok: true, value: ['a.web', 'b'] });
    assert.deepEqual(validateAnswer('checks', entry, http), { ok: true, value: { 'a.web': { ports: [{ port: 80, connect: true }], processes: [] } } });
    const p = validateAnswer('plugins', entry, http);
    assert.ok(p.ok);
    assert.deepEqual(p.value.b![1], { repo: 'https://git/x.git', interval: 0, params: ['-v'] });
  });

  test('HTTP answers must carry the poller key; a file host entry may leave checks and plugins out', () => {
    assert.deepEqual(problems('plugins', { plugin: {} }), ['$.plugins: required object is missing', '$: unknown key "plugin"']);
    assert.deepEqual(validateAnswer('plugins', { namespaces: ['a'] }, { keyRequired: false }), { ok: true, value: {} });
    assert.deepEqual(problems('namespaces', {}, false), ['$.namespaces: required array is missing']);
  });

  test('namespace names: non-empty, bounded, no control characters, no path tricks, no duplicates', () => {
    assert.deepEqual(problems('namespaces', { namespaces: [''] }), ['$.namespaces[0]: a namespace name must not be empty']);
    assert.match(problems('namespaces', { namespaces: ['x'.repeat(256)] })[0]!, /^\$\.namespaces\[0\]: a namespace name has at most 255/);
    assert.match(problems('namespaces', { namespaces: ['ok', 'bad\nname'] })[0]!, /^\$\.namespaces\[1\]: .*control characters/);
    assert.match(problems('namespaces', { namespaces: ['a/b'] })[0]!, /must not contain "\/"/);
    assert.match(problems('namespaces', { namespaces: ['..'] })[0]!, /nor be "\." or "\.\."/);
    assert.match(problems('namespaces', { namespaces: [' padded'] })[0]!, /white space/);
    assert.deepEqual(problems('namespaces', { namespaces: ['a', 'b', 'a'] }), ['$.namespaces[2]: a namespace listed twice (first at index 0)']);
    assert.match(problems('checks', { checks: { 'bad\u0007': {} } })[0]!, /^\$\.checks\["bad\\u0007"\]: /);
    assert.match(problems('namespaces', { namespaces: ['__proto__'] })[0]!, /__proto__/);
  });

  test('checks: port range, exactly one of name/cmdline, no unknown keys, no duplicates', () => {
    assert.deepEqual(problems('checks', { checks: { 'a.web': { ports: [{ port: 0 }] } } }), ['$.checks["a.web"].ports[0].port: must be >= 1']);
    assert.deepEqual(problems('checks', { checks: { n: { ports: [{ port: 70000 }] } } }), ['$.checks.n.ports[0].port: must be <= 65535']);
    assert.deepEqual(problems('checks', { checks: { n: { ports: [{ port: '80' }] } } }), ['$.checks.n.ports[0].port: found string, expected number']);
    assert.match(problems('checks', { checks: { n: { processes: [{ name: 'a', cmdline: 'b' }] } } })[0]!, /^\$\.checks\.n\.processes\[0\]: exactly one of "name"/);
    assert.match(problems('checks', { checks: { n: { processes: [{}] } } })[0]!, /exactly one of/);
    assert.deepEqual(problems('checks', { checks: { n: { ports: [], procs: [] } } }), ['$.checks.n: unknown key "procs"']);
    assert.deepEqual(problems('checks', { checks: { n: { ports: [{ port: 22 }, { port: 22 }] } } }), ['$.checks.n.ports[1]: the same port check listed twice (first at index 0)']);
    assert.match(problems('checks', { checks: { n: { ports: [{ port: 22, connect: true, host: 'http://x' }] } } })[0]!, /host must be a host name or an IP address/);
  });

  test('plugin entries: exactly one of repo/builtin, interval a non-negative integer, bounded params', () => {
    const p = (entry: unknown) => problems('plugins', { plugins: { 'demo.web': [entry] } });
    assert.deepEqual(p({ builtin: 'x', interval: -1 }), ['$.plugins["demo.web"][0].interval: must be >= 0']);
    assert.deepEqual(p({ builtin: 'x', interval: 1.5 }), ['$.plugins["demo.web"][0].interval: found float, expected integer']);
    assert.deepEqual(p({ builtin: 'x' }), ['$.plugins["demo.web"][0].interval: required (seconds; 0 = on demand), unless "cron" gives clock times']);
    assert.match(p({ builtin: 'x', repo: 'y', interval: 1 })[0]!, /^\$\.plugins\["demo\.web"\]\[0\]: exactly one of "repo"/);
    assert.match(p({ interval: 1 })[0]!, /exactly one of "repo"/);
    assert.deepEqual(p({ builtin: 'x', interval: 1, timeout: 0 }), ['$.plugins["demo.web"][0].timeout: must be >= 1']);
    assert.deepEqual(p({ builtin: 'x', interval: 1, params: 5 }), ['$.plugins["demo.web"][0].params: expected a list of strings or an object']);
    const ok = validateAnswer('plugins', { plugins: { n: [{ repo: 'https://x', interval: 1, params: ['-n', 3, true] }] } }, http);
    assert.ok(ok.ok);
    assert.deepEqual(ok.value.n![0]!.params, ['-n', '3', 'true'], 'numbers and booleans become argument strings');
    assert.deepEqual(p({ builtin: 'x', interval: 1, color: 'red' }), ['$.plugins["demo.web"][0]: unknown key "color"']);
    assert.match(p({ repo: 'https://x', interval: 1, ref: '--upload-pack=evil' })[0]!, /ref must not start with "-"/);
    assert.match(p({ builtin: 'no spaces', interval: 1 })[0]!, /builtin must be a built-in plugin name/);
  });

  test('every problem is listed, not only the first', () => {
    assert.equal(problems('plugins', { plugins: { a: [{ builtin: 'x', interval: -1 }, { repo: '', interval: 'x' }] } }).length, 3);
  });

  test('paths quote keys that are not identifiers', () => {
    assert.equal(formatPath('$', ['hosts', 'web-1', 'plugins', 'a.b', 0, 'interval']), '$.hosts["web-1"].plugins["a.b"][0].interval');
  });
});
