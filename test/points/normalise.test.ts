import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Clock } from '../../src/clock.ts';
import { Normaliser, type NormaliseOutcome } from '../../src/points/normalise.ts';

const NOW_MS = 1_700_000_123_456;
const NOW_S = 1_700_000_123;
const clock: Clock = { now: () => NOW_MS, setTimeout: () => ({}), clearTimeout: () => undefined };
const norm = new Normaliser({ hostname: 'web-01', clock });

function line(metric: unknown, plugin?: string): string {
  const out = norm.normalise(metric, plugin);
  assert.ok(out.ok, `expected a line, got ${JSON.stringify(out)}`);
  return out.line;
}

function refused(metric: unknown): Extract<NormaliseOutcome, { ok: false }> {
  const out = norm.normalise(metric);
  assert.ok(!out.ok, `expected a refusal, got ${JSON.stringify(out)}`);
  return out;
}

describe('normalise: the public metric shape', () => {
  test('value becomes a float field, host tag added, tags sorted, seconds kept', () => {
    assert.equal(
      line({ name: 'qps', timestamp: 1_700_000_000, tags: { api: 'login' }, value: 12.5 }),
      'qps,api=login,host=web-01 value=12.5 1700000000',
    );
  });

  test('integers are written as floats (no "i" suffix), so one field has one type', () => {
    assert.equal(line({ name: 'n', timestamp: 1_700_000_000, value: 12 }), 'n,host=web-01 value=12 1700000000');
    assert.equal(line({ name: 'n', timestamp: 1_700_000_000, value: -0.25 }), 'n,host=web-01 value=-0.25 1700000000');
  });

  test('booleans and strings keep their type', () => {
    assert.equal(line({ name: 'up', timestamp: 1_700_000_000, value: true }), 'up,host=web-01 value=T 1700000000');
    assert.equal(line({ name: 'up', timestamp: 1_700_000_000, value: false }), 'up,host=web-01 value=F 1700000000');
    assert.equal(line({ name: 'ver', timestamp: 1_700_000_000, value: '1.2' }), 'ver,host=web-01 value="1.2" 1700000000');
  });

  test('a host tag the metric carries is kept; an empty one is replaced', () => {
    assert.equal(line({ name: 'm', timestamp: 1_700_000_000, tags: { host: 'db-9' }, value: 1 }), 'm,host=db-9 value=1 1700000000');
    assert.equal(line({ name: 'm', timestamp: 1_700_000_000, tags: { host: '' }, value: 1 }), 'm,host=web-01 value=1 1700000000');
  });

  test('numbers and booleans as tag values become strings; empty tag values are left out', () => {
    assert.equal(
      line({ name: 'm', timestamp: 1_700_000_000, tags: { port: 8080, tls: true, empty: '' }, value: 1 }),
      'm,host=web-01,port=8080,tls=true value=1 1700000000',
    );
  });

  test('multi-field metrics (collectors) keep every field, sorted', () => {
    assert.equal(
      line({ name: 'mem', timestamp: 1_700_000_000, fields: { used: 10, total: 20, ok: true, note: 'x' } }),
      'mem,host=web-01 note="x",ok=T,total=20,used=10 1700000000',
    );
  });

  test('plugin metrics are renamed PLUGIN.<plugin>.<name>, once', () => {
    assert.equal(line({ name: 'lag', timestamp: 1_700_000_000, value: 3 }, 'mysql'), 'PLUGIN.mysql.lag,host=web-01 value=3 1700000000');
    assert.equal(line({ name: 'PLUGIN.mysql.lag', timestamp: 1_700_000_000, value: 3 }, 'mysql'), 'PLUGIN.mysql.lag,host=web-01 value=3 1700000000');
  });
});

