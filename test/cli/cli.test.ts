// The `agent` command as an operator uses it: exit codes, config errors with JSON paths,
// foreground start with signals, SIGHUP reload, --daemon with stop and status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { agentCommand, minimalAgentConfig, runAgent, writeConfig } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('check: a wrong type, an unknown key and a missing required field are printed with their paths, exit 2', async () => {
  const dir = tempDir().dir;
  const file = writeConfig(dir, { dataDir: 7, colour: 'blue', nsq: {} });
  const { code, output } = await agentCommand(['check', '-f', file]);
  assert.equal(code, 2);
  assert.match(output, /\$\.dataDir: found number, expected string/);
  assert.match(output, /\$: unknown key "colour"/);
  assert.match(output, /\$\.nsq\.nsqdTcpAddresses: required array is missing/);
});

test('check: a good config prints the resolved config with secrets masked, exit 0', async () => {
  const dir = tempDir().dir;
  const { config } = await minimalAgentConfig(dir);
  const file = writeConfig(dir, { ...config, http: { ...config.http, token: '${CLI_TEST_TOKEN}' } });
  const { code, output } = await agentCommand(['check', '-f', file], { CLI_TEST_TOKEN: 'very-secret' });
  assert.equal(code, 0, output);
  assert.doesNotMatch(output, /very-secret/);
  assert.match(output, /"token": "\*\*\*"/);
  assert.match(output, new RegExp(`"dataDir": "${path.join(dir, 'data')}"`));
});

test('usage errors exit 2; --help and version exit 0', async () => {
  assert.equal((await agentCommand(['frobnicate'])).code, 2);
  assert.equal((await agentCommand(['start', '--bogus-flag'])).code, 2);
  assert.equal((await agentCommand(['start', '--help'])).code, 0);
  const v = await agentCommand(['version']);
  assert.equal(v.code, 0);
  assert.match(v.output, /^\d+\.\d+\.\d+/);
});

test('status of an agent that is not running exits 3', async () => {
  const dir = tempDir().dir;
  const { config } = await minimalAgentConfig(dir);
  const { code, output } = await agentCommand(['status', '-f', writeConfig(dir, config)]);
  assert.equal(code, 3);
  assert.match(output, /not running/);
});

test('SIGHUP applies a new log level; a bad config is refused and the old one kept; SIGTERM stops within 5 s', async () => {
  const dir = tempDir().dir;
  const { config } = await minimalAgentConfig(dir);
  const file = writeConfig(dir, config);
  const run = runAgent(['start', '-f', file]);
  await run.waitFor(/agent started/);
  const pidFile = path.join(dir, 'data', 'agent.pid');
  assert.equal(Number(readFileSync(pidFile, 'utf8')), run.child.pid);

  writeConfig(dir, { ...config, log: { ...config.log, level: 'debug' } });
  run.child.kill('SIGHUP');
  await run.waitFor(/log level changed/);

  writeFileSync(file, '{ "log": { "level": "loud" } }');
  run.child.kill('SIGHUP');
  await run.waitFor(/new config refused, keeping the running one/);

  const t0 = Date.now();
  run.child.kill('SIGTERM');
  const { code } = await run.exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
  assert.match(run.output(), /agent stopped/);
  assert.equal(existsSync(pidFile), false, 'pid file removed');
  const log = readFileSync(path.join(dir, 'log', 'current.log'), 'utf8').trim().split('\n');
  assert.equal(JSON.parse(log.at(-1) as string).msg, 'agent stopped', 'the final log line says so');
});

test('start --daemon returns once the agent runs; status answers; stop waits for the exit and leaves no pid file', async () => {
  const dir = tempDir().dir;
  const { config } = await minimalAgentConfig(dir, {});
  const file = writeConfig(dir, { ...config, log: { ...config.log, pretty: 'never' } });
  const started = await agentCommand(['start', '--daemon', '-f', file]);
  assert.equal(started.code, 0, started.output);
  const pidFile = path.join(dir, 'data', 'agent.pid');
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.match(started.output, new RegExp(`pid ${pid}`));

  const again = await agentCommand(['start', '-f', file]);
  assert.equal(again.code, 1, 'a second start is refused');
  assert.match(again.output, /already running/);

  const status = await agentCommand(['status', '-f', file]);
  assert.equal(status.code, 0, status.output);
  assert.equal(JSON.parse(status.output).pid, pid);

  const stopped = await agentCommand(['stop', '-f', file]);
  assert.equal(stopped.code, 0, stopped.output);
  assert.equal(existsSync(pidFile), false);
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('stop removes a stale pid file with a message', async () => {
  const dir = tempDir().dir;
  const { config } = await minimalAgentConfig(dir);
  const file = writeConfig(dir, config);
  const pidFile = path.join(dir, 'data', 'agent.pid');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.dirname(pidFile), { recursive: true });
  writeFileSync(pidFile, '999999\n');
  const { code, output } = await agentCommand(['stop', '-f', file]);
  assert.equal(code, 0);
  assert.match(output, /removed the stale pid file/);
  assert.equal(existsSync(pidFile), false);
});
