// The relay's handling of sender failures, on a real nsqd with a scripted sender (fault
// injection above the NSQ seam): requeue with backoff, relay.maxAttempts dead-lettering
// instead of nsqjs's silent auto-finish, pausing while the sender is unavailable, touching
// messages that wait longer than the message timeout, and stop() draining in-flight messages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { relaySchema, type ConfigInput } from '../../src/config/schema.ts';
import { silentLogger, type Logger } from '../../src/log/logger.ts';
import { createRelay, INVALID_MESSAGES_FILE, type Relay } from '../../src/relay/relay.ts';
import { RetryableWriteError, type GatewaySender, type WriteOutcome } from '../../src/sender/types.ts';
import type { LineBlock } from '../../src/sender/line-block.ts';
import { nsqdStats, startNsqd, stopAll, type NsqdHandle } from '../helpers/servers.ts';
import { captureLogger, type LogRecord } from '../helpers/capture-log.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitUntil } from '../helpers/wait.ts';
import { TestWriter } from './nsq-writer.ts';

type RelayInput = NonNullable<ConfigInput['relay']>;

let nsqd: NsqdHandle;
let writer: TestWriter;
const relays: Relay[] = [];

before(async () => {
  nsqd = await startNsqd();
  writer = new TestWriter(nsqd);
});
after(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  writer.close();
  await stopAll();
});

interface Call {
  namespace: string;
  lines: readonly string[];
}

