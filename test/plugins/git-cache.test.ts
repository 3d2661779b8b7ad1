// The plugins cache against real git repositories made on disk with the git CLI.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PluginRepoCache, PluginRepoError, simpleGitFactory, type GitFactory } from '../../src/plugins/git-cache.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { git, TestRepo } from './helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let root: { dir: string; cleanup: () => void };
before(() => {
  root = tempDir('gitcache');
});
after(() => root.cleanup());

let seq = 0;
function setup(over: { allowLocalRepos?: boolean; gitTimeoutSec?: number } = {}) {
  const base = path.join(root.dir, `case${++seq}`);
  const cacheDir = path.join(base, 'cache');
  let gitCalls = 0;
  const counting: GitFactory = (opts) => {
    gitCalls++;
    return simpleGitFactory(opts);
  };
  const cache = new PluginRepoCache({
    cacheDir,
    allowLocalRepos: over.allowLocalRepos ?? true,
    gitTimeoutSec: over.gitTimeoutSec ?? 30,
    logger: silentLogger(),
    gitFactory: counting,
  });
  return { base, cacheDir, cache, gitCalls: () => gitCalls };
}

function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

describe('PluginRepoCache', () => {
  test('clones once into <cache>/<ns>/<name>, readable by everyone, and reads it back without git', async () => {
    const { base, cacheDir, cache, gitCalls } = setup();
    const repo = new TestRepo(base, 'disk-usage');
    const sha = repo.commit({ 'plugin.sh': 'echo "[]"\n', 'lib/helper.sh': 'true\n' });
    const clone = await cache.clone('demo.web', 'disk-usage', repo.url, undefined);
    assert.equal(clone.dir, path.join(cacheDir, 'demo.web', 'disk-usage'));
    assert.equal(clone.commit, sha);
    assert.equal(readFileSync(path.join(clone.dir, 'plugin.sh'), 'utf8'), 'echo "[]"\n');
    for (const p of [cacheDir, path.dirname(clone.dir), clone.dir, path.join(clone.dir, 'lib')]) {
      assert.equal(statSync(p).mode & 0o055, 0o055, `${p} is not 0755-like`);
    }
    assert.equal(statSync(path.join(clone.dir, 'plugin.sh')).mode & 0o044, 0o044);
    assert.deepEqual(readdirSync(path.dirname(clone.dir)), ['disk-usage'], 'no temporary folder left');

    const calls = gitCalls();
    repo.commit({ 'plugin.sh': 'echo "[1]"\n' });
    const cached = await cache.readCached('demo.web', 'disk-usage');
    assert.deepEqual(cached, { dir: clone.dir, url: repo.url, commit: sha });
    assert.equal(gitCalls(), calls, 'reading the cache runs no git');
    assert.equal(readFileSync(path.join(clone.dir, 'plugin.sh'), 'utf8'), 'echo "[]"\n', 'a cached clone is never updated by itself');
  });

  test('update fetches and resets to the remote default branch', async () => {
    const { base, cache } = setup();
    const repo = new TestRepo(base, 'nginx');
    const first = repo.commit({ 'plugin.sh': 'echo v1\n', 'old.txt': 'x' });
    const { dir } = await cache.clone('ns', 'nginx', repo.url, undefined);
    const second = repo.commit({ 'plugin.sh': 'echo v2\n', 'old.txt': null, 'new.txt': 'y' });
    const out = await cache.update('ns', 'nginx', repo.url, undefined);
    assert.deepEqual(out, { from: first, to: second, changed: true });
    assert.equal(readFileSync(path.join(dir, 'plugin.sh'), 'utf8'), 'echo v2\n');
    assert.ok(!existsSync(path.join(dir, 'old.txt')));
    assert.ok(existsSync(path.join(dir, 'new.txt')));
    assert.equal(git(dir, 'rev-parse', 'HEAD'), second);
    assert.deepEqual(await cache.update('ns', 'nginx', repo.url, undefined), { from: second, to: second, changed: false });
    assert.deepEqual(readdirSync(path.dirname(dir)), ['nginx'], 'no temporary folder left');
  });

  test('an update whose remote is unreachable keeps the old tree and says why', async () => {
    const { base, cache } = setup();
    const repo = new TestRepo(base, 'redis');
    const sha = repo.commit({ 'plugin.sh': 'echo old\n' });
    const { dir } = await cache.clone('ns', 'redis', repo.url, undefined);
    const before = listTree(dir);
    renameSync(repo.bare, `${repo.bare}.gone`);
    await assert.rejects(cache.update('ns', 'redis', repo.url, undefined), (err: Error) => {
      assert.ok(err instanceof PluginRepoError);
      assert.match(err.message, new RegExp(`^update failed, still running ${sha.slice(0, 12)}: git fetch failed: .*(does not appear to be a git repository|Could not read)`));
      return true;
    });
    assert.equal(readFileSync(path.join(dir, 'plugin.sh'), 'utf8'), 'echo old\n');
    assert.deepEqual(listTree(dir), before);
    assert.equal((await cache.readCached('ns', 'redis'))?.commit, sha);
    assert.deepEqual(readdirSync(path.dirname(dir)), ['redis'], 'the failed update left nothing behind');
  });

  test('a commit without plugin.sh is refused on update; a repo without one is refused on clone', async () => {
    const { base, cacheDir, cache } = setup();
    const repo = new TestRepo(base, 'tool');
    repo.commit({ 'plugin.sh': 'echo ok\n' });
    const { dir } = await cache.clone('ns', 'tool', repo.url, undefined);
    repo.commit({ 'plugin.sh': null, 'README': 'moved' });
    await assert.rejects(cache.update('ns', 'tool', repo.url, undefined), /still running [0-9a-f]{12}: commit [0-9a-f]{12} has no plugin.sh at its root/);
    assert.equal(readFileSync(path.join(dir, 'plugin.sh'), 'utf8'), 'echo ok\n');

    const bare = new TestRepo(base, 'noscript');
    bare.commit({ 'run.sh': 'echo hi\n' });
    await assert.rejects(cache.clone('ns', 'noscript', bare.url, undefined), /the repo has no plugin.sh at its root/);
    assert.deepEqual(readdirSync(path.join(cacheDir, 'ns')), ['tool'], 'nothing kept of the refused clone');
  });

  test('a registry ref picks a tag, a branch or a commit', async () => {
    const { base, cache } = setup();
    const repo = new TestRepo(base, 'pinned');
    const v1 = repo.commit({ 'plugin.sh': 'echo v1\n' });
    repo.tag('v1.0');
    const v2 = repo.commit({ 'plugin.sh': 'echo v2\n' });
    const stable = repo.commit({ 'plugin.sh': 'echo stable\n' }, 'stable');
    const byTag = await cache.clone('ns', 'pinned', repo.url, 'v1.0');
    assert.equal(byTag.commit, v1);
    assert.equal(readFileSync(path.join(byTag.dir, 'plugin.sh'), 'utf8'), 'echo v1\n');
    assert.equal((await cache.update('ns', 'pinned', repo.url, 'stable')).to, stable);
    assert.equal((await cache.update('ns', 'pinned', repo.url, v2.slice(0, 10))).to, v2);
    await assert.rejects(cache.update('ns', 'pinned', repo.url, 'no-such-branch'), /"no-such-branch" is not a branch, tag or commit/);
  });

  test('hostile URLs and refs are refused before any git process starts', async () => {
    const { base, cacheDir, cache, gitCalls } = setup();
    const hostile = [
      '--upload-pack=touch /tmp/pwned',
      '--upload-pack=touch',
      'ext::sh -c touch% /tmp/pwned',
      'ext::sh',
      'fd::3',
      'file:///../../etc/x.git',
      `file://${base}/../x.git`,
      'https://example.com/../../x.git',
      'user@host:../x.git',
      'ssh://-oProxyCommand=touch/x.git',
    ];
    for (const url of hostile) {
      await assert.rejects(cache.clone('ns', 'x', url, undefined), PluginRepoError, url);
      await assert.rejects(cache.update('ns', 'x', url, undefined), PluginRepoError, url);
    }
    await assert.rejects(cache.clone('ns', 'x', 'https://example.com/x.git', '--upload-pack=touch'), /not a plain branch/);
    assert.equal(gitCalls(), 0, 'no git process was started');
    assert.deepEqual(listTree(cacheDir), [], 'the cache stays empty');
  });

  test('local repos are refused unless allowLocalRepos; git itself is limited to https, ssh (and file when allowed)', async () => {
    const { base, cache, gitCalls } = setup({ allowLocalRepos: false });
    const repo = new TestRepo(base, 'local');
    repo.commit({ 'plugin.sh': 'true\n' });
    await assert.rejects(cache.clone('ns', 'local', repo.url, undefined), /allowLocalRepos is false/);
    await assert.rejects(cache.clone('ns', 'local', repo.bare, undefined), /allowLocalRepos is false/);
    assert.equal(gitCalls(), 0);
    // Past the URL check, the protocol allow-list still stops git from using file://.
    const client = simpleGitFactory({ baseDir: base, signal: AbortSignal.timeout(10_000), inactivityTimeoutMs: 10_000, allowLocalRepos: false });
    await assert.rejects(client.raw(['clone', '--', repo.url, path.join(base, 'sneaky')]), /transport 'file' not allowed/);
    await assert.rejects(client.raw(['clone', '--', 'ext::sh -c true', path.join(base, 'sneaky')]), /transport 'ext' not allowed|not permitted/);
  });

  test('a remote that never answers is given up at gitTimeoutSec', async () => {
    const { cacheDir, cache } = setup({ gitTimeoutSec: 1 });
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s)); // accepts, never speaks
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const t0 = Date.now();
      await assert.rejects(cache.clone('ns', 'silent', `https://127.0.0.1:${port}/silent.git`, undefined), /took longer than plugins.gitTimeoutSec \(1 s\)/);
      assert.ok(Date.now() - t0 < 10_000);
      assert.deepEqual(readdirSync(path.join(cacheDir, 'ns')), [], 'the temporary folder is removed');
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  test('one clone or update per plugin at a time', async () => {
    const { base, cache } = setup();
    const repo = new TestRepo(base, 'busy');
    repo.commit({ 'plugin.sh': 'true\n' });
    const first = cache.clone('ns', 'busy', repo.url, undefined);
    await assert.rejects(cache.clone('ns', 'busy', repo.url, undefined), /already in progress/);
    await first;
  });
});
