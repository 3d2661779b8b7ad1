// A plugin runs as the unprivileged plugin user when the agent is root (the tests run as root).
// With the config laid out as the README says (0600) and the data folder the agent creates
// itself, a plugin must read neither the config nor anything under the data folder.
import { existsSync, statSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/servers.ts';
import { writeConfig } from '../helpers/agent-process.ts';
import { pluginRepo } from '../plugins/helpers.ts';
import { startAgent, stopAgent, type RunningAgent } from '../faults/harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';

const NS = 'modes.ns';

let root: { dir: string; cleanup: () => void };
let agent: RunningAgent;
let repo: string;
let configFile: string;
let dataDir: string;

before(async () => {
  assert.equal(process.getuid?.(), 0, 'this test needs root: plugins only change user when the agent is root');
  // 0755 so the plugin user can enter its own clone under it; the agent makes dataDir itself.
  root = tempDir('modes');
  dataDir = path.join(root.dir, 'data');
  configFile = path.join(root.dir, 'agent.json');
  const probe = (name: string, cmd: string) => `ok=0; ${cmd} >/dev/null 2>&1 && ok=1; items+=("{\\"name\\":\\"${name}\\",\\"value\\":$ok}")`;
  repo = pluginRepo(
    root.dir,
    'snoop',
    [
      '#!/usr/bin/env bash',
      'items=("{\\"name\\":\\"uid\\",\\"value\\":$(id -u)}")',
      probe('config_readable', `cat ${configFile}`),
      probe('datadir_listable', `ls ${dataDir}`),
      probe('log_readable', `cat ${path.join(dataDir, 'log', 'current.log')}`),
      'IFS=,; echo "[${items[*]}]"',
      '',
    ].join('\n'),
  );
  const registry = writeConfig(root.dir, { hosts: { '*': { namespaces: [NS], plugins: { [NS]: [{ repo, interval: 0 }] } } } }, 'registry.json');
  const config = {
    hostname: 'modes-host',
    dataDir: 'data',
    log: { level: 'info', dir: 'data/log', pretty: 'always' },
    registry: { source: 'file', file: registry },
    plugins: { cacheDir: path.join(root.dir, 'cache'), allowLocalRepos: true, runAsUser: 'nobody' },
    http: { listen: `127.0.0.1:${await freePort()}` },
  };
  writeConfig(root.dir, config);
  chmodSync(configFile, 0o600); // as the README says
  agent = await startAgent(root.dir, config);
  chmodSync(configFile, 0o600); // startAgent wrote it again
});

after(async () => {
  if (agent) await stopAgent(agent.run);
  root.cleanup();
});

test('a plugin run as the plugin user can read neither the config nor the data folder', async () => {
  assert.ok(existsSync(configFile) && existsSync(path.join(dataDir, 'log', 'current.log')), 'the files the plugin tries exist');
  const run = () => agent.api.get(`/plugins/run?ns=${encodeURIComponent(NS)}&repo=${encodeURIComponent(repo)}`);
  // The first clone runs in the background; the route says 409 until it is there.
  let res = await run();
  await waitUntil('the plugin is cloned', async () => (res = res.status === 409 ? await run() : res).status !== 409);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  const lines = (res.json?.data as { result?: { lines: string[] } })?.result?.lines ?? (res.json?.data as { lines?: string[] })?.lines ?? [];
  const value = (name: string) => {
    const line = lines.find((l) => l.startsWith(`PLUGIN.snoop.${name},`));
    assert.ok(line, `no ${name} point in ${JSON.stringify(res.json)}`);
    return Number(/ value=([-\d.]+)/.exec(line)?.[1]);
  };
  assert.equal(value('uid'), 65534, 'the plugin ran as nobody');
  assert.equal(value('config_readable'), 0, 'the plugin read the config');
  assert.equal(value('datadir_listable'), 0, 'the plugin listed the data folder');
  assert.equal(value('log_readable'), 0, "the plugin read the agent's log");
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
});
