// Refusal warnings on a fake clock: the first at once, then one per namespace and kind a minute
// with how many were refused since, and what is left on stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RefusalLog } from '../../src/sender/refusal-log.ts';
import { captureLogger } from '../helpers/capture-log.ts';
import { FakeClock } from '../helpers/clocks.ts';

const MSG = 'backend refused points; dead-lettered';

void test('20,000 refused points in bursts: one warning per namespace and kind a minute, each with the count since', () => {
  const clock = new FakeClock();
  const { logger, records, count } = captureLogger();
  const log = new RefusalLog({ backend: 'b', intervalMs: 60_000, clock, logger });
  for (let i = 0; i < 20_000; i++) log.note('a', 'field-type-conflict', 1, 'HTTP 400: partial write: field type conflict');
  log.note('a', 'unparsable', 3, 'HTTP 400: unable to parse');
  log.note('b', 'field-type-conflict', 2, 'HTTP 400: partial write: field type conflict');
  assert.equal(count(MSG), 3, 'the first of each namespace and kind at once');
  assert.deepEqual(
    records.map((r) => [r.namespace, r.kind, r.points]),
    [
      ['a', 'field-type-conflict', 1],
      ['a', 'unparsable', 3],
      ['b', 'field-type-conflict', 2],
    ],
  );
  clock.advance(60_000);
  assert.equal(count(MSG), 4, 'a minute later: what was refused since, once');
  assert.deepEqual([records[3]?.namespace, records[3]?.kind, records[3]?.points, records[3]?.sinceMs], ['a', 'field-type-conflict', 19_999, 60_000]);
  clock.advance(60_000);
  assert.equal(count(MSG), 4, 'nothing refused since: no warning');
  log.note('a', 'field-type-conflict', 5, 'again');
  assert.equal(count(MSG), 5, 'quiet for a whole interval: the next refusal warns at once');
  log.note('a', 'field-type-conflict', 7, 'again');
  log.flush();
  assert.equal(count(MSG), 6);
  assert.equal(records[5]?.points, 7, 'stop reports what was refused since the last warning');
  assert.equal(clock.pending(), 0);
});
