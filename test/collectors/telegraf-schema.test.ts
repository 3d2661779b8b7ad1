// Drop-in for Telegraf: the agent writes into a database that already holds Telegraf's data, and
// Telegraf into one that holds the agent's, with no field-type conflict either way, and the field
// sets (names and types) per measurement are Telegraf's. The reference is Telegraf's own output
// (test/fixtures/procroot/telegraf-system-inputs.lp: Telegraf at b27263146617, gopsutil v4.26.7,
// default inputs on a 2-core Linux VM); its timestamps are moved to just
// before the agent runs, so both land in the same shard (InfluxDB checks field types per shard).
// A real agent process (in-process relay, gateway sender) writes to a real influxd 1.8 and 1.6.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { minimalAgentConfig, runAgent, writeConfig } from '../helpers/agent-process.ts';
import { quoteIdent, startInfluxd, stopAll, type InfluxdHandle, type InfluxVersion } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';

const REFERENCE = fileURLToPath(new URL('../fixtures/procroot/telegraf-system-inputs.lp', import.meta.url));
const MEASUREMENTS = ['cpu', 'disk', 'diskio', 'mem', 'net', 'processes', 'swap', 'system'];
/** Telegraf writes these only when the device did I/O between two gathers (the reference's did none). */
const IO_DEPENDENT = new Set(['io_await', 'io_svctm']);

after(() => stopAll());

/** The reference lines with their timestamps moved so that the last one is `endNs`. */
function shiftedReference(endNs: bigint): { body: string; lastNs: bigint } {
  const lines = readFileSync(REFERENCE, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const stamps = lines.map((l) => BigInt(l.slice(l.lastIndexOf(' ') + 1)));
  const last = stamps.reduce((a, b) => (b > a ? b : a));
  const shift = endNs - last;
  const body = lines.map((l, i) => `${l.slice(0, l.lastIndexOf(' '))} ${(stamps[i] as bigint) + shift}`).join('\n');
  return { body, lastNs: endNs };
}

async function write(influx: InfluxdHandle, db: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${influx.url}/write?db=${encodeURIComponent(db)}&precision=ns`, { method: 'POST', body });
  return { status: res.status, text: await res.text() };
}

/** measurement → field → type, as InfluxDB stored them. */
async function fieldTypes(influx: InfluxdHandle, db: string): Promise<Map<string, Map<string, string>>> {
  const res = await influx.query(db, 'SHOW FIELD KEYS');
  const out = new Map<string, Map<string, string>>();
  for (const s of res.results[0]?.series ?? []) out.set(s.name, new Map(s.values.map((v) => [String(v[0]), String(v[1])])));
  return out;
}

function describeTypes(m: Map<string, string> | undefined): string {
  return [...(m ?? new Map<string, string>()).entries()].map(([k, t]) => `${k}:${t}`).sort().join(' ');
}

for (const version of ['1.8', '1.6'] as InfluxVersion[]) {
  describe(`Telegraf and the agent share an influxd ${version} database`, () => {
    test('no field-type conflict either way; the same field names and types per measurement', async () => {
      const influx = await startInfluxd({ version });
      const dir = tempDir(`telegraf-schema-${version}-`).dir;
      const [REF, SHARED, AGENT] = ['tg_ref', 'tg_shared', 'tg_agent'];
      for (const db of [REF, SHARED, AGENT]) await influx.createDatabase(db);

      // Telegraf's data first, a minute before now: the agent's points follow it in the same shard.
      const ref = shiftedReference(BigInt(Date.now() - 60_000) * 1_000_000n);
      for (const db of [REF, SHARED]) {
        const r = await write(influx, db, ref.body);
        assert.equal(r.status, 204, `reference into ${db}: ${r.text}`);
      }

      const { port, config: agentConfig } = await minimalAgentConfig(dir, {
        hostname: 'benchhost',
        collect: { systemIntervalSec: 1, checksIntervalSec: 60 },
        sender: { backends: [{ name: 'influx', url: influx.url, api: 'v1' }], flushIntervalMs: 100 },
      }, { hosts: { '*': { namespaces: [SHARED, AGENT], checks: {}, plugins: {} } } });
      const config = writeConfig(dir, agentConfig);
      const agent = runAgent(['start', '-f', config]);
      await agent.waitFor(/agent started/);
      // Three system collections: the second and later carry cpu and diskio's io_util.
      await waitUntil('three system collections', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/me/status`);
        const status = ((await res.json()) as { data: { scheduler: { namespaces: Record<string, { runs: number }> } } }).data;
        return (status.scheduler.namespaces['*']?.runs ?? 0) >= 3 ? true : undefined;
      }, { timeoutMs: 60_000, everyMs: 200 });
      agent.child.kill('SIGTERM'); // flushes what the sender holds, then exits
      assert.equal((await agent.exited).code, 0, agent.output().slice(-3000));

      // Nothing refused: InfluxDB answers a type conflict with 400, which the sender dead-letters.
      const deadDir = path.join(dir, 'data', 'deadletter');
      const dead = existsSync(deadDir) ? readdirSync(deadDir).filter((f) => statSync(path.join(deadDir, f)).size > 0) : [];
      assert.deepEqual(dead, [], dead.map((f) => readFileSync(path.join(deadDir, f), 'utf8').slice(0, 2000)).join('\n'));
      assert.doesNotMatch(agent.output(), /field type conflict/);

      // The agent's points are in the shared database, after Telegraf's, in every measurement.
      for (const m of MEASUREMENTS) {
        const res = await influx.query(SHARED, `SELECT count(*) FROM ${quoteIdent(m)} WHERE time > ${ref.lastNs}`);
        const counts = (res.results[0]?.series?.[0]?.values[0] ?? []).slice(1).map(Number);
        assert.ok(counts.some((c) => c > 0), `${m}: no agent point in the database Telegraf wrote first`);
      }

      // Same names and types, measured on databases each wrote alone.
      const telegraf = await fieldTypes(influx, REF);
      const ours = await fieldTypes(influx, AGENT);
      assert.deepEqual([...telegraf.keys()].sort(), MEASUREMENTS);
      for (const m of MEASUREMENTS) {
        const agentOnly = new Map(ours.get(m));
        for (const f of IO_DEPENDENT) {
          if (agentOnly.has(f)) assert.equal(agentOnly.get(f), 'float', `${m}.${f}`);
          agentOnly.delete(f);
        }
        assert.equal(describeTypes(agentOnly), describeTypes(telegraf.get(m)), `${m}: fields and types`);
      }

      // The reverse: Telegraf's lines into the database the agent wrote first.
      const reverse = await write(influx, AGENT, ref.body);
      assert.equal(reverse.status, 204, `reference after the agent: ${reverse.text}`);
    });
  });
}
