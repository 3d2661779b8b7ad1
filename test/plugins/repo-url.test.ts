import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkRef, checkRepoUrl } from '../../src/plugins/repo-url.ts';

const remote = { allowLocalRepos: false };
const local = { allowLocalRepos: true };

describe('checkRepoUrl', () => {
  test('accepts https, ssh:// and scp-like URLs and names the plugin after the project', () => {
    const cases: Array<[string, string]> = [
      ['https://git.example.com/ops/disk-usage.git', 'disk-usage'],
      ['https://git.example.com/ops/disk-usage', 'disk-usage'],
      ['https://git.example.com/ops/disk-usage/', 'disk-usage'],
      ['https://git.example.com:8443/a/b/c/redis_check.git', 'redis_check'],
      ['ssh://git@git.example.com/ops/nginx.status.git', 'nginx.status'],
      ['ssh://git.example.com:2222/ops/nginx', 'nginx'],
      ['git@github.com:org/mysql-stats.git', 'mysql-stats'],
      ['deploy@10.0.0.1:/srv/git/ping.git', 'ping'],
    ];
    for (const [url, name] of cases) {
      const r = checkRepoUrl(url, remote);
      assert.ok(r.ok, `${url}: ${r.ok ? '' : r.reason}`);
      assert.equal(r.name, name, url);
      assert.equal(r.local, false);
    }
  });

  test('local paths and file:// only where allowLocalRepos is true', () => {
    for (const url of ['file:///srv/git/p.git', '/srv/git/p.git']) {
      const refused = checkRepoUrl(url, remote);
      assert.ok(!refused.ok);
      assert.match(refused.reason, /allowLocalRepos is false/);
      const allowed = checkRepoUrl(url, local);
      assert.ok(allowed.ok);
      assert.equal(allowed.name, 'p');
      assert.equal(allowed.local, true);
    }
    const relative = checkRepoUrl('repos/p.git', local);
    assert.ok(!relative.ok, 'a relative path is ambiguous and refused');
  });

  test('refuses option injection, remote helpers and traversal before git sees them', () => {
    const hostile: Array<[string, RegExp]> = [
      ['--upload-pack=touch /tmp/pwned', /spaces|starts with "-"/],
      ['-u touch /tmp/pwned', /spaces|starts with "-"/],
      ['--upload-pack=touch', /starts with "-"/],
      ['ext::sh -c touch% /tmp/pwned', /spaces|transport::address/],
      ['ext::sh', /transport::address/],
      ['fd::17', /transport::address/],
      ['fd::0,1/x', /transport::address/],
      ['https://example.com/../../etc/p.git', /"\.\."/],
      ['https://example.com/a/%2e%2e/p.git', /"\.\."/],
      ['git@host:../../p.git', /"\.\."/],
      ['/srv/../etc/p.git', /"\.\."/],
      ['ssh://-oProxyCommand=touch%20x/p.git', /host starts with "-"|not a valid URL/],
      ['-oProxyCommand=x@host:p.git', /starts with "-"/],
      ['user@-host:p.git', /must not start with "-"/],
      ['user@host:-p.git', /must not start with "-"/],
      ['http://example.com/p.git', /not a form this agent accepts/],
      ['git://example.com/p.git', /not a form this agent accepts/],
      ['https://user:secret@example.com/p.git', /credentials/],
      ['https://example.com/p.git?x=1', /"\?" or "#"/],
      ['https://example.com/p .git', /spaces/],
      ['https://example.com/p\n.git', /control/],
      ['https://example.com/', /names no project/],
      ['https://example.com/.hidden.git', /plugin name/],
      ['', /empty/],
    ];
    for (const [url, why] of hostile) {
      for (const opts of [remote, local]) {
        const r = checkRepoUrl(url, opts);
        assert.ok(!r.ok, `${JSON.stringify(url)} should be refused`);
        assert.match(r.reason, why, `${JSON.stringify(url)}: ${r.reason}`);
      }
    }
  });
});

describe('checkRef', () => {
  test('branches, tags and commits pass; options and revision expressions do not', () => {
    for (const ref of ['main', 'release/1.2', 'v1.2.3', 'a1b2c3d4', 'feature_x-y']) assert.ok(checkRef(ref).ok, ref);
    for (const ref of ['-b', '--upload-pack=x', 'a..b', 'HEAD@{1}', 'main^', 'main~1', 'x:y', 'trailing/', 'a//b', 'x.lock', '', ' main']) {
      assert.ok(!checkRef(ref).ok, ref);
    }
  });
});
