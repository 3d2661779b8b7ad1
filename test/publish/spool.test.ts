import assert from 'node:assert/strict';
import { readdirSync, statSync, truncateSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Clock } from '../../src/clock.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Spool, decodeBody, encodeRecord, type SpoolEntry, type SpoolOptions, type SpoolRecord } from '../../src/publish/spool.ts';
import { tempDir, type TempDir } from '../helpers/temp-dir.ts';

const dirs: TempDir[] = [];
after(() => {
  for (const d of dirs) d.cleanup();
});

/** A spool folder of its own, removed after the file's tests. */
function spoolDir(): string {
  const d = tempDir('spool');
  dirs.push(d);
  return d.dir;
}

/** Real timers, with a "now" that tests can move forward to age records. */
class ShiftedClock implements Clock {
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  setTimeout(fn: () => void, ms: number) {
    return setTimeout(fn, ms);
  }
  clearTimeout(h: unknown): void {
    clearTimeout(h as NodeJS.Timeout);
  }
}

function spoolAt(dir: string, opts: Partial<SpoolOptions> = {}, clock: Clock = new ShiftedClock()): Spool {
  return new Spool({
    dir,
    maxBytes: 1024 * 1024,
    maxAgeSec: 3600,
    commitIntervalMs: 2,
    segmentBytes: 4096,
    logger: silentLogger(),
    clock,
    ...opts,
  });
}

function record(i: number, ns = 'shop', size = 100, createdAtMs = Date.now()): SpoolRecord {
  return {
    namespace: ns,
    messages: [Buffer.from(`# ns=${ns}\n${`m v=${i} ${i}`.padEnd(size, 'x')}`), Buffer.from(`# ns=${ns}\nsecond ${i}`)],
    lines: 2,
    createdAtMs,
  };
}

async function readAllEntries(spool: Spool): Promise<SpoolEntry[]> {
  const out: SpoolEntry[] = [];
  for (let e = await spool.readNext(); e; e = await spool.readNext()) out.push(e);
  return out;
}

const segFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.seg'));

describe('spool records', () => {
  test('encode/decode round-trips namespace, messages, lines and time', () => {
    const rec = record(7, 'équipe/ä b');
    const parts = encodeRecord(rec);
    const buf = Buffer.concat(parts);
    const body = buf.subarray(8);
    assert.equal(buf.readUInt32LE(0), body.length);
    const back = decodeBody(body);
    assert.equal(back.namespace, rec.namespace);
    assert.equal(back.lines, 2);
    assert.equal(back.createdAtMs, rec.createdAtMs);
    assert.deepEqual(back.messages.map(String), rec.messages.map(String));
    assert.throws(() => decodeBody(body.subarray(0, body.length - 1)), /truncated/);
  });
});

