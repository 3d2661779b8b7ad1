// The `agent` commands that need no running agent, run in-process through buildProgram (as
// bin/agent runs them, minus the process): config errors with their JSON paths, the resolved
// config with secrets masked, usage errors, help, version, and the exit codes of status and stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, main } from '../../src/cli/program.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** Runs one command line in-process; answers its exit code and everything it printed. */
async function agent(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

/** A folder with a config as small as `check` accepts (nothing is started, so no port is bound). */
function configIn(extra: Record<string, unknown> = {}): { dir: string; file: string } {
  const { dir } = tempDir('cli');
  writeFileSync(path.join(dir, 'registry.json'), JSON.stringify({ hosts: { '*': { namespaces: [] } } }));
  const config = { dataDir: 'data', log: { level: 'info', dir: 'log' }, registry: { source: 'file', file: 'registry.json' }, http: { listen: '127.0.0.1:8080' }, ...extra };
  const file = path.join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify(config));
  return { dir, file };
}

test('check: a wrong type, an unknown key and a missing required field are printed with their paths, exit 2', async () => {
  const { file } = configIn({ dataDir: 7, colour: 'blue', nsq: {} });
  const { code, err } = await agent('check', '-f', file);
  assert.equal(code, EXIT_USAGE);
  assert.match(err, /\$\.dataDir: found number, expected string/);
  assert.match(err, /\$: unknown key "colour"/);
  assert.match(err, /\$\.nsq\.nsqdTcpAddresses: required array is missing/);
});

test('check: a good config prints the resolved config with secrets masked, exit 0', async () => {
  const { dir, file } = configIn({ http: { listen: '127.0.0.1:8080', token: '${CLI_TEST_TOKEN}' } });
  process.env.CLI_TEST_TOKEN = 'very-secret';
  try {
    const { code, out, err } = await agent('check', '-f', file);
    assert.equal(code, EXIT_OK, err);
    assert.doesNotMatch(out + err, /very-secret/);
    assert.match(out, /"token": "\*\*\*"/);
    assert.match(out, new RegExp(`"dataDir": "${path.join(dir, 'data')}"`));
    assert.match(err, /agent\.json: ok/);
  } finally {
    delete process.env.CLI_TEST_TOKEN;
  }
});

test('usage errors exit 2 and say why; --help and version exit 0', async () => {
  const unknown = await agent('frobnicate');
  assert.equal(unknown.code, EXIT_USAGE);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
  const flag = await agent('start', '--bogus-flag');
  assert.equal(flag.code, EXIT_USAGE);
  assert.match(flag.err, /unknown option '--bogus-flag'/);
  const help = await agent('start', '--help');
  assert.equal(help.code, EXIT_OK);
  assert.match(help.out, /--daemon/);
  const v = await agent('version');
  assert.equal(v.code, EXIT_OK);
  assert.match(v.out, /^\d+\.\d+\.\d+\n$/);
});

test('status of an agent that is not running exits 3', async () => {
  const { file } = configIn();
  const { code, out } = await agent('status', '-f', file);
  assert.equal(code, EXIT_NOT_RUNNING);
  assert.match(out, /not running/);
});

test('stop removes a stale pid file with a message', async () => {
  const { dir, file } = configIn();
  const pidFile = path.join(dir, 'data', 'agent.pid');
  mkdirSync(path.dirname(pidFile), { recursive: true });
  writeFileSync(pidFile, '999999\n');
  const { code, out } = await agent('stop', '-f', file);
  assert.equal(code, EXIT_OK);
  assert.match(out, /removed the stale pid file/);
  assert.equal(existsSync(pidFile), false);
});
