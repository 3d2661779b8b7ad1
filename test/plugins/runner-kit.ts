// Set-up shared by the tests that start real plugin processes (the plugin
// launcher): plugin folders in a temp root, the `nobody` identity, run options with small bounds,
// and waits for killed processes. Call runnerKit() at a test file's top level: it adds the hooks.
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import type { PluginProcessOptions } from '../../src/plugins/plugin-process.ts';
import { resolveRunAs, type RunAsIdentity } from '../../src/plugins/run-as.ts';
import { processGone } from './helpers.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const fixtures = new URL('../fixtures/plugins/', import.meta.url).pathname;

export function runnerKit(prefix: string, defaults: Partial<PluginProcessOptions> = {}) {
  let root: { dir: string; cleanup: () => void } | undefined;
  let identity: RunAsIdentity | undefined;
  before(async () => {
    root = tempDir(prefix);
    identity = (await resolveRunAs({ runAsUser: 'nobody', agentUid: 0 })) ?? undefined;
    assert.ok(identity, 'nobody resolves');
  });
  after(() => root?.cleanup());
  const rootDir = (): string => (root as { dir: string }).dir;
  const nobody = (): RunAsIdentity => identity as RunAsIdentity;
  return {
    rootDir,
    nobody,
    /** The fixture plugin folder test/fixtures/plugins/NAME itself (copy it before changing it). */
    fixtureDir: (name: string): string => path.join(fixtures, name),
    /** A copy of a fixture plugin folder (test/fixtures/plugins/NAME). */
    pluginFolder(fixture: string): string {
      const dir = path.join(rootDir(), `${fixture}-${Math.random().toString(36).slice(2)}`);
      cpSync(path.join(fixtures, fixture), dir, { recursive: true });
      chmodSync(dir, 0o755);
      return dir;
    },
    /** A folder whose plugin.sh is `body`. */
    scriptFolder(body: string): string {
      const dir = path.join(rootDir(), `inline-${Math.random().toString(36).slice(2)}`);
      mkdirSync(dir, { mode: 0o755 });
      writeFileSync(path.join(dir, 'plugin.sh'), body, { mode: 0o644 });
      return dir;
    },
    options(dir: string, over: Partial<PluginProcessOptions> = {}): PluginProcessOptions {
      return {
        dir,
        args: [],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NS: 'demo.web', PLUGIN_NAME: 'x', PLUGIN_TIMEOUT: '5' },
        timeoutMs: 5000,
        killGraceMs: 300,
        maxOutputBytes: 1024 * 1024,
        stderrRingBytes: 1024,
        uid: nobody().uid,
        gid: nobody().gid,
        ...defaults,
        ...over,
      };
    },
    /** SIGKILL is sent; the kernel takes a moment to finish the process off (no event to await). */
    async gone(pid: number): Promise<void> {
      await waitUntil(`pid ${pid} to be gone`, () => processGone(pid), { timeoutMs: 2000 });
    },
    grandchildPid(stderrTail: string): number {
      const m = /grandchild=(\d+)/.exec(stderrTail);
      assert.ok(m, `no grandchild pid in ${JSON.stringify(stderrTail)}`);
      return Number(m[1]);
    },
  };
}
