// The file registry (the embedded default): the shipped example is valid and complete, the
// exact host name wins over "*", an edited file is picked up and an unchanged one costs no
// change, a broken file is refused with the path of the field, and a missing file at start
// falls back to the cache.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { registrySchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { FileRegistrySource } from '../../src/registry/file-source.ts';
import { RegistryClient } from '../../src/registry/registry-client.ts';
import type { RegistrySnapshot } from '../../src/registry/types.ts';
import { validateAnswer, POLLER_KINDS } from '../../src/registry/validate.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('nsagent-file-registry-').dir;
const clients: RegistryClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

const example = fileURLToPath(new URL('../../config/registry.example.json', import.meta.url));

function client(file: string, dir: string, hostname = 'web-1') {
  const c = new RegistryClient({
    hostname,
    config: registrySchema.parse({ source: 'file', file }),
    cacheDir: path.join(dir, 'registry'),
    logger: silentLogger(),
  });
  clients.push(c);
  const changes: RegistrySnapshot[] = [];
  c.onChange((s) => changes.push(s));
  return { c, changes };
}

describe('file registry', () => {
  test('config/registry.example.json is valid: two namespaces, port and process checks, http_probe', async () => {
    const source = new FileRegistrySource({ file: example, hostname: 'any-host', maxAnswerBytes: 1 << 20 });
    for (const kind of POLLER_KINDS) {
      const ans = await source.fetch(kind, null);
      assert.equal(ans.status, 'answer');
      if (ans.status !== 'answer') continue;
      const v = validateAnswer(kind, ans.body, { at: ans.at, keyRequired: ans.keyRequired });
      assert.ok(v.ok, `${kind}: ${v.ok ? '' : v.problems.join('; ')}`);
    }
    const dir = path.join(tmp, 'example');
    const { c } = client(example, dir, 'any-host');
    await c.start();
    const s = c.current();
    assert.ok(s.namespaces.length >= 2);
    const checks = Object.values(s.checks);
    assert.ok(checks.some((ch) => ch.ports.length > 0));
    assert.ok(checks.some((ch) => ch.processes.length > 0));
    assert.ok(Object.values(s.plugins).flat().some((p) => p.builtin === 'http_probe'));
    assert.ok(c.status().every((st) => st.lastError === null && st.source === 'registry' && st.location === example));
  });

  test('the exact host name wins over "*"', async () => {
    const dir = path.join(tmp, 'hosts');
    const file = path.join(tmp, 'hosts.json');
    writeFileSync(file, JSON.stringify({ hosts: { '*': { namespaces: ['fleet'] }, 'web-1': { namespaces: ['special'] } } }));
    const one = client(file, `${dir}-1`, 'web-1');
    await one.c.start();
    assert.deepEqual(one.c.current().namespaces, ['special']);
    const other = client(file, `${dir}-2`, 'db-7');
    await other.c.start();
    assert.deepEqual(other.c.current(), { namespaces: ['fleet'], checks: { fleet: { ports: [], processes: [] } }, plugins: { fleet: [] } });
  });

  test('an edited file is picked up; an unchanged one announces nothing; a broken one is refused with its path', async () => {
    const dir = path.join(tmp, 'edit');
    const file = path.join(tmp, 'edit.json');
    const doc = { hosts: { '*': { namespaces: ['a'], checks: { a: { ports: [{ port: 22 }] } } } } };
    writeFileSync(file, JSON.stringify(doc));
    const { c, changes } = client(file, dir);
    await c.start();
    const seen = changes.length;
    await c.pollNow();
    assert.equal(changes.length, seen, 'unchanged file: no change');

    doc.hosts['*'].checks.a.ports.push({ port: 80 });
    writeFileSync(file, JSON.stringify(doc));
    await c.pollNow();
    assert.deepEqual(c.current().checks.a!.ports, [{ port: 22 }, { port: 80 }]);
    assert.equal(changes.length, seen + 1);

    writeFileSync(file, JSON.stringify({ hosts: { '*': { namespaces: ['a'], checks: { a: { ports: [{ port: 99999 }] } } } } }));
    await c.pollNow();
    const checks = c.status().find((s) => s.name === 'checks')!;
    assert.match(checks.lastError!, /\$\.hosts\["\*"\]\.checks\.a\.ports\[0\]\.port: must be <= 65535/);
    assert.deepEqual(c.current().checks.a!.ports, [{ port: 22 }, { port: 80 }], 'the last good answer stays');

    writeFileSync(file, '{"hosts": ');
    await c.pollNow();
    assert.match(c.status()[0]!.lastError!, /not valid JSON/);

    writeFileSync(file, JSON.stringify({ hosts: { 'db-1': { namespaces: [] } } }));
    await c.pollNow();
    assert.match(c.status()[0]!.lastError!, /\$\.hosts: no entry for host "web-1" and no "\*" entry/);
  });

  test('a missing registry file at start falls back to the cached answer', async () => {
    const dir = path.join(tmp, 'missing');
    const file = path.join(tmp, 'missing.json');
    writeFileSync(file, readFileSync(example));
    const first = client(file, dir, 'any-host');
    await first.c.start();
    const snapshot = first.c.current();
    await first.c.stop();
    rmSync(file);
    const second = client(file, dir, 'any-host');
    await second.c.start();
    assert.deepEqual(second.c.current(), snapshot);
    assert.ok(second.c.status().every((s) => s.source === 'cache' && /cannot read the registry file/.test(s.lastError ?? '')));
  });
});