describe('normalise: timestamps', () => {
  const ts = (timestamp: unknown): string => line({ name: 't', value: 1, ...(timestamp === 'absent' ? {} : { timestamp }) }).split(' ')[2] as string;

  test('missing, null, 0 and negative become now', () => {
    assert.equal(ts('absent'), String(NOW_S));
    assert.equal(ts(null), String(NOW_S));
    assert.equal(ts(0), String(NOW_S));
    assert.equal(ts(-5), String(NOW_S));
  });

  test('milliseconds, microseconds and nanoseconds (above 1e11) become now', () => {
    assert.equal(ts(1_700_000_000_000), String(NOW_S));
    assert.equal(ts(1_700_000_000_000_000), String(NOW_S));
    assert.equal(ts(1.7e18), String(NOW_S));
    assert.equal(ts(1e11 + 1), String(NOW_S));
  });

  test('seconds beyond what InfluxDB stores (±9,223,372,036 s) are refused, not replaced', () => {
    assert.equal(ts(9_223_372_036), '9223372036');
    for (const t of [9_223_372_037, 9.3e9, 5e10, 1e11]) {
      const out = norm.normalise({ name: 't', value: 1, timestamp: t });
      assert.equal(out.ok, false, String(t));
      assert.equal(!out.ok && out.code, 'bad_timestamp');
      assert.match(!out.ok ? out.reason : '', /beyond the 9223372036 s InfluxDB can store/);
    }
  });

  test('series keys over 65,535 bytes (with the longest field key) and field keys InfluxDB misreads are refused', () => {
    // The limit measured on influxd: escaped key + 4 + longest field key <= 65535.
    const fits = norm.normalise({ name: 'm', tags: { host: 'h', t: 'x'.repeat(65535 - 'm,host=h,t='.length - 4 - 'value'.length) }, value: 1, timestamp: 1_700_000_000 });
    assert.equal(fits.ok, true);
    const over = norm.normalise({ name: 'm', tags: { host: 'h', t: 'x'.repeat(65536 - 'm,host=h,t='.length - 4 - 'value'.length) }, value: 1, timestamp: 1_700_000_000 });
    assert.equal(!over.ok && over.code, 'key_too_long', JSON.stringify(over).slice(0, 200));
    const escaped = norm.normalise({ name: 'm', tags: { host: 'h', t: ' '.repeat(40_000) }, value: 1 });
    assert.equal(!escaped.ok && escaped.code, 'key_too_long', 'escapes count: 40,000 spaces are 80,000 bytes');
    for (const key of ['f\\ g', 'f\\,g', 'f\\=g', 'a\\\\\\ b']) {
      const out = norm.normalise({ name: 'm', fields: { [key]: 1 } });
      assert.equal(!out.ok && out.code, 'bad_field', key);
      assert.match(!out.ok ? out.reason : '', /backslash before/);
    }
    for (const key of ['f\\\\ g', 'a\\b', 'f g', 'f,g=h']) assert.equal(norm.normalise({ name: 'm', fields: { [key]: 1 } }).ok, true, key);
    assert.equal(norm.normalise({ name: 'm', tags: { 'f\\ g': 'v\\ w' }, value: 1 }).ok, true, 'tags take it');
  });

  test('NaN and Infinity become now; fractions are floored; numeric strings are read', () => {
    assert.equal(ts(Number.NaN), String(NOW_S));
    assert.equal(ts(Number.POSITIVE_INFINITY), String(NOW_S));
    assert.equal(ts(1_700_000_000.9), '1700000000');
    assert.equal(ts('1700000000'), '1700000000');
  });

  test('a replaced given timestamp is reported, a missing one is not', () => {
    const given = norm.normalise({ name: 't', value: 1, timestamp: 1_700_000_000_000 });
    const missing = norm.normalise({ name: 't', value: 1 });
    assert.ok(given.ok && missing.ok);
    assert.equal(given.timestampReplaced, true);
    assert.equal(missing.timestampReplaced, false);
  });

  test('a timestamp that is not a number is refused, naming the field', () => {
    assert.match(refused({ name: 't', value: 1, timestamp: 'yesterday' }).reason, /^timestamp: .*"yesterday"/);
    assert.match(refused({ name: 't', value: 1, timestamp: { s: 1 } }).reason, /^timestamp: /);
    assert.equal(refused({ name: 't', value: 1, timestamp: true }).code, 'bad_timestamp');
  });
});

describe('normalise: escaping is the library\'s, and the line stays one line', () => {
  const T = 1_700_000_000;

  test('measurement: spaces and commas escaped; "=" and quotes need none', () => {
    assert.equal(line({ name: 'cpu load,x=1"q"', timestamp: T, value: 1 }), 'cpu\\ load\\,x=1"q",host=web-01 value=1 1700000000');
  });

  test('tag keys and values: spaces, commas and "=" escaped', () => {
    assert.equal(
      line({ name: 'm', timestamp: T, tags: { 'a b,c=d': 'e f,g=h' }, value: 1 }),
      'm,a\\ b\\,c\\=d=e\\ f\\,g\\=h,host=web-01 value=1 1700000000',
    );
  });

  test('field keys: spaces, commas and "=" escaped', () => {
    assert.equal(line({ name: 'm', timestamp: T, fields: { 'x y,z=w': 1 } }), 'm,host=web-01 x\\ y\\,z\\=w=1 1700000000');
  });

  test('string fields: quotes and backslashes escaped', () => {
    assert.equal(line({ name: 'm', timestamp: T, value: 'say "hi" \\ bye\\' }), 'm,host=web-01 value="say \\"hi\\" \\\\ bye\\\\" 1700000000');
  });

  test('backslashes inside names and tags (not at the end) pass through', () => {
    assert.equal(line({ name: 'a\\b', timestamp: T, tags: { 'k\\1': 'v\\2' }, value: 1 }), 'a\\b,host=web-01,k\\1=v\\2 value=1 1700000000');
  });

  test('newlines: escaped in names and tags, written as the two characters \\n in string fields', () => {
    const l = line({ name: 'a\nb', timestamp: T, tags: { t: 'x\ny' }, fields: { s: 'one\ntwo\r\nthree' } });
    assert.equal(l, 'a\\nb,host=web-01,t=x\\ny s="one\\\\ntwo\\\\r\\\\nthree" 1700000000');
    assert.ok(!l.includes('\n') && !l.includes('\r'));
  });

  test('non-ASCII passes through unescaped everywhere', () => {
    assert.equal(
      line({ name: 'température', timestamp: T, tags: { 'région': 'Île-de-France 東京' }, fields: { 'mesure°': 1, texte: 'ça va ✓' } }),
      'température,host=web-01,région=Île-de-France\\ 東京 mesure°=1,texte="ça va ✓" 1700000000',
    );
  });
});

