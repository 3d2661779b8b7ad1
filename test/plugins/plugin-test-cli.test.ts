// `agent plugin test DIR` as a user runs it: the real CLI in a child process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AGENT_BIN } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const agent = AGENT_BIN;
const fixtures = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));
let root: { dir: string; cleanup: () => void };
let config: string;

before(() => {
  root = tempDir('plugin-cli');
  config = path.join(root.dir, 'agent.json');
  writeFileSync(config, JSON.stringify({ hostname: 'cli-host', dataDir: 'data', plugins: { maxOutputBytes: 65536 } }));
});
after(() => root.cleanup());

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(agent, ['plugin', 'test', '-f', config, ...args], { timeout: 30_000, env: { ...process.env, NS_AGENT_FROM_SOURCE: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

function folder(fixture: string): string {
  const dir = path.join(root.dir, fixture);
  cpSync(path.join(fixtures, fixture), dir, { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}

describe('agent plugin test', () => {
  test('prints the line protocol the run would publish and exits 0 on success', async () => {
    const r = await cli(folder('ok'), '--ns', 'demo.web', '--param', 'cli-arg');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^PLUGIN\.ok\.answer,arg=cli-arg,host=cli-host value=42 \d{10}$/);
    assert.match(lines[1] ?? '', /^PLUGIN\.ok\.uid,host=cli-host value=65534 \d{10}$/);
    assert.match(lines[2] ?? '', /^PLUGIN\.ok,host=cli-host duration_ms=[\d.]+,error="",exit_code=0,metric_count=2,.*success=T,timed_out=F \d{10}$/);
    assert.match(r.stderr, /^# ok: demo\.web\/ok as nobody/);
  });

  test('a failing plugin prints its failed result point and the reason, and exits 1', async () => {
    const r = await cli(folder('garbage'));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^PLUGIN\.garbage,host=cli-host .*error="stdout is not JSON .*success=F/);
    assert.match(r.stderr, /# FAILED: .*\n.*\n# error: stdout is not JSON/);
    const missing = await cli(path.join(root.dir, 'no-such-plugin'), '--json');
    assert.equal(missing.code, 1);
    const result = JSON.parse(missing.stdout) as { success: boolean; error: string; lines: string[] };
    assert.equal(result.success, false);
    assert.match(result.error, /is not a folder/);
    assert.equal(result.lines.length, 1);
  });
});
