// The `agent` command as a real process, for what needs one: foreground start with signals,
// SIGHUP reload, --daemon with stop and status. The commands that start nothing (check, usage,
// status and stop of an agent that is not running) run in-process in commands.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { agentCommand, minimalAgentConfig, runAgent, writeConfig } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('SIGHUP applies a new log level; a bad config is refused and the old one kept; SIGTERM stops it cleanly', async () => {
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

  run.child.kill('SIGTERM');
  const { code, signal } = await run.exited;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, 'exited on its own, not killed');
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