describe('normalise: refusals name the field', () => {
  const cases: Array<[string, unknown, RegExp, string]> = [
    ['not an object', 'qps', /^metric: expected an object/, 'not_object'],
    ['an array', [1], /^metric: expected an object, found an array/, 'not_object'],
    ['null', null, /^metric: /, 'not_object'],
    ['no name', { value: 1 }, /^name: expected a string/, 'bad_name'],
    ['a numeric name', { name: 5, value: 1 }, /^name: expected a string, found 5/, 'bad_name'],
    ['an empty name', { name: '', value: 1 }, /^name: must not be empty/, 'bad_name'],
    ['a name ending in a backslash', { name: 'x\\', value: 1 }, /^name: must not end with a backslash/, 'bad_name'],
    ['a name starting with #', { name: '#x', value: 1 }, /^name: must not start with "#"/, 'bad_name'],
    ['no value', { name: 'x' }, /^value: missing/, 'no_fields'],
    ['empty fields', { name: 'x', fields: {} }, /^value: missing/, 'no_fields'],
    ['a null value', { name: 'x', value: null }, /^value: expected a number, boolean or string, found null/, 'bad_field'],
    ['an object value', { name: 'x', value: { a: 1 } }, /^value: .*an object/, 'bad_field'],
    ['NaN', { name: 'x', value: Number.NaN }, /^value: NaN cannot be stored/, 'bad_field'],
    ['Infinity in fields', { name: 'x', fields: { f: Number.POSITIVE_INFINITY } }, /^fields\.f: Infinity cannot be stored/, 'bad_field'],
    ['value and fields.value', { name: 'x', value: 1, fields: { value: 2 } }, /^value: set twice/, 'bad_field'],
    ['fields not an object', { name: 'x', fields: [1] }, /^fields: expected an object/, 'bad_field'],
    ['a field named time', { name: 'x', fields: { time: 1 } }, /^fields\.time: key "time" is reserved/, 'bad_field'],
    ['an empty field key', { name: 'x', fields: { '': 1 } }, /^fields\."": key must not be empty/, 'bad_field'],
    ['tags not an object', { name: 'x', value: 1, tags: 'a=b' }, /^tags: expected an object of strings/, 'bad_tag'],
    ['an object tag value', { name: 'x', value: 1, tags: { a: { b: 1 } } }, /^tags\.a: expected a string, found an object/, 'bad_tag'],
    ['a null tag value', { name: 'x', value: 1, tags: { a: null } }, /^tags\.a: expected a string, found null/, 'bad_tag'],
    ['a tag value ending in a backslash', { name: 'x', value: 1, tags: { a: 'b\\' } }, /^tags\.a: value must not end with a backslash/, 'bad_tag'],
    ['a tag key ending in a backslash', { name: 'x', value: 1, tags: { 'a\\': 'b' } }, /^tags\.a\\: key must not end with a backslash/, 'bad_tag'],
    ['a tag named time', { name: 'x', value: 1, tags: { time: 'now' } }, /^tags\.time: key "time" is reserved/, 'bad_tag'],
  ];
  for (const [what, metric, reason, code] of cases) {
    test(what, () => {
      const r = refused(metric);
      assert.match(r.reason, reason);
      assert.equal(r.code, code);
    });
  }
});

describe('normaliseBatch', () => {
  test('a refused metric never takes its neighbours down; indexes are the input positions', () => {
    const out = norm.normaliseBatch([
      { name: 'a', value: 1, timestamp: 1_700_000_000 },
      { name: 'b', value: Number.NaN },
      { name: 'c', value: 2, timestamp: 1_700_000_000_000 },
      42,
      { name: 'd', fields: { x: 'y' }, timestamp: 1_700_000_001 },
    ]);
    assert.deepEqual(out.lines, [
      'a,host=web-01 value=1 1700000000',
      `c,host=web-01 value=2 ${NOW_S}`,
      'd,host=web-01 x="y" 1700000001',
    ]);
    assert.deepEqual(
      out.rejected.map((r) => [r.index, r.code]),
      [
        [1, 'bad_field'],
        [3, 'not_object'],
      ],
    );
    assert.equal(out.timestampsReplaced, 1);
  });

  test('the plugin rename applies to every metric of the batch', () => {
    const out = norm.normaliseBatch([{ name: 'a', value: 1, timestamp: 1_700_000_000 }], 'p');
    assert.deepEqual(out.lines, ['PLUGIN.p.a,host=web-01 value=1 1700000000']);
  });
});

test('the constructor refuses a hostname it could not write', () => {
  assert.throws(() => new Normaliser({ hostname: '', clock }), /hostname/);
  assert.throws(() => new Normaliser({ hostname: 'h\\', clock }), /backslash/);
});
