// `agent check` and sender.backends[].kind: an entry without a kind is InfluxDB, a VictoriaMetrics
// entry passes with its own keys, and a wrong kind or another kind's key is refused with its
// JSON path, all at once, exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { agentCommand, writeConfig } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

function config(dir: string, backends: unknown[]): string {
  writeFileSync(path.join(dir, 'registry.json'), JSON.stringify({ hosts: { '*': { namespaces: [] } } }));
  return writeConfig(dir, { dataDir: 'data', log: { dir: 'log', pretty: 'never' }, registry: { file: 'registry.json' }, sender: { mode: 'shard', backends } });
}

test('check accepts VictoriaMetrics backends beside InfluxDB ones, with a kind or without', async () => {
  const { dir } = tempDir('ns-agent-kinds-');
  const file = config(dir, [
    { name: 'influx', url: 'http://127.0.0.1:8086', api: 'v2', org: 'o' },
    { name: 'influx-explicit', kind: 'influxdb', url: 'http://127.0.0.1:8087', createDatabase: false },
    { name: 'vm', kind: 'victoriametrics', url: 'http://127.0.0.1:8428', username: 'writer', password: 'p', timeoutMs: 5000, gzip: false },
    { name: 'vminsert', kind: 'victoriametrics', url: 'https://vminsert.example:8480/insert/0/influx', token: 't', tls: {} },
  ]);
  const check = await agentCommand(['check', '-f', file]);
  assert.equal(check.code, 0, check.output);
});

test('check refuses an unknown kind and keys of another kind, each with its JSON path', async () => {
  const { dir } = tempDir('ns-agent-kinds-');
  const file = config(dir, [
    { name: 'prom', kind: 'prometheus', url: 'http://127.0.0.1:9090' },
    { name: 'vm-api', kind: 'victoriametrics', url: 'http://127.0.0.1:8428', api: 'v2', createDatabase: true },
    { name: 'vm-url', kind: 'victoriametrics', url: 'vm:8428' },
    { name: 'vm-tls', kind: 'victoriametrics', url: 'http://127.0.0.1:8428', tls: {}, password: 'p' },
  ]);
  const check = await agentCommand(['check', '-f', file]);
  assert.equal(check.code, 2, check.output);
  assert.match(check.output, /\$\.sender\.backends\[0\]\.kind: found "prometheus", expected "influxdb" \(the default\) or "victoriametrics"/);
  assert.match(check.output, /\$\.sender\.backends\[1\]: unknown keys "api", "createDatabase"/);
  assert.match(check.output, /\$\.sender\.backends\[2\]\.url: /);
  assert.match(check.output, /\$\.sender\.backends\[3\]\.tls: tls needs an https:\/\/ url/);
  assert.match(check.output, /\$\.sender\.backends\[3\]\.username: password given without username/);
  assert.match(check.output, /5 problems/);
});