describe('Spool', () => {
  test('appends are read back in order across segments; acked segments are deleted', async () => {
    const dir = spoolDir();
    const spool = spoolAt(dir);
    await spool.open();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => spool.append(record(i))));
    assert.ok(results.every((r) => r === 'committed'));
    assert.ok(segFiles(dir).length > 1, 'several segments');
    assert.equal(spool.status().appendedLines, 120);
    const entries = await readAllEntries(spool);
    assert.deepEqual(
      entries.map((e) => e.messages[0]?.toString().split('\n')[1]?.split(' ')[1]),
      Array.from({ length: 60 }, (_, i) => `v=${i}`),
    );
    for (const e of entries) spool.ack(e);
    assert.equal(spool.bytes(), 0);
    assert.ok(spool.isEmpty());
    await spool.close();
    assert.deepEqual(segFiles(dir), []);
  });

  test('a record is not readable before its group commit', async () => {
    const dir = spoolDir();
    const spool = spoolAt(dir, { commitIntervalMs: 1000 });
    await spool.open();
    const pending = spool.append(record(1));
    // The write lands long before the 1 s commit; it has no event of its own: poll for it.
    const deadline = Date.now() + 5000;
    while (spool.status().appendedRecords === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.equal(spool.status().appendedRecords, 1);
    assert.equal(await spool.readNext(), undefined);
    assert.equal(await pending, 'committed');
    const e = await spool.readNext();
    assert.equal(e?.lines, 2);
    await spool.close();
  });

  test('what is left survives a reopen, from where the acks had got to', async () => {
    const dir = spoolDir();
    const first = spoolAt(dir);
    await first.open();
    for (let i = 0; i < 30; i++) assert.equal(await first.append(record(i)), 'committed');
    const read = await readAllEntries(first);
    for (const e of read.slice(0, 10)) first.ack(e);
    await first.close();

    const second = spoolAt(dir);
    await second.open();
    const rest = await readAllEntries(second);
    assert.deepEqual(
      rest.map((e) => e.messages[1]?.toString().split('\n')[1]),
      Array.from({ length: 20 }, (_, i) => `second ${i + 10}`),
    );
    // New appends after a reopen go after the old ones.
    await second.append(record(99));
    const more = await readAllEntries(second);
    assert.equal(more[0]?.messages[1]?.toString().split('\n')[1], 'second 99');
    for (const e of [...rest, ...more]) second.ack(e);
    assert.ok(second.isEmpty());
    await second.close();
  });

  test('a record torn by a crash is skipped and counted; the records before it are intact', async () => {
    const dir = spoolDir();
    const spool = spoolAt(dir, { segmentBytes: 1024 * 1024 });
    await spool.open();
    for (let i = 0; i < 3; i++) await spool.append(record(i));
    await spool.close();
    const [seg] = segFiles(dir);
    const file = path.join(dir, seg as string);
    truncateSync(file, statSync(file).size - 5);

    const again = spoolAt(dir);
    await again.open();
    const entries = await readAllEntries(again);
    assert.equal(entries.length, 2);
    assert.equal(again.status().corruptSegments, 1);
    for (const e of entries) again.ack(e);
    assert.ok(again.isEmpty());
    await again.close();
    assert.deepEqual(segFiles(dir), []);
  });

  test('a full spool refuses appends (counted) and takes them again once drained', async () => {
    const dir = spoolDir();
    const spool = spoolAt(dir, { maxBytes: 2000, segmentBytes: 1000 });
    await spool.open();
    const results: string[] = [];
    for (let i = 0; i < 20; i++) results.push(await spool.append(record(i)));
    const committed = results.filter((r) => r === 'committed').length;
    assert.ok(committed > 0 && committed < 20, results.join(','));
    assert.ok(spool.bytes() <= 2000);
    assert.equal(spool.status().refusedLines, (20 - committed) * 2);
    for (const e of await readAllEntries(spool)) spool.ack(e);
    assert.equal(await spool.append(record(100)), 'committed');
    await spool.close();
  });

  test('the byte cap holds for concurrent appends too', async () => {
    const dir = spoolDir();
    const spool = spoolAt(dir, { maxBytes: 2000, segmentBytes: 1000 });
    await spool.open();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => spool.append(record(i))));
    assert.ok(results.includes('full'));
    assert.ok(spool.bytes() <= 2000, `${spool.bytes()} bytes`);
    await spool.close();
  });

  test('records older than maxAgeSec are dropped on read, counted', async () => {
    const dir = spoolDir();
    const clock = new ShiftedClock();
    const spool = spoolAt(dir, { maxAgeSec: 60 }, clock);
    await spool.open();
    await spool.append(record(1, 'a', 100, clock.now() - 120_000));
    await spool.append(record(2, 'a', 100, clock.now()));
    const entries = await readAllEntries(spool);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.messages[1]?.toString().split('\n')[1], 'second 2');
    assert.equal(spool.status().expiredLines, 2);
    await spool.close();
  });

  test('expireOld() deletes whole segments past maxAgeSec while nothing is replayed', async () => {
    const dir = spoolDir();
    const clock = new ShiftedClock();
    const first = spoolAt(dir, { maxAgeSec: 60, segmentBytes: 1000 }, clock);
    await first.open();
    for (let i = 0; i < 10; i++) await first.append(record(i));
    await first.close();
    // Files from an earlier run, last written two minutes ago.
    const old = new Date(Date.now() - 120_000);
    for (const f of segFiles(dir)) utimesSync(path.join(dir, f), old, old);

    const spool = spoolAt(dir, { maxAgeSec: 60, segmentBytes: 1000 }, clock);
    await spool.open();
    assert.ok(spool.status().oldestAgeSec >= 0);
    await spool.append(record(50));
    const dropped = await spool.expireOld();
    assert.equal(dropped, 20);
    assert.equal(spool.status().expiredLines, 20);
    const rest = await readAllEntries(spool);
    assert.equal(rest.length, 1);
    assert.equal(rest[0]?.messages[1]?.toString().split('\n')[1], 'second 50');
    await spool.close();
  });

  test('status reports bytes, segments and the age of the oldest segment', async () => {
    const dir = spoolDir();
    const clock = new ShiftedClock();
    const spool = spoolAt(dir, {}, clock);
    await spool.open();
    assert.equal(spool.status().oldestAgeSec, 0);
    await spool.append(record(1));
    clock.offsetMs = 90_000;
    const s = spool.status();
    assert.ok(s.bytes > 0);
    assert.equal(s.segments, 1);
    assert.ok(s.oldestAgeSec >= 89 && s.oldestAgeSec <= 91, String(s.oldestAgeSec));
    await spool.close();
  });

  test('options that cannot work are refused before any I/O', () => {
    assert.throws(() => spoolAt('', {}), /dir/);
    assert.throws(() => spoolAt(spoolDir(), { maxBytes: 0 }), /maxBytes/);
    assert.throws(() => spoolAt(spoolDir(), { segmentBytes: 0 }), /segmentBytes/);
  });
});

describe('Spool outage figure', () => {
  test('outageSec = free room ÷ the decayed offered rate; null without traffic', async () => {
    const clock = new ShiftedClock();
    const spool = spoolAt(spoolDir(), { maxBytes: 1_000_000, rateWindowSec: 10 }, clock);
    await spool.open();
    assert.equal(spool.status().outageSec, null, 'no traffic yet');
    // A steady 10 000 bytes/s for many windows: the decayed rate converges on it.
    for (let i = 0; i < 600; i++) {
      clock.offsetMs += 100;
      spool.noteOffered(1000);
    }
    const st = spool.status();
    assert.ok(Math.abs(st.offeredBytesPerSec - 10_000) < 600, `rate ${st.offeredBytesPerSec}`);
    assert.ok(st.freeBytes <= 1_000_000 && st.freeBytes > 0);
    assert.ok(Math.abs((st.outageSec as number) - st.freeBytes / 10_000) <= 10, `outage ${st.outageSec} s`);
    // Appends take room: the figure shrinks with what the spool holds.
    assert.equal(await spool.append(record(1, 'shop', 200_000)), 'committed');
    const after = spool.status();
    assert.ok(after.freeBytes <= 1_000_000 - 200_000, `free ${after.freeBytes}`);
    assert.ok((after.outageSec as number) < (st.outageSec as number));
    // Traffic stops: the rate fades and the figure goes back to "no traffic".
    clock.offsetMs += 3_600_000;
    assert.equal(spool.status().outageSec, null);
    await spool.close();
  });
});
