// The relay's bounds against a real nsqd, with a sender the test holds (the seam above which a
// fake is fine): relay.maxInFlightBytes pauses every reader once the messages held pass it, and
// resumes when they are answered; relay.maxTopics refuses topics as an error that /me/status,
// /metrics and one log line show.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { relaySchema, type ConfigInput } from '../../src/config/schema.ts';
import { topicFor } from '../../src/topic-names.ts';
import { createRelay, type Relay } from '../../src/relay/relay.ts';
import type { NamespaceSource } from '../../src/relay/topic-source.ts';
import type { LineBlock } from '../../src/sender/line-block.ts';
import type { GatewaySender, WriteOutcome } from '../../src/sender/types.ts';
import { startNsqd, stopAll, type NsqdHandle } from '../helpers/servers.ts';
import { sumMetric } from '../faults/harness.ts';
import { makeMessages, TestWriter } from './nsq-writer.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

type RelayInput = NonNullable<ConfigInput['relay']>;
const MiB = 1024 * 1024;

let nsqd: NsqdHandle;
let writer: TestWriter;

before(async () => {
  nsqd = await startNsqd();
  writer = new TestWriter(nsqd);
});
after(async () => {
  writer.close();
  await stopAll();
});

/** Takes every write and answers it only once released (then at once). */
class HeldSender implements GatewaySender {
  lines = 0;
  private held = true;
  private waiting: Array<() => void> = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {
    this.release();
  }
  async write(_namespace: string, lines: readonly string[] | LineBlock): Promise<WriteOutcome> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.lines += lines.length;
    return { written: lines.length, deadLettered: 0 };
  }
  status(): Record<string, unknown> {
    return {};
  }
  release(): void {
    this.held = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

function staticNamespaces(list: string[]): NamespaceSource & { changed(): void } {
  const listeners: Array<() => void> = [];
  return {
    current: () => list,
    onChange: (l) => listeners.push(l),
    changed: () => listeners.forEach((l) => l()),
  };
}

let channels = 0;
function relayFor(namespaces: NamespaceSource, sender: GatewaySender, relay: RelayInput, logger = pino({ level: 'silent' })): { relay: Relay; metrics: Registry } {
  const deadLetterDir = tempDir('ns-agent-relay-bounds-').dir;
  const metrics = new Registry();
  const r = createRelay(
    {
      relay: relaySchema.parse({ channel: `bounds${++channels}`, topicRefreshMs: 200, lookupdPollIntervalSec: 1, ...relay }),
      nsq: { nsqdTcpAddresses: [nsqd.tcpAddress], topicPrefix: 'ns.' },
      sender: { deadLetterDir, deadLetterMaxFileBytes: MiB },
    },
    { sender, namespaces, logger, metrics },
  );
  return { relay: r, metrics };
}

test('relay.maxInFlightBytes: past the budget every reader pauses; answered messages resume it; nothing lost', { timeout: 60_000 }, async () => {
  const ns = 'bounds.bytes';
  const topic = topicFor(ns, 'ns.');
  // 200 messages of ~100 KB: 20 MB, where the budget is 1 MiB and RDY allows all 200.
  const messages = makeMessages(200 * 2500, 2500, { measurement: 'bytes' });
  const sender = new HeldSender();
  const { relay, metrics } = relayFor(staticNamespaces([ns]), sender, { maxInFlight: 200, maxInFlightBytes: MiB });
  await relay.start();
  try {
    for (let i = 0; i < messages.length; i += 20) await writer.publish(topic, ns, messages.slice(i, i + 20));
    await waitUntil('the relay to hold more than its budget', () => Number(relay.status().inFlightBytes) > MiB);
    // No event says "nsqd sent nothing more": wait until what the relay holds stops changing.
    let last = -1;
    await waitUntil('the held count to settle', async () => {
      const now = Number(relay.status().inFlight);
      const same = now === last;
      last = now;
      if (!same) await delay(500);
      return same;
    });
    const st = relay.status();
    assert.ok((st.paused as string[]).includes('byte-budget'), `paused: ${JSON.stringify(st.paused)}`);
    assert.ok(Number(st.byteBudgetPauses) >= 1);
    assert.ok(Number(st.inFlight) < messages.length, `held ${String(st.inFlight)} of ${messages.length} messages: the budget did not stop the readers`);
    assert.equal(sumMetric(await metrics.metrics(), 'nsagent_relay_in_flight_bytes'), Number(st.inFlightBytes));

    sender.release();
    await waitUntil('every message finished', () => relay.status().finished === messages.length);
    assert.equal(sender.lines, 200 * 2500);
    assert.equal(relay.status().inFlightBytes, 0);
    assert.deepEqual(relay.status().paused, []);
  } finally {
    sender.release();
    await relay.stop();
  }
});

test('relay.maxTopics: refused topics are an error in status and metrics, logged once per refresh that refuses more', { timeout: 60_000 }, async () => {
  const namespaces = staticNamespaces(['cap.a', 'cap.b', 'cap.c', 'cap.d', 'cap.e']);
  const logged: Array<{ level: number; msg: string; newlyRefused?: number }> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logged.push(JSON.parse(s) as (typeof logged)[number]) });
  const { relay, metrics } = relayFor(namespaces, new HeldSender(), { maxTopics: 2 }, logger);
  await relay.start();
  try {
    const st = relay.status();
    assert.equal((st.refusedTopics as string[]).length, 3);
    assert.match(String(st.error), /^3 topics not consumed \(their messages stay in nsqd\): relay\.maxTopics \(2\) reached; raise relay\.maxTopics$/);
    const text = await metrics.metrics();
    assert.equal(sumMetric(text, 'nsagent_relay_refused_topics'), 3);
    assert.equal(sumMetric(text, 'nsagent_relay_refused_topics_total'), 3);
    // Polls that refuse nothing new log nothing more.
    const refreshes = Number(st.refreshes);
    namespaces.changed();
    await waitUntil('two more topic refreshes', () => Number(relay.status().refreshes) > refreshes + 1, { timeoutMs: 10_000 });
    const errors = logged.filter((l) => l.level >= 50);
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]?.newlyRefused, 3);
  } finally {
    await relay.stop();
  }
});
