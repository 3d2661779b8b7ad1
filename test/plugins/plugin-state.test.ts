import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import { PluginStateStore } from '../../src/plugins/plugin-state.ts';
import { FakeClock } from '../helpers/clocks.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let root: { dir: string; cleanup: () => void };
before(() => {
  root = tempDir('state');
});
after(() => root.cleanup());

describe('PluginStateStore', () => {
  test('disable persists atomically, expires after autoEnableAfterSec, and reloads', async () => {
    const file = path.join(root.dir, 'a', 'plugins-state.json');
    const clock = new FakeClock();
    const store = new PluginStateStore({ file, autoEnableAfterSec: 60, clock, logger: silentLogger() });
    await store.load();
    assert.equal(store.isEnabled('ns', 'r'), true);
    const until = await store.disable('ns', 'r');
    assert.equal(until, clock.now() + 60_000);
    assert.deepEqual(readdirSync(path.dirname(file)), ['plugins-state.json'], 'no temp file left behind');

    const reloaded = new PluginStateStore({ file, autoEnableAfterSec: 60, clock, logger: silentLogger() });
    await reloaded.load();
    assert.equal(reloaded.disabledUntil('ns', 'r'), until);
    assert.equal(reloaded.nextExpiry(), until);
    clock.advance(60_000);
    assert.equal(reloaded.isEnabled('ns', 'r'), true, 'expired means enabled, even before the sweep');
    assert.deepEqual((await reloaded.expireDue()).map((d) => d.repo), ['r']);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { version: 1, disabled: [] });
    assert.equal(await reloaded.enable('ns', 'r'), false);
  });

  test('concurrent changes are written in order; the file ends with the last state', async () => {
    const file = path.join(root.dir, 'b.json');
    const store = new PluginStateStore({ file, autoEnableAfterSec: 60, clock: new FakeClock(), logger: silentLogger() });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.disable('ns', `r${i}`)));
    await store.enable('ns', 'r3');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { disabled: Array<{ repo: string }> };
    assert.equal(saved.disabled.length, 19);
    assert.ok(!saved.disabled.some((d) => d.repo === 'r3'));
  });

  test('an unreadable file is logged and ignored: every plugin starts enabled', async () => {
    const file = path.join(root.dir, 'corrupt.json');
    writeFileSync(file, '{ not json');
    const store = new PluginStateStore({ file, autoEnableAfterSec: 60, clock: new FakeClock(), logger: silentLogger() });
    await store.load();
    assert.equal(store.isEnabled('ns', 'r'), true);
    assert.equal(store.nextExpiry(), null);
  });
});
