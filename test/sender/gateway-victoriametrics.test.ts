// The gateway sender against real victoria-metrics (single node): shard mode over two servers,
// a line VictoriaMetrics refuses (the whole body is refused; the line is found by halves and
// dead-lettered, the rest written) and HTTP Basic credentials (a wrong password is retryable).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { senderSchema, type ConfigInput } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { InfluxGatewaySender } from '../../src/sender/gateway-sender.ts';
import { RetryableWriteError } from '../../src/sender/types.ts';
import { startVictoriaMetrics, stopAll, type VictoriaMetricsHandle, type VmSeries } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

type SenderInput = NonNullable<ConfigInput['sender']>;

let a: VictoriaMetricsHandle;
let b: VictoriaMetricsHandle;
let locked: VictoriaMetricsHandle;
const senders: InfluxGatewaySender[] = [];

before(async () => {
  [a, b, locked] = await Promise.all([
    startVictoriaMetrics(),
    startVictoriaMetrics(),
    startVictoriaMetrics({ basicAuth: { username: 'writer', password: 's3cret' } }),
  ]);
});
after(async () => {
  await Promise.all(senders.map((s) => s.stop()));
  await stopAll();
});

async function sender(input: SenderInput): Promise<InfluxGatewaySender> {
  const config = senderSchema.parse({ flushIntervalMs: 50, retryMinMs: 20, retryMaxMs: 200, ...input });
  const deadLetterDir = tempDir('sender-vm').dir;
  const s = new InfluxGatewaySender({ config: { ...config, deadLetterDir }, logger: silentLogger() });
  senders.push(s);
  await s.start();
  return s;
}

function points(n: number, measurement: string, hosts: number, t0 = 1_700_000_000): string[] {
  return Array.from({ length: n }, (_, i) => `${measurement},host=h${i % hosts} value=${i} ${t0 + i}`);
}

/** host tag → samples of that series. */
function byHost(series: VmSeries[]): Map<string, number> {
  return new Map(series.map((s) => [s.metric.host ?? '', s.values.length]));
}

void test('shard mode across two victoria-metrics: every series on exactly one node, the union complete', async () => {
  const s = await sender({
    mode: 'shard',
    backends: [
      { name: 'a', kind: 'victoriametrics', url: a.url },
      { name: 'b', kind: 'victoriametrics', url: b.url },
    ],
  });
  const data = points(2000, 'cpu', 200);
  assert.deepEqual(await s.write('sharded', data), { written: 2000, deadLettered: 0 });
  const [sa, sb] = await Promise.all([a, b].map(async (h) => byHost(await h.exportSeries('cpu_value{db="sharded"}'))));
  if (!sa || !sb) throw new Error('no export');
  for (const host of sa.keys()) assert.ok(!sb.has(host), `series host=${host} on both nodes`);
  assert.equal(sa.size + sb.size, 200);
  assert.equal([...sa.values(), ...sb.values()].reduce((x, y) => x + y, 0), 2000);
  assert.ok(sa.size > 40 && sb.size > 40, `split ${sa.size}/${sb.size}`);
  for (const host of sa.keys()) assert.equal(s.backendFor('sharded', `cpu,host=${host} value=1`), 'a');
  for (const host of sb.keys()) assert.equal(s.backendFor('sharded', `cpu,host=${host} value=1`), 'b');
});

void test('a line VictoriaMetrics cannot parse: dead-lettered with its answer, every other line written', async () => {
  const s = await sender({ backends: [{ name: 'a', kind: 'victoriametrics', url: a.url }] });
  const good = points(300, 'mem', 10);
  const bad = 'mem,host=broken';
  const out = await s.write('refusals', [...good.slice(0, 123), bad, ...good.slice(123)]);
  assert.deepEqual(out, { written: 300, deadLettered: 1 });
  const series = await a.exportSeries('mem_value{db="refusals"}');
  assert.equal(
    series.reduce((n, x) => n + x.values.length, 0),
    300,
  );
  const file = (s.status().deadLetter as { file: string }).file;
  const records = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);
  assert.equal(records.length, 1);
  assert.equal(records[0]?.line, bad);
  assert.equal(records[0]?.namespace, 'refusals');
  assert.match(records[0]?.reason ?? '', /^HTTP 400: .*incorrect influx line "mem,host=broken": cannot find Whitespace/);
});

void test('HTTP Basic credentials: accepted with the right password; a wrong one is retryable, nothing dead-lettered', async () => {
  const right = await sender({ backends: [{ name: 'v', kind: 'victoriametrics', url: locked.url, username: 'writer', password: 's3cret' }] });
  assert.deepEqual(await right.write('auth', points(50, 'net', 5)), { written: 50, deadLettered: 0 });
  const series = await locked.exportSeries('net_value{db="auth"}');
  assert.equal(
    series.reduce((n, x) => n + x.values.length, 0),
    50,
  );

  const wrong = await sender({
    backends: [{ name: 'v', kind: 'victoriametrics', url: locked.url, username: 'writer', password: 'nope' }],
    downAfterFailures: 1,
  });
  await assert.rejects(wrong.write('auth', points(5, 'net', 5, 1_700_001_000)), (err: unknown) => {
    assert.ok(err instanceof RetryableWriteError, String(err));
    assert.match(err.message, /HTTP 401/);
    return true;
  });
  assert.equal((wrong.status().deadLetter as { records: number }).records, 0);
});
