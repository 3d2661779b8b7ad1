// The relay end to end on real servers: messages on namespace topics in nsqd → relay → gateway
// sender → influxd, counted back with InfluxQL per namespace database. Also: influxd down for
// 10 s mid-stream loses nothing; a message without a namespace header is dead-lettered; a new
// namespace is picked up without a restart; topics found through nsqlookupd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { relaySchema, senderSchema, type ConfigInput } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { topicFor } from '../../src/topic-names.ts';
import { createRelay, INVALID_MESSAGES_FILE, type Relay } from '../../src/relay/relay.ts';
import type { NamespaceSource } from '../../src/relay/topic-source.ts';
import { InfluxGatewaySender } from '../../src/sender/gateway-sender.ts';
import { startInfluxd, startNsqd, startNsqlookupd, stopAll, topicDepth, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { makeMessages, TestWriter } from './nsq-writer.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

type RelayInput = NonNullable<ConfigInput['relay']>;
type SenderInput = NonNullable<ConfigInput['sender']>;

let nsqd: NsqdHandle;
let influx: InfluxdHandle;
let writer: TestWriter;
const running: Array<{ stop(): Promise<void> }> = [];

before(async () => {
  [nsqd, influx] = await Promise.all([startNsqd(), startInfluxd({ version: '1.6' })]);
  writer = new TestWriter(nsqd);
});
after(async () => {
  for (const r of running.reverse()) await r.stop();
  writer.close();
  await stopAll();
});

class Namespaces implements NamespaceSource {
  private listeners: Array<() => void> = [];
  constructor(private list: string[]) {}
  current(): string[] {
    return this.list;
  }
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
  set(list: string[]): void {
    this.list = list;
    for (const l of this.listeners) l();
  }
}

interface Rig {
  relay: Relay;
  sender: InfluxGatewaySender;
  deadLetterDir: string;
  channel: string;
  metrics: Registry;
}

let rigs = 0;
async function rig(opts: { namespaces?: NamespaceSource; relay?: RelayInput; sender?: SenderInput; nsqd?: NsqdHandle[] } = {}): Promise<Rig> {
  const deadLetterDir = tempDir('ns-agent-relay-').dir;
  const channel = `relay${++rigs}`;
  const metrics = new Registry();
  const senderCfg = senderSchema.parse({
    backends: [{ name: 'influx', url: influx.url }],
    flushIntervalMs: 50,
    retryMinMs: 50,
    retryMaxMs: 400,
    downAfterFailures: 3,
    probeIntervalMs: 200,
    ...opts.sender,
  });
  const sender = new InfluxGatewaySender({ config: { ...senderCfg, deadLetterDir }, logger: silentLogger(), metrics });
  const relay = createRelay(
    {
      relay: relaySchema.parse({
        channel,
        topicRefreshMs: 200,
        lookupdPollIntervalSec: 1,
        requeueMinMs: 100,
        requeueMaxMs: 1000,
        ...opts.relay,
      }),
      nsq: { nsqdTcpAddresses: (opts.nsqd ?? [nsqd]).map((n) => n.tcpAddress), topicPrefix: 'ns.' },
      sender: { deadLetterDir, deadLetterMaxFileBytes: 1024 * 1024 },
    },
    { sender, namespaces: opts.namespaces, logger: silentLogger(), metrics },
  );
  await sender.start();
  await relay.start();
  running.push(sender, relay);
  return { relay, sender, deadLetterDir, channel, metrics };
}

/** The count of `measurement` in `db` once it reaches `want` (no event tells when a database has every point). */
async function waitForCount(db: string, measurement: string, want: number, timeoutMs = 30_000): Promise<number> {
  return waitUntil(`${want} points of ${measurement} in ${db}`, async () => {
    const got = await influx.count(db, measurement).catch(() => -1);
    return got >= want && got;
  }, { timeoutMs, everyMs: 100 });
}

async function drained(topic: string, channel: string): Promise<boolean> {
  return (await topicDepth(nsqd.httpAddress, topic, channel)) === 0;
}

void test('two namespace topics → relay → influxd: InfluxQL counts exactly the points sent, per database', { timeout: 60_000 }, async () => {
  const ns = ['relay.alpha', 'team/beta gamma'];
  const r = await rig({ namespaces: new Namespaces(ns) });
  const [ta, tb] = ns.map((n) => topicFor(n, 'ns.')) as [string, string];
  assert.match(tb, /^ns\.team_beta_gamma--[0-9a-f]+$/);
  await Promise.all([
    writer.publish(ta, ns[0] as string, makeMessages(12_000, 100, { measurement: 'two' })),
    writer.publish(tb, ns[1] as string, makeMessages(7_000, 70, { measurement: 'two' })),
  ]);
  assert.equal(await waitForCount('relay.alpha', 'two', 12_000), 12_000);
  assert.equal(await waitForCount('team_beta gamma', 'two', 7_000), 7_000);
  await waitUntil('all 220 messages finished', () => r.relay.status().finished === 220);
  assert.equal(await drained(ta, r.channel), true);
  assert.equal(await drained(tb, r.channel), true);
  const st = r.relay.status();
  assert.equal(st.pointsWritten, 19_000);
  assert.equal(st.requeued, 0);
  assert.match(await r.metrics.metrics(), /nsagent_relay_messages_total\{result="finished"\} 220/);
});

void test('influxd stopped for 10 s mid-stream: nothing lost after it returns', { timeout: 60_000 }, async () => {
  const ns = 'relay.outage';
  const topic = topicFor(ns, 'ns.');
  const r = await rig({ namespaces: new Namespaces([ns]) });
  const total = 30_000;
  const messages = makeMessages(total, 50, { measurement: 'outage' });
  let published = 0;
  const publishing = (async () => {
    // A steady stream: 600 messages over ~6 s, in MPUBs of 20.
    for (let i = 0; i < messages.length; i += 20) {
      await writer.publish(topic, ns, messages.slice(i, i + 20));
      published += Math.min(20, messages.length - i);
      await delay(200);
    }
  })();
  await waitUntil('first points written', async () => (await influx.count(ns, 'outage').catch(() => 0)) > 1000);
  await influx.stop();
  const downAt = Date.now();
  await waitUntil('the backend marked down', () => (r.sender.status().available as boolean) === false);
  await delay(10_000 - (Date.now() - downAt));
  // restart() of a stopped server starts it again on the same port.
  await influx.restart();
  await publishing;
  assert.equal(published, messages.length);
  assert.equal(await waitForCount(ns, 'outage', total, 40_000), total);
  await waitUntil('channel drained', () => drained(topic, r.channel));
  const st = r.relay.status();
  assert.ok((st.requeued as number) > 0, 'messages were requeued during the outage');
  const backend = (r.sender.status().backends as Record<string, { state: string; counters: { SendFail: { count: number } } }>).influx;
  assert.equal(backend?.state, 'up');
  assert.ok((backend?.counters.SendFail.count ?? 0) > 0);
});

void test('a message without a namespace header is dead-lettered and finished, never retried; the rest flows', { timeout: 30_000 }, async () => {
  const ns = 'relay.invalid';
  const topic = topicFor(ns, 'ns.');
  const r = await rig({ namespaces: new Namespaces([ns]) });
  await writer.publishRaw(topic, ['inv v=1 1600000000', Buffer.from('# ns=%E0%A4%A\ninv v=2 1600000001')]);
  await writer.publish(topic, ns, makeMessages(100, 10, { measurement: 'inv' }));
  assert.equal(await waitForCount(ns, 'inv', 100), 100);
  await waitUntil('two invalid messages', () => r.relay.status().invalid === 2);
  await waitUntil('channel drained', () => drained(topic, r.channel));
  const records = readFileSync(path.join(r.deadLetterDir, INVALID_MESSAGES_FILE), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);
  assert.deepEqual(
    records.map((x) => [x.topic, x.line, x.reason]),
    [
      [topic, 'inv v=1 1600000000', 'message has no "# ns=" header line'],
      [topic, '# ns=%E0%A4%A\ninv v=2 1600000001', 'message header has a malformed namespace "%E0%A4%A"'],
    ],
  );
  assert.equal(r.relay.status().requeued, 0);
});

void test('a namespace added to the registry is consumed without a restart; a removed one is let go', { timeout: 30_000 }, async () => {
  const namespaces = new Namespaces(['relay.first']);
  const r = await rig({ namespaces, relay: { topicRefreshMs: 60_000 } });
  assert.deepEqual(Object.keys(r.relay.status().topics as object), ['ns.relay.first']);
  await writer.publish('ns.relay.second', 'relay.second', makeMessages(500, 50, { measurement: 'added' }));
  namespaces.set(['relay.first', 'relay.second']);
  assert.equal(await waitForCount('relay.second', 'added', 500), 500);
  namespaces.set(['relay.second']);
  await waitUntil('first topic closed', () => !Object.keys(r.relay.status().topics as object).includes('ns.relay.first'));
});

void test('topics from nsqlookupd (GET /topics, prefix-filtered), nsqd found through it', { timeout: 40_000 }, async () => {
  const lookupd = await startNsqlookupd();
  const nsqd2 = await startNsqd({ lookupdTcpAddresses: [lookupd.tcpAddress] });
  const w2 = new TestWriter(nsqd2);
  try {
    await w2.publish('ns.lookup.one', 'lookup.one', makeMessages(300, 30, { measurement: 'lk' }));
    await w2.publishRaw('other.topic', ['x v=1 1']);
    const r = await rig({
      relay: { topicsFrom: 'lookupd', lookupdHttpAddresses: [lookupd.httpAddress] },
      nsqd: [],
    });
    assert.equal(await waitForCount('lookup.one', 'lk', 300), 300);
    // A topic created later is found by the periodic refresh.
    await w2.publish('ns.lookup.two', 'lookup.two', makeMessages(200, 20, { measurement: 'lk' }));
    assert.equal(await waitForCount('lookup.two', 'lk', 200), 200);
    assert.deepEqual(Object.keys(r.relay.status().topics as object).sort(), ['ns.lookup.one', 'ns.lookup.two']);
  } finally {
    w2.close();
  }
});
