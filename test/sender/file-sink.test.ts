import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import { FileSink, fileBaseFor, type FileSinkOptions } from '../../src/sender/file-sink.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A sink in <tmp>/root/lp, so the test can see whether anything lands beside the folder. */
function setup(opts: Partial<FileSinkOptions> = {}) {
  const root = tempDir('file-sink-').dir;
  dirs.push(root);
  const dir = path.join(root, 'lp');
  const sink = new FileSink({ dir, maxFileBytes: 64 * 1024, maxFiles: 3, logger: silentLogger(), ...opts });
  return { root, dir, sink };
}

describe('FileSink', () => {
  test('appends line protocol to one file per namespace, one line per line', async () => {
    const { dir, sink } = setup();
    await sink.start();
    assert.deepEqual(await sink.write('shop', ['a v=1 1', 'b v=2 2']), { written: 2, deadLettered: 0 });
    await sink.write('search', ['c v=3 3']);
    await sink.write('shop', ['d v=4 4']);
    await sink.stop();
    assert.equal(readFileSync(path.join(dir, 'shop.lp'), 'utf8'), 'a v=1 1\nb v=2 2\nd v=4 4\n');
    assert.equal(readFileSync(path.join(dir, 'search.lp'), 'utf8'), 'c v=3 3\n');
    assert.deepEqual(sink.status(), { mode: 'file', dir, namespaces: 2, linesWritten: 4, bytesWritten: 32, rotations: 0, writeErrors: 0 });
  });

  test('no namespace can name a file outside the folder', async () => {
    const { root, dir, sink } = setup();
    await sink.start();
    const hostile = ['../../etc/passwd', '../x', 'a/b', '/abs', '.', '..', '...', 'C:\\win', 'nul\0byte', 'é東京', 'x'.repeat(300), ' lead space'];
    for (const ns of hostile) await sink.write(ns, [`m v=1 1`]);
    await sink.stop();
    assert.deepEqual(readdirSync(root), ['lp']);
    const files = readdirSync(dir);
    assert.equal(files.length, hostile.length, 'one file each: no two namespaces share one');
    for (const f of files) assert.match(f, /^[.A-Za-z0-9_-]{1,64}\.lp$/);
    assert.equal(new Set(hostile.map(fileBaseFor)).size, hostile.length);
  });

  test('files rotate by size and only maxFiles are kept', async () => {
    const { dir, sink } = setup({ maxFileBytes: 1024, maxFiles: 3 });
    await sink.start();
    const line = (i: number): string => `m,host=h value=${i} ${String(1_700_000_000 + i)}`.padEnd(99, 'x');
    for (let i = 0; i < 100; i++) await sink.write('ns', [line(i)]);
    await sink.stop();
    assert.deepEqual(readdirSync(dir).sort(), ['ns.lp', 'ns.lp.1', 'ns.lp.2']);
    const kept = ['ns.lp.2', 'ns.lp.1', 'ns.lp'].flatMap((f) => readFileSync(path.join(dir, f), 'utf8').trimEnd().split('\n'));
    for (const f of readdirSync(dir)) assert.ok(readFileSync(path.join(dir, f)).length <= 1024);
    // The newest lines, in order, with nothing torn.
    assert.deepEqual(kept, Array.from({ length: kept.length }, (_, k) => line(100 - kept.length + k)));
    assert.ok((sink.status().rotations as number) > 0);
  });

  test('concurrent writes to one namespace keep whole lines, in call order', async () => {
    const { dir, sink } = setup();
    await sink.start();
    await Promise.all(Array.from({ length: 50 }, (_, i) => sink.write('ns', [`a v=${i} 1`, `b v=${i} 2`])));
    await sink.stop();
    const lines = readFileSync(path.join(dir, 'ns.lp'), 'utf8').trimEnd().split('\n');
    assert.deepEqual(lines, Array.from({ length: 50 }, (_, i) => [`a v=${i} 1`, `b v=${i} 2`]).flat());
  });

  test('open files stay bounded by maxOpenFiles', async () => {
    const { dir, sink } = setup({ maxOpenFiles: 2 });
    await sink.start();
    for (let round = 0; round < 3; round++) {
      await Promise.all(['a', 'b', 'c', 'd', 'e'].map((ns) => sink.write(ns, [`m v=${round} 1`])));
    }
    await sink.stop();
    for (const ns of ['a', 'b', 'c', 'd', 'e']) assert.equal(readFileSync(path.join(dir, `${ns}.lp`), 'utf8'), 'm v=0 1\nm v=1 1\nm v=2 1\n');
  });

  test('write before start or after stop is refused; stop is idempotent', async () => {
    const { sink } = setup();
    await assert.rejects(sink.write('ns', ['a v=1 1']), /not running/);
    await sink.start();
    await sink.stop();
    await sink.stop();
    await assert.rejects(sink.write('ns', ['a v=1 1']), /not running/);
  });

  test('options that cannot work are refused', () => {
    assert.throws(() => setup({ maxFiles: 0 }), /maxFiles/);
    assert.throws(() => setup({ maxFileBytes: 10 }), /maxFileBytes/);
  });
});
