// The dead-letter file: JSON lines with the reason, appended in order, rotated past its bound
// with what was overwritten counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../../src/clock.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { DeadLetterLog } from '../../src/sender/dead-letter.ts';
import { tempDir } from '../helpers/temp-dir.ts';

function log(maxFileBytes = 1024 * 1024): DeadLetterLog {
  const dir = path.join(tempDir('ns-agent-dl-').dir, 'nested');
  return new DeadLetterLog({ dir, fileName: 'rejected.jsonl', maxFileBytes, clock: systemClock, logger: silentLogger() });
}

function read(file: string): Array<Record<string, string>> {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);
}

void test('records are appended as JSON lines, in order, with a time, the folder created on demand', async () => {
  const dl = log();
  await Promise.all([
    dl.append([{ namespace: 'a', backend: 'b', reason: 'r1', line: 'm v= 1' }]),
    dl.append([
      { namespace: 'a', backend: 'b', reason: 'r2', line: 'x\ny "quoted"' },
      { topic: 't', reason: 'no header', line: 'raw' },
    ]),
  ]);
  const got = read(dl.file);
  assert.deepEqual(
    got.map((r) => [r.reason, r.line]),
    [
      ['r1', 'm v= 1'],
      ['r2', 'x\ny "quoted"'],
      ['no header', 'raw'],
    ],
  );
  assert.ok(!Number.isNaN(Date.parse(got[0]?.time ?? '')));
  assert.equal(dl.status().records, 3);
});

void test('past maxFileBytes the file rotates to .1; later rotations overwrite it and count the loss', async () => {
  const dl = log(1024);
  const rec = (i: number) => ({ namespace: 'n', reason: 'bad', line: `line ${i} ${'x'.repeat(300)}` });
  for (let i = 0; i < 9; i++) await dl.append([rec(i)]);
  const st = dl.status();
  assert.equal(st.records, 9);
  // About 370 bytes a record, 1024 per file: two records a file, rotated at the third.
  assert.equal(st.rotations, 4);
  assert.ok(st.discardedBytes > 0);
  assert.ok(existsSync(`${dl.file}.1`));
  const kept = [...read(`${dl.file}.1`), ...read(dl.file)].map((r) => r.line?.split(' ')[1]);
  assert.deepEqual(kept, ['6', '7', '8']);
});

void test('a file that cannot be written rejects the append and counts the failure', async () => {
  // A folder under a regular file: ENOTDIR. (Not /proc: Node 20's recursive mkdir spins there.)
  const file = path.join(tempDir('ns-agent-dl-').dir, 'a-file');
  writeFileSync(file, '');
  const dl = new DeadLetterLog({ dir: path.join(file, 'sub'), fileName: 'x.jsonl', maxFileBytes: 4096, clock: systemClock, logger: silentLogger() });
  await assert.rejects(dl.append([{ reason: 'r', line: 'l' }]));
  assert.equal(dl.status().failures, 1);
  assert.throws(() => new DeadLetterLog({ dir: 'relative', fileName: 'x', maxFileBytes: 4096, clock: systemClock, logger: silentLogger() }), /absolute/);
});
