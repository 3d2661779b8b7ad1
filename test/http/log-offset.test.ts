// GET /log/offset over real HTTP against real files: lines from a byte offset with the next
// offset, only complete lines, caps, and confinement to the log folders (../, absolute paths
// outside, symlinks pointing out, FIFOs), with the token required when one is configured.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, startApi, type TestApi } from './helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const TOKEN = 'log-token';
const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
const enc = encodeURIComponent;

describe('GET /log/offset', () => {
  let api: TestApi;
  let extraDir: string;
  let outside: string;
  let outsideFile: string;

  before(async () => {
    outside = tempDir('ns-agent-outside-').dir;
    outsideFile = path.join(outside, 'secret.log');
    writeFileSync(outsideFile, 'secret\n');
    const base = tempDir('ns-agent-logdirs-').dir;
    extraDir = path.join(base, 'app-logs');
    mkdirSync(extraDir);
    api = await startApi({ http: { token: TOKEN, logDirs: [extraDir], maxLogReadBytes: 1024, maxLogReadLines: 3 } });
    mkdirSync(api.logDir);
    writeFileSync(path.join(api.logDir, 'agent.log'), 'one\ntwo\nthree\nfour\npartial');
    writeFileSync(path.join(extraDir, 'app.log'), 'app line\n');
    symlinkSync(outsideFile, path.join(api.logDir, 'escape.log'));
    symlinkSync(outside, path.join(api.logDir, 'escape-dir'));
    symlinkSync(path.join(api.logDir, 'agent.log'), path.join(api.logDir, 'current.log'));
  });
  after(async () => {
    await api.close();
    rmSync(outside, { recursive: true, force: true });
    rmSync(path.dirname(extraDir), { recursive: true, force: true });
  });

  const read = (query: string) => call(`${api.url}/log/offset?${query}`, auth);

  test('lines from an offset, the next offset, and the end flag; a partial last line waits', async () => {
    const file = path.join(api.logDir, 'agent.log');
    const first = await read(`fpath=${enc(file)}&offset=0&num=2`);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json?.data.lines, ['one', 'two']);
    assert.equal(first.json?.data.nextOffset, 8);
    assert.equal(first.json?.data.eof, false);
    const second = await read(`fpath=${enc(file)}&offset=8&num=10`);
    assert.deepEqual(second.json?.data.lines, ['three', 'four'], 'num is capped at maxLogReadLines (3) and "partial" has no newline yet');
    assert.equal(second.json?.data.nextOffset, 19);
    assert.equal(second.json?.data.eof, true);
    assert.equal(second.json?.data.size, 26);
    appendFileSync(file, ' now done\n');
    const third = await read(`fpath=${enc(file)}&offset=19&num=10`);
    assert.deepEqual(third.json?.data.lines, ['partial now done']);
    assert.equal(third.json?.data.eof, true);
    const past = await read(`fpath=${enc(file)}&offset=99999&num=1`);
    assert.equal(past.status, 200);
    assert.deepEqual(past.json?.data.lines, []);
    assert.ok(past.json?.data.size < 99999, 'size below the offset tells the caller the file was truncated');
  });

  test('the line cap stops before the end: eof is false', async () => {
    const file = path.join(api.logDir, 'many.log');
    writeFileSync(file, 'a\nb\nc\nd\ne\n');
    const r = await read(`fpath=many.log&offset=0&num=100`);
    assert.deepEqual(r.json?.data.lines, ['a', 'b', 'c']);
    assert.equal(r.json?.data.eof, false);
  });

  test('a line longer than maxLogReadBytes comes out cut, so the caller still moves on', async () => {
    const file = path.join(api.logDir, 'long.log');
    writeFileSync(file, `${'x'.repeat(3000)}\nshort\n`);
    const r = await read(`fpath=long.log&offset=0&num=3`);
    assert.equal(r.json?.data.lines[0].length, 1024);
    assert.equal(r.json?.data.truncatedLine, true);
    assert.equal(r.json?.data.nextOffset, 1024);
    assert.equal(r.json?.data.eof, false);
  });

  test('relative paths are inside log.dir; symlinks inside the folders are followed', async () => {
    const rel = await read('fpath=current.log&offset=0&num=1');
    assert.equal(rel.status, 200, rel.text);
    assert.deepEqual(rel.json?.data.lines, ['one']);
    assert.equal(rel.json?.data.file, path.join(api.logDir, 'agent.log'));
    const extra = await read(`fpath=${enc(path.join(extraDir, 'app.log'))}&num=5`);
    assert.equal(extra.status, 200, extra.text);
    assert.deepEqual(extra.json?.data.lines, ['app line']);
  });

  test('paths outside the folders are 403: ../, absolute, symlinked file or folder', async () => {
    const rel = path.relative(api.logDir, outsideFile);
    for (const fpath of [
      rel,
      `../${path.basename(api.logDir)}/../../${path.basename(outside)}/secret.log`,
      outsideFile,
      '/etc/passwd',
      'escape.log',
      'escape-dir/secret.log',
      `${path.join(extraDir, '..', '..')}`,
      '../../../../../../../../etc/hostname',
    ]) {
      const r = await read(`fpath=${enc(fpath)}&offset=0&num=1`);
      assert.equal(r.status, 403, `${fpath}: ${r.text}`);
      assert.match(r.json?.error ?? '', /outside the log folders/);
      assert.doesNotMatch(r.text, /secret\\n|root:/);
    }
    const missingOutside = await read(`fpath=${enc('/nonexistent/dir/x.log')}`);
    assert.equal(missingOutside.status, 403, 'a missing file outside is 403, so the route cannot probe the disk');
  });

  test('missing files inside are 404; folders and FIFOs are 400', async () => {
    const missing = await read('fpath=nope.log');
    assert.equal(missing.status, 404);
    assert.match(missing.json?.error ?? '', /no file "nope.log"/);
    const dir = await read(`fpath=${enc(api.logDir + '/')}`);
    assert.equal(dir.status, 403, 'the folder itself is not a file inside it');
    mkdirSync(path.join(api.logDir, 'sub'), { recursive: true });
    const sub = await read('fpath=sub');
    assert.equal(sub.status, 400);
    assert.match(sub.json?.error ?? '', /not a regular file/);
    execFileSync('mkfifo', [path.join(api.logDir, 'pipe')]);
    const fifo = await read('fpath=pipe');
    assert.equal(fifo.status, 400, 'a FIFO is refused instead of blocking a thread');
  });

  test('bad numbers and a missing fpath are 400 with the fix', async () => {
    for (const q of ['fpath=agent.log&offset=-1', 'fpath=agent.log&offset=abc', 'fpath=agent.log&num=1.5', 'fpath=agent.log&num=1e3', 'fpath=agent.log&offset=99999999999999999999']) {
      const r = await read(q);
      assert.equal(r.status, 400, q);
      assert.match(r.json?.error ?? '', /must be a whole number of (bytes|lines)/);
    }
    const none = await read('offset=0');
    assert.equal(none.status, 400);
    assert.match(none.json?.error ?? '', /"fpath" is required/);
    const nul = await read(`fpath=${enc('agent.log\0.txt')}`);
    assert.equal(nul.status, 400);
  });

  test('the token is required', async () => {
    const r = await call(`${api.url}/log/offset?fpath=agent.log`);
    assert.equal(r.status, 401);
  });

  test('reads outside the folders are counted', async () => {
    const m = await call(`${api.url}/metrics`);
    assert.match(m.text, /nsagent_http_refused_total\{reason="log_outside_dirs"\} [1-9]/);
    assert.match(m.text, /nsagent_http_refused_total\{reason="log_read_capped"\} [1-9]/);
  });
});
