// The escaping the normaliser relies on, checked against the strict parser of a real InfluxDB:
// every hostile character written in a name, tag and field comes back exactly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
});
