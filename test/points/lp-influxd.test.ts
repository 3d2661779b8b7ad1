// The escaping the normaliser relies on, checked against the strict parser of a real InfluxDB:
// every hostile character written in a name, tag and field comes back exactly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Point } from '@influxdata/influxdb-client';
import { systemClock } from '../../src/clock.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import { startInfluxd, stopAll, type InfluxdHandle } from '../helpers/servers.ts';

const HOSTILE = 'a b,c=d"e\\f ✓ é';

describe('normalised lines against influxd 1.6', () => {
  let influx: InfluxdHandle;
  const db = 'lp_escape';
  before(async () => {
    influx = await startInfluxd({ version: '1.6' });
    await influx.createDatabase(db);
  });
  after(() => stopAll());

  test('measurement, tag key/value, field key and string value round-trip exactly', async () => {
    const norm = new Normaliser({ hostname: 'h 1,x=y', clock: systemClock });
    const metrics = [
      { name: `m ${HOSTILE}`, timestamp: 1_700_000_000, tags: { [`k ${HOSTILE}`]: `v ${HOSTILE}` }, fields: { [`f ${HOSTILE}`]: `s ${HOSTILE}`, n: 1.5 } },
      { name: 'lines', timestamp: 1_700_000_001, fields: { text: 'one\ntwo\r\nthree' }, tags: { t: 'x' } },
    ];
    const out = norm.normaliseBatch(metrics);
    assert.deepEqual(out.rejected, []);
    const res = await fetch(`${influx.url}/write?db=${db}&precision=s`, { method: 'POST', body: out.lines.join('\n') });
    assert.equal(res.status, 204, await res.text());

    const q = await influx.query(db, `SELECT * FROM /.*/ GROUP BY *`);
    const series = q.results[0]?.series ?? [];
    const hostile = series.find((s) => s.name === `m ${HOSTILE}`);
    assert.ok(hostile, `measurement not found among ${JSON.stringify(series.map((s) => s.name))}`);
    // GROUP BY * lists every tag key of the database; the other measurement's key is empty here.
    const tags = Object.fromEntries(Object.entries(hostile.tags ?? {}).filter(([, v]) => v !== ''));
    assert.deepEqual(tags, { host: 'h 1,x=y', [`k ${HOSTILE}`]: `v ${HOSTILE}` });
    const row = Object.fromEntries(hostile.columns.map((c, i) => [c, hostile.values[0]?.[i]]));
    assert.equal(row[`f ${HOSTILE}`], `s ${HOSTILE}`);
    assert.equal(row.n, 1.5);

    const lines = series.find((s) => s.name === 'lines');
    assert.ok(lines);
    const text = lines.values[0]?.[lines.columns.indexOf('text')];
    // The documented substitution: line breaks in string fields arrive as the characters \n, \r.
    assert.equal(text, 'one\\ntwo\\r\\nthree');
  });

  test('what the normaliser refuses as unstorable, influxd refuses too; what it takes at the edge, influxd takes', async () => {
    const norm = new Normaliser({ hostname: 'h', clock: systemClock });
    const settings = { convertTime: (t: unknown) => (t === undefined ? undefined : String(t)) } as never;
    // Each case: the metric, and the line the lib would write for it were it not refused.
    const keyFits = 'x'.repeat(65535 - 'm,host=h,t='.length - 4 - 'value'.length);
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['timestamp 9223372037 s', { name: 'm', value: 1, timestamp: 9_223_372_037 }, 'm,host=h value=1 9223372037'],
      ['timestamp 9.3e9 s', { name: 'm', value: 1, timestamp: 9.3e9 }, 'm,host=h value=1 9300000000'],
      ['series key one byte over', { name: 'm', tags: { t: `${keyFits}x` }, value: 1, timestamp: 1_700_000_000 }, ''],
      ['field key f\\ g', { name: 'm', fields: { 'f\\ g': 1 }, timestamp: 1_700_000_000 }, ''],
      ['field key f\\,g', { name: 'm', fields: { 'f\\,g': 1 }, timestamp: 1_700_000_000 }, ''],
      ['field key f\\=g', { name: 'm', fields: { 'f\\=g': 1 }, timestamp: 1_700_000_000 }, ''],
      ['field key a\\\\\\ b', { name: 'm', fields: { 'a\\\\\\ b': 1 }, timestamp: 1_700_000_000 }, ''],
    ];
    for (const [what, metric, given] of cases) {
      const out = norm.normalise(metric);
      assert.equal(out.ok, false, `${what} is refused by the normaliser`);
      let line = given;
      if (line === '') {
        const p = new Point(metric.name as string).timestamp(metric.timestamp as number);
        for (const [k, v] of Object.entries((metric.tags ?? {}) as Record<string, string>)) p.tag(k, v);
        p.tag('host', 'h');
        for (const [k, v] of Object.entries((metric.fields ?? { value: metric.value }) as Record<string, number>)) p.floatField(k, v);
        line = p.toLineProtocol(settings) as string;
      }
      const res = await fetch(`${influx.url}/write?db=${db}&precision=s`, { method: 'POST', body: line });
      assert.equal(res.status, 400, `${what}: influxd took ${line.slice(0, 80)}`);
    }
    const taken: Array<[string, Record<string, unknown>]> = [
      ['timestamp 9223372036 s', { name: 'm', value: 1, timestamp: 9_223_372_036 }],
      ['series key at the limit', { name: 'm', tags: { t: keyFits }, value: 1, timestamp: 1_700_000_000 }],
      ['field key f\\\\ g', { name: 'm', fields: { 'f\\\\ g': 1 }, timestamp: 1_700_000_000 }],
      ['tag key and value f\\ g', { name: 'm', tags: { 'f\\ g': 'v\\ w' }, value: 1, timestamp: 1_700_000_000 }],
      ['measurement f\\ g', { name: 'f\\ g', value: 1, timestamp: 1_700_000_000 }],
    ];
    for (const [what, metric] of taken) {
      const out = norm.normalise(metric);
      assert.ok(out.ok, `${what}: ${JSON.stringify(out).slice(0, 200)}`);
      const res = await fetch(`${influx.url}/write?db=${db}&precision=s`, { method: 'POST', body: out.line });
      assert.equal(res.status, 204, `${what}: ${await res.text()}`);
    }
  });
});
