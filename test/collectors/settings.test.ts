// The per-collector settings of the `collect` section: Telegraf's defaults, typos and bad
// patterns refused with the key's path, and the first release's ignoreFsTypes still read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectSchema, DEFAULT_IGNORE_FS } from '../../src/config/schema.ts';

const issues = (raw: unknown) => {
  const r = collectSchema.safeParse(raw);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

test("defaults are Telegraf's: everything on, percpu and totalcpu, no filters, no protocol stats", () => {
  const c = collectSchema.parse({});
  assert.deepEqual(c.cpu, { enabled: true, percpu: true, totalcpu: true });
  assert.deepEqual(c.disk, { enabled: true, mountPoints: [], ignoreFs: DEFAULT_IGNORE_FS });
  assert.deepEqual(c.diskio, { enabled: true, devices: [] });
  assert.deepEqual(c.net, { enabled: true, interfaces: [], ignoreProtocolStats: true });
  for (const k of ['mem', 'swap', 'system', 'processes'] as const) assert.deepEqual(c[k], { enabled: true });
  for (const t of ['tmpfs', 'devtmpfs', 'devfs', 'iso9660', 'overlay', 'aufs', 'squashfs']) assert.ok(DEFAULT_IGNORE_FS.includes(t), t);
});

test('typos and patterns that cannot be compiled are refused, naming the key', () => {
  assert.deepEqual(issues({ cpu: { percpus: true } }), ["cpu: Unrecognized key(s) in object: 'percpus'"]);
  assert.deepEqual(issues({ net: { interfaces: ['eth{0,1'] } }), ['net.interfaces.0: not a valid pattern: "eth{0,1": "{" is never closed']);
  assert.deepEqual(issues({ diskio: { devices: ['sd[a'] } }), ['diskio.devices.0: not a valid pattern: "sd[a": "[" at position 3 is never closed']);
  assert.deepEqual(issues({ disk: { enabled: 'no' } }), ['disk.enabled: Expected boolean, received string']);
});

test('the first release\'s collect.ignoreFsTypes is read as disk.ignoreFs unless that is set', () => {
  assert.deepEqual(collectSchema.parse({ ignoreFsTypes: ['x'] }).disk.ignoreFs, ['x']);
  assert.deepEqual(collectSchema.parse({ ignoreFsTypes: ['x'], disk: { ignoreFs: ['y'] } }).disk.ignoreFs, ['y']);
});
