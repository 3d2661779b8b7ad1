// The package as an operator gets it: `npm pack` (its prepack build to dist/ included), `npm
// install` of the tarball into an empty folder, then the installed `agent` command run from an
// unrelated folder: version, check, start (until /health answers), stop.
// The pack runs in a staged copy of the package so that its dist/ never appears in the shared
// working tree (bin/agent prefers dist/ when present, which would shadow src/ for every test).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string; files: string[] };
// What the pack reads: the package's "files" (its top-level entries), and the build's inputs.
const STAGED = ['package.json', 'tsconfig.json', 'tsconfig.build.json', ...PKG.files.filter((f) => !f.startsWith('!')).map((f) => f.replace(/\/$/, ''))];

describe('npm pack → npm install → agent', { timeout: 240_000 }, () => {
  let root: string;
  let agentBin: string;
  let tarballFiles: string[];

  before(async () => {
    root = tempDir('ns-agent-pack-').dir;
    const stage = path.join(root, 'stage');
    mkdirSync(stage);
    for (const entry of STAGED) {
      if (existsSync(path.join(REPO, entry)) && entry !== 'dist') cpSync(path.join(REPO, entry), path.join(stage, entry), { recursive: true });
    }
    // The prepack build needs the dev dependencies (tsc): borrow the repo's.
    symlinkSync(path.join(REPO, 'node_modules'), path.join(stage, 'node_modules'));
    const packed = await run('npm', ['pack', '--json', '--pack-destination', root], { cwd: stage, maxBuffer: 16 * 2 ** 20 });
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = path.join(root, info[0]?.filename ?? 'missing.tgz');
    tarballFiles = info[0]?.files.map((f) => f.path) ?? [];
    assert.ok(!existsSync(path.join(stage, 'dist')), 'postpack removes the build output');

    const install = path.join(root, 'install');
    mkdirSync(install);
    writeFileSync(path.join(install, 'package.json'), JSON.stringify({ name: 'pack-test-host', private: true }));
    await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--omit=dev', '--loglevel=error'], {
      cwd: install,
      maxBuffer: 16 * 2 ** 20,
    });
    agentBin = path.join(install, 'node_modules', '.bin', 'agent');
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  test('the tarball holds the compiled CLI, the sources, configs and the unit, and no tests', () => {
    for (const f of ['bin/agent', 'dist/src/cli/main.js', 'dist/goplugins/index.js', 'src/agent.ts', 'config/ns-agent.service', 'config/agent.example.json', 'README.md', 'package.json']) {
      assert.ok(tarballFiles.includes(f), `${f} is in the tarball`);
    }
    assert.deepEqual(tarballFiles.filter((f) => /\.test\.|^test\/|^bench\/|^scripts\//.test(f)), [], 'no tests, benches or dev scripts');
  });

  test('agent version, check, start and stop work from another folder', async () => {
    const elsewhere = path.join(root, 'elsewhere');
    const site = path.join(root, 'site');
    mkdirSync(elsewhere);
    mkdirSync(site);
    const port = await freePort();
    writeFileSync(
      path.join(site, 'registry.json'),
      JSON.stringify({ hosts: { '*': { namespaces: ['pack.test'], checks: { 'pack.test': { ports: [{ port }] } } } } }),
    );
    const configFile = path.join(site, 'agent.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        hostname: 'pack-host',
        dataDir: 'data',
        log: { dir: 'log', pretty: 'never' },
        registry: { source: 'file', file: 'registry.json' },
        collect: { systemIntervalSec: 1 },
        http: { listen: `127.0.0.1:${port}` },
      }),
    );
    const opts = { cwd: elsewhere, env: { ...process.env, NODE_OPTIONS: '', NS_AGENT_FROM_SOURCE: '' } };

    const version = await run(agentBin, ['version'], opts);
    assert.equal(version.stdout.trim(), PKG.version);
    const check = await run(agentBin, ['check', '-f', configFile], opts);
    assert.match(check.stderr, /: ok/);

    const child = spawn(agentBin, ['start', '-f', configFile], { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      // Not our event to await: the agent binds when it is ready; poll /health with a deadline.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
        if (ok) break;
        if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the installed agent did not answer /health:\n${output}`);
        await delay(100);
      }
      const status = (await (await fetch(`http://127.0.0.1:${port}/me/status`)).json()) as { data: { version: string; hostname: string } };
      assert.equal(status.data.version, PKG.version);
      assert.equal(status.data.hostname, 'pack-host');

      const stop = await run(agentBin, ['stop', '-f', configFile], opts);
      assert.match(stop.stdout, /stopped \(pid \d+\)/);
      assert.equal(await exited, 0, `the agent exits 0 on stop:\n${output}`);
      // Data and logs live where the config says, relative to the config file, not the cwd.
      assert.ok(existsSync(path.join(site, 'log')) && readdirSync(path.join(site, 'log')).length > 0, 'logs under the config folder');
      assert.ok(existsSync(path.join(site, 'data', 'lp')), 'line-protocol files under the config folder');
      assert.deepEqual(readdirSync(elsewhere), [], 'nothing written to the cwd');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
