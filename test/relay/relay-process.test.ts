// The relay as a separate process, SIGKILLed mid-stream and started again: at-least-once means
// every point arrives (the killed relay's unfinished messages come back from nsqd after the
// message timeout). Redelivered points are duplicates InfluxDB folds (same series and time),
// so the distinct count must equal what was published.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { topicFor } from '../../src/topic-names.ts';
import { nsqdStats, startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { makeMessages, TestWriter } from './nsq-writer.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const RUNNER = fileURLToPath(new URL('../fixtures/relay/run-relay.ts', import.meta.url));

let nsqd: NsqdHandle;
let influx: InfluxdHandle;
const children = new Set<ChildProcess>();

before(async () => {
  [nsqd, influx] = await Promise.all([startNsqd(), startInfluxd({ version: '1.6' })]);
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await stopAll();
});

async function startRelay(file: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const ready = new Promise<void>((resolve) => lines.on('line', (l) => l === 'relay ready' && resolve()));
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`relay exited with ${String(code)} before it was ready: ${stderr}`);
  });
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  return child;
}

void test('relay SIGKILLed mid-stream and restarted: every point arrives', { timeout: 60_000 }, async () => {
  const dir = tempDir('ns-agent-relay-proc-').dir;
  const ns = 'proc.kill';
  const topic = topicFor(ns, 'ns.');
  const file = path.join(dir, 'relay.json');
  writeFileSync(
    file,
    JSON.stringify({
      namespaces: [ns],
      config: {
        dataDir: dir,
        log: { level: 'silent' },
        nsq: { nsqdTcpAddresses: [nsqd.tcpAddress] },
        relay: { enabled: true, messageTimeoutMs: 2000, requeueMinMs: 100, requeueMaxMs: 1000, lookupdPollIntervalSec: 1 },
        sender: { backends: [{ name: 'influx', url: influx.url }], flushIntervalMs: 50 },
      },
    }),
  );
  const total = 40_000;
  const messages = makeMessages(total, 50, { measurement: 'killed' });
  const writer = new TestWriter(nsqd);
  let relay = await startRelay(file);
  const publishing = (async () => {
    for (let i = 0; i < messages.length; i += 20) {
      await writer.publish(topic, ns, messages.slice(i, i + 20));
      await delay(100);
    }
  })();
  try {
    // Kill it while it is busy: some points are in, more are in flight and still to come.
    const deadline = Date.now() + 20_000;
    while ((await influx.count(ns, 'killed').catch(() => 0)) < 5000 && Date.now() < deadline) await delay(50);
    relay.kill('SIGKILL');
    await once(relay, 'exit');
    const atKill = await influx.count(ns, 'killed');
    assert.ok(atKill < total, `the relay had written everything (${atKill}) before it was killed`);
    relay = await startRelay(file);
    await publishing;
    let count = 0;
    const until = Date.now() + 40_000;
    while (Date.now() < until) {
      count = await influx.count(ns, 'killed');
      if (count >= total) break;
      await delay(200);
    }
    assert.equal(count, total);
    const channel = (await nsqdStats(nsqd.httpAddress, topic)).topics[0]?.channels.find((c) => c.channel_name === 'relay');
    assert.ok(channel);
    assert.equal(channel.depth + channel.deferred_count, 0);
    relay.kill('SIGTERM');
    const [code] = (await once(relay, 'exit')) as [number | null];
    assert.equal(code, 0, 'a SIGTERMed relay exits cleanly');
  } finally {
    writer.close();
  }
});
