// Reading the config file as an operator's mistakes (or another user) can present it: a FIFO, an
// oversized file, a reload while the path is a FIFO, and a config that other users can read
// while it holds a secret in clear. The agent never hangs, and says what to fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { minimalAgentConfig, runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// A generous liveness bound: tsx start-up takes a second or two; a blocked read never ends.
const PROMPT_MS = 20_000;

/** Runs a short command, killing it if it outlives the liveness bound. */
async function promptCommand(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const run: AgentRun = runAgent(args, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), PROMPT_MS);
  const { code, signal } = await run.exited;
  clearTimeout(timer);
  assert.equal(signal, null, `"agent ${args.join(' ')}" did not end within ${PROMPT_MS} ms; output:\n${run.output()}`);
  return { code, output: run.output() };
}

test('check -f on a FIFO exits 2 at once with a sentence, instead of waiting for a writer', async () => {
  const dir = tempDir().dir;
  const fifo = path.join(dir, 'agent.json');
  execFileSync('mkfifo', [fifo]);
  const { code, output } = await promptCommand(['check', '-f', fifo]);
  assert.equal(code, 2, output);
  assert.match(output, /is a FIFO \(named pipe\), not a regular file; point -f at the JSON config file itself/);
});

test('check -f on a folder or an oversized file exits 2 with a sentence', async () => {
  const dir = tempDir().dir;
  const folder = await promptCommand(['check', '-f', dir]);
  assert.equal(folder.code, 2, folder.output);
  assert.match(folder.output, /is a folder, not a regular file/);
  const big = path.join(dir, 'big.json');
  writeFileSync(big, `{"hostname":"${'x'.repeat(5 * 1024 * 1024)}"}`);
  const huge = await promptCommand(['check', '-f', big]);
  assert.equal(huge.code, 2, huge.output);
  assert.match(huge.output, /more than the 4194304 bytes a config may have/);
});

test('SIGHUP while the config path is a FIFO: refused with a log line, the agent keeps answering and keeps its config', async () => {
  const dir = tempDir().dir;
  const { port, config } = await minimalAgentConfig(dir);
  const file = writeConfig(dir, config);
  const run = runAgent(['start', '-f', file]);
  try {
    await run.waitFor(/agent started/);
    rmSync(file);
    execFileSync('mkfifo', [file]);
    run.child.kill('SIGHUP');
    await run.waitFor(/new config refused, keeping the running one/, PROMPT_MS);
    assert.match(run.output(), /FIFO/);
    const health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5000) });
    assert.equal(health.status, 200);

    // A good file again: the next SIGHUP applies it.
    rmSync(file);
    writeConfig(dir, { ...config, log: { ...config.log, level: 'debug' } });
    run.child.kill('SIGHUP');
    await run.waitFor(/log level changed/, PROMPT_MS);
  } finally {
    // An agent stuck in a blocking read never runs its SIGTERM handler: SIGKILL it after a while.
    run.child.kill('SIGTERM');
    const timer = setTimeout(() => run.child.kill('SIGKILL'), PROMPT_MS);
    await run.exited;
    clearTimeout(timer);
  }
});

test('check warns (exit 0) when a config readable by others holds a token in clear (not when 0600 or ${ENV}), and when dataDir is open', async () => {
  const dir = tempDir().dir;
  const { config } = await minimalAgentConfig(dir);
  const clear = writeConfig(dir, { ...config, http: { ...config.http, token: 'in-clear-token' } }, 'clear.json');
  chmodSync(clear, 0o644);
  const warned = await promptCommand(['check', '-f', clear]);
  assert.equal(warned.code, 0, warned.output);
  assert.match(warned.output, /warning: .*clear\.json is readable by other users \(mode 644\) and holds \$\.http\.token in clear: run "chmod 600 /);
  assert.doesNotMatch(warned.output, /in-clear-token/);

  chmodSync(clear, 0o600);
  const quiet = await promptCommand(['check', '-f', clear]);
  assert.equal(quiet.code, 0, quiet.output);
  assert.doesNotMatch(quiet.output, /warning/);

  const viaEnv = writeConfig(dir, { ...config, http: { ...config.http, token: '${CFG_TEST_TOKEN}' } }, 'env.json');
  chmodSync(viaEnv, 0o644);
  const env = await promptCommand(['check', '-f', viaEnv], { CFG_TEST_TOKEN: 'from-env' });
  assert.equal(env.code, 0, env.output);
  assert.doesNotMatch(env.output, /warning/);

  mkdirSync(path.join(dir, 'data'), { mode: 0o755 });
  chmodSync(path.join(dir, 'data'), 0o755);
  const openData = await promptCommand(['check', '-f', clear]);
  assert.equal(openData.code, 0, openData.output);
  assert.match(openData.output, /warning: dataDir .*data is open to other users \(mode 755\), plugins included: run "chmod 700 /);
  const inside = writeConfig(dir, { ...config, plugins: { cacheDir: 'data/plugins' } }, 'inside.json');
  chmodSync(inside, 0o600);
  const cacheInside = await promptCommand(['check', '-f', inside]);
  assert.match(cacheInside.output, /warning: dataDir .* move plugins\.cacheDir out of it \(the plugin user must reach its clones\), then run "chmod 700 /);
  chmodSync(path.join(dir, 'data'), 0o700);
  assert.doesNotMatch((await promptCommand(['check', '-f', clear])).output, /warning/);

  const backend = writeConfig(
    dir,
    { ...config, sender: { backends: [{ name: 'b', url: 'http://u:pw@127.0.0.1:8086' }] } },
    'backend.json',
  );
  chmodSync(backend, 0o640);
  const url = await promptCommand(['check', '-f', backend]);
  assert.equal(url.code, 0, url.output);
  assert.match(url.output, /mode 640\) and holds \$\.sender\.backends\[0\]\.url in clear/);
});