/** A sender whose answers the test scripts; it records every write. */
class ScriptedSender implements GatewaySender {
  readonly calls: Call[] = [];
  answer: (call: Call, n: number) => Promise<WriteOutcome> = (call) => Promise.resolve({ written: call.lines.length, deadLettered: 0 });
  private listeners: Array<(a: boolean) => void> = [];
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  status(): Record<string, unknown> {
    return {};
  }
  onAvailabilityChange(l: (a: boolean) => void): void {
    this.listeners.push(l);
  }
  setAvailable(a: boolean): void {
    for (const l of this.listeners) l(a);
  }
  write(namespace: string, lines: readonly string[] | LineBlock): Promise<WriteOutcome> {
    const call = { namespace, lines: [...lines] };
    this.calls.push(call);
    for (const w of [...this.waiters]) {
      if (this.calls.length >= w.n) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    return this.answer(call, this.calls.length);
  }
  /** Resolves once `n` writes were made. */
  writes(n: number): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

let topics = 0;
async function rig(sender: GatewaySender, relay: RelayInput = {}, logger: Logger = silentLogger()): Promise<{ relay: Relay; topic: string; ns: string; dir: string }> {
  const ns = `fail.t${++topics}`;
  const topic = `ns.${ns}`;
  const dir = tempDir('relay-fail').dir;
  const r = createRelay(
    {
      relay: relaySchema.parse({ requeueMinMs: 300, requeueMaxMs: 1000, lookupdPollIntervalSec: 1, ...relay }),
      nsq: { nsqdTcpAddresses: [nsqd.tcpAddress], topicPrefix: 'ns.' },
      sender: { deadLetterDir: dir, deadLetterMaxFileBytes: 1024 * 1024 },
    },
    { sender, namespaces: { current: () => [ns], onChange: () => undefined }, logger },
  );
  await r.start();
  relays.push(r);
  return { relay: r, topic, ns, dir };
}

/** The delays the relay asked nsqd to hold requeued messages for, in order. */
function requeueDelays(records: LogRecord[]): unknown[] {
  return records.filter((r) => r.msg === 'write failed; message requeued').map((r) => r.delayMs);
}

async function channelStats(topic: string) {
  const t = (await nsqdStats(nsqd.httpAddress, topic)).topics.find((x) => x.topic_name === topic);
  return t?.channels.find((c) => c.channel_name === 'relay');
}

void test('a retryable failure requeues the message with backoff; it is finished once written', async () => {
  const sender = new ScriptedSender();
  sender.answer = (call, n) => (n <= 2 ? Promise.reject(new RetryableWriteError('backend busy', 'failed')) : Promise.resolve({ written: call.lines.length, deadLettered: 0 }));
  const log = captureLogger();
  const { relay, topic, ns } = await rig(sender, {}, log.logger);
  await writer.publish(topic, ns, [['m v=1 1', 'm v=2 2']]);
  await sender.writes(3);
  const [, , c] = sender.calls;
  assert.deepEqual(c?.lines, ['m v=1 1', 'm v=2 2']);
  assert.equal(c?.namespace, ns);
  // Backoff doubles with the attempts: the requeues ask nsqd for 300 ms, then 600 ms.
  assert.deepEqual(requeueDelays(log.records), [300, 600]);
  await waitUntil('the message finished', () => relay.status().finished === 1);
  assert.equal(relay.status().requeued, 2);
  const ch = await channelStats(topic);
  assert.equal(ch?.requeue_count, 2);
  assert.equal((ch?.depth ?? 0) + (ch?.in_flight_count ?? 0) + (ch?.deferred_count ?? 0), 0);
});

void test('a Retry-After hint longer than the backoff sets the requeue delay', async () => {
  const sender = new ScriptedSender();
  sender.answer = (call, n) =>
    n === 1 ? Promise.reject(new RetryableWriteError('slow down', 'retry-after', 1500)) : Promise.resolve({ written: call.lines.length, deadLettered: 0 });
  const log = captureLogger();
  const { topic, ns } = await rig(sender, {}, log.logger);
  await writer.publish(topic, ns, [['m v=1 1']]);
  await sender.writes(2);
  assert.deepEqual(requeueDelays(log.records), [1500], 'the hint, not the 300 ms backoff');
});

void test('relay.maxAttempts: past it the message is dead-lettered and finished, not silently dropped', async () => {
  const sender = new ScriptedSender();
  sender.answer = () => Promise.reject(new RetryableWriteError('always failing', 'failed'));
  const { relay, topic, ns, dir } = await rig(sender, { maxAttempts: 2, requeueMinMs: 50 });
  await writer.publish(topic, ns, [['m v=1 1']]);
  await waitUntil('the message given up', () => relay.status().gaveUp === 1);
  assert.equal(sender.calls.length, 2, 'written twice, then given up at the third delivery');
  const [record] = readFileSync(path.join(dir, INVALID_MESSAGES_FILE), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);
  assert.equal(record?.namespace, ns);
  assert.equal(record?.line, `# ns=${ns}\nm v=1 1`);
  assert.match(record?.reason ?? '', /gave up after 2 attempts/);
  const ch = await channelStats(topic);
  assert.equal((ch?.depth ?? 0) + (ch?.in_flight_count ?? 0) + (ch?.deferred_count ?? 0), 0);
});

void test('while the sender is unavailable the relay pauses; it resumes when told', async () => {
  const sender = new ScriptedSender();
  const { relay, topic, ns } = await rig(sender);
  sender.setAvailable(false);
  await writer.publish(topic, ns, [['m v=1 1'], ['m v=2 2']]);
  // No event says "nothing was delivered": give nsqd time to push, then check it did not.
  await delay(500);
  assert.equal(sender.calls.length, 0);
  assert.deepEqual(relay.status().paused, ['sender-unavailable']);
  sender.setAvailable(true);
  await sender.writes(2);
  await waitUntil('both messages finished', () => relay.status().finished === 2);
  assert.deepEqual(relay.status().paused, []);
});

void test('a write slower than the message timeout is touched, not redelivered', async () => {
  const sender = new ScriptedSender();
  sender.answer = async (call) => {
    await delay(2600);
    return { written: call.lines.length, deadLettered: 0 };
  };
  const { relay, topic, ns } = await rig(sender, { messageTimeoutMs: 1000 });
  await writer.publish(topic, ns, [['m v=1 1']]);
  await waitUntil('the slow write finished', () => relay.status().finished === 1);
  assert.equal(sender.calls.length, 1);
  assert.ok((relay.status().touched as number) >= 2);
  const ch = await channelStats(topic);
  assert.equal(ch?.timeout_count, 0);
});

void test('stop() lets in-flight writes finish; past relay.drainTimeoutMs it requeues them', async () => {
  const sender = new ScriptedSender();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  sender.answer = async (call) => {
    if (call.lines[0] === 'hang v=1 1') await gate;
    else await delay(200);
    return { written: call.lines.length, deadLettered: 0 };
  };
  const { relay, topic, ns } = await rig(sender, { drainTimeoutMs: 700 });
  await writer.publish(topic, ns, [['quick v=1 1'], ['hang v=1 1']]);
  await sender.writes(2);
  await relay.stop();
  // stop() waited for the quick write (200 ms) and gave up on the hung one, which is still hung.
  const st = relay.status();
  assert.equal(st.finished, 1);
  assert.equal(st.requeued, 1);
  release();
  // The requeued message is back in the channel at once, not after nsqd's message timeout.
  await waitUntil('the requeued message back in the channel', async () => {
    const ch = await channelStats(topic);
    return ch !== undefined && ch.depth === 1 && ch.in_flight_count === 0 && ch.requeue_count === 1;
  }, { timeoutMs: 3000 });
});

void test('a pause survives an nsqd restart (nsqjs would forget it on reconnect)', async () => {
  const own = await startNsqd();
  const sender = new ScriptedSender();
  const dir = tempDir('relay-fail').dir;
  const relay = createRelay(
    {
      relay: relaySchema.parse({ lookupdPollIntervalSec: 1 }),
      nsq: { nsqdTcpAddresses: [own.tcpAddress], topicPrefix: 'ns.' },
      sender: { deadLetterDir: dir, deadLetterMaxFileBytes: 1024 * 1024 },
    },
    { sender, namespaces: { current: () => ['restart'], onChange: () => undefined }, logger: silentLogger() },
  );
  await relay.start();
  relays.push(relay);
  const connections = () => (relay.status().topics as Record<string, { connections: number }>)['ns.restart']?.connections;
  await waitUntil('the reader connected', () => connections() === 1);
  sender.setAvailable(false);
  await own.restart();
  await waitUntil('the reader connected again', () => connections() === 1);
  // nsqjs's Writer never reconnects: a new one for the restarted nsqd.
  const w = new TestWriter(own);
  try {
    await w.publish('ns.restart', 'restart', [['m v=1 1']]);
    // No event says "nothing was delivered": give nsqd time to push, then check it did not.
    await delay(700);
    assert.equal(sender.calls.length, 0);
    sender.setAvailable(true);
    await sender.writes(1);
    await waitUntil('the message finished', () => relay.status().finished === 1);
  } finally {
    w.close();
  }
});
