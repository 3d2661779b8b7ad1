// `agent check` says ok only to configs `agent start` and `agent relay` accept: every rule a part
// enforces when it is built is in the schema, reported all at once with its JSON path, exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentCommand, writeConfig } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('check and start refuse, all at once with their JSON paths, every mistake the parts used to find only when built', async () => {
  const dir = tempDir().dir;
  writeFileSync(path.join(dir, 'registry.json'), JSON.stringify({ hosts: { '*': { namespaces: [] } } }));
  const file = writeConfig(dir, {
    hostname: 'web-1\\',
    dataDir: 'data',
    log: { dir: 'log', pretty: 'never' },
    registry: { source: 'http', url: 'ftp://registry.example:8080' },
    nsq: { nsqdTcpAddresses: ['127.0.0.1:0', '127.0.0.1:70000'], reconnectMinMs: 5000, reconnectMaxMs: 1000 },
    relay: { enabled: true, topicsFrom: 'lookupd', requeueMinMs: 9000, requeueMaxMs: 100 },
    sender: {
      backends: [
        { name: 'a', url: 'influx:8086' },
        { name: 'b', url: 'http://127.0.0.1:8086/api/v2' },
      ],
      retryMinMs: 2000,
      retryMaxMs: 1000,
    },
    http: { listen: '0.0.0.0:1988' },
  });
  const paths = [
    '$.hostname',
    '$.registry.url',
    '$.nsq.nsqdTcpAddresses[0]',
    '$.nsq.nsqdTcpAddresses[1]',
    '$.nsq.reconnectMaxMs',
    '$.relay.requeueMaxMs',
    '$.relay.lookupdHttpAddresses',
    '$.sender.backends[0].url',
    '$.sender.backends[1].url',
    '$.sender.retryMaxMs',
    '$.http.listen',
  ];

  const check = await agentCommand(['check', '-f', file]);
  assert.equal(check.code, 2, check.output);
  for (const p of paths) assert.ok(check.output.includes(`${p}: `), `check does not name ${p}:\n${check.output}`);
  assert.match(check.output, new RegExp(`${paths.length} problems`), check.output);

  const start = await agentCommand(['start', '-f', file]);
  assert.equal(start.code, 2, start.output);
  for (const p of paths) assert.ok(start.output.includes(`${p}: `), `start does not name ${p}:\n${start.output}`);
  // Refused before anything was built: no log, no data folder, no listener.
  assert.equal(existsSync(path.join(dir, 'log')), false, 'start created its log folder');
  assert.equal(existsSync(path.join(dir, 'data')), false, 'start created its data folder');
  assert.doesNotMatch(start.output, /listening/i);

  // `agent relay` runs the relay whatever relay.enabled says: it needs nsqd to consume from.
  const relayFile = writeConfig(dir, { dataDir: 'data', log: { dir: 'log', pretty: 'never' }, registry: { file: 'registry.json' } }, 'relay.json');
  const asAgent = await agentCommand(['check', '-f', relayFile]);
  assert.equal(asAgent.code, 0, asAgent.output);
  const asRelay = await agentCommand(['check', '--relay', '-f', relayFile]);
  assert.equal(asRelay.code, 2, asRelay.output);
  assert.match(asRelay.output, /\$\.relay\.nsqdTcpAddresses: agent relay needs nsqd/);
  const relay = await agentCommand(['relay', '-f', relayFile]);
  assert.equal(relay.code, 2, relay.output);
  assert.match(relay.output, /\$\.relay\.nsqdTcpAddresses: /);
  assert.equal(existsSync(path.join(dir, 'log')), false, 'relay created its log folder');

  // relay.enabled under `agent start` with nothing to consume from used to run no relay, silently.
  const enabledFile = writeConfig(dir, { dataDir: 'data', log: { dir: 'log', pretty: 'never' }, registry: { file: 'registry.json' }, relay: { enabled: true } }, 'enabled.json');
  for (const args of [['check', '-f', enabledFile], ['start', '-f', enabledFile]]) {
    const out = await agentCommand(args);
    assert.equal(out.code, 2, out.output);
    assert.match(out.output, /\$\.relay\.nsqdTcpAddresses: relay\.enabled \(a relay inside agent start\) needs nsqd/);
  }
  assert.equal(existsSync(path.join(dir, 'log')), false, 'start created its log folder');
});

test('the shipped example configs pass check, for start and for the relay role', async () => {
  for (const name of ['agent.example.json', 'agent.nsq.example.json']) {
    const file = fileURLToPath(new URL(`../../config/${name}`, import.meta.url));
    const asAgent = await agentCommand(['check', '-f', file]);
    assert.equal(asAgent.code, 0, `${name}:\n${asAgent.output}`);
  }
  const nsq = fileURLToPath(new URL('../../config/agent.nsq.example.json', import.meta.url));
  const asRelay = await agentCommand(['check', '--relay', '-f', nsq]);
  assert.equal(asRelay.code, 0, asRelay.output);
});
