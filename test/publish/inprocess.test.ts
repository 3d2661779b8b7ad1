import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/log/logger.ts';
import { InProcessPublisher, type InProcessPublisherOptions } from '../../src/publish/inprocess.ts';
import { DroppedError } from '../../src/publish/publisher.ts';
import { FileSink } from '../../src/sender/file-sink.ts';
import type { GatewaySender, WriteOutcome } from '../../src/sender/types.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Fault injection: fails the first `failures` writes, or every write while `down`. */
class FlakySender implements GatewaySender {
  writes = 0;
  accepted: string[] = [];
  down = false;
  constructor(private failures = 0) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async write(_ns: string, lines: readonly string[]): Promise<WriteOutcome> {
    this.writes++;
    if (this.down || this.failures-- > 0) throw new Error('backend unavailable');
    this.accepted.push(...lines);
    return { written: lines.length, deadLettered: 0 };
  }
  status(): Record<string, unknown> {
    return {};
  }
}

function make(sender: GatewaySender, opts: Partial<InProcessPublisherOptions> = {}) {
  const metrics = new Registry();
  const publisher = new InProcessPublisher({ sender, metrics, logger: silentLogger(), retryMinMs: 5, retryMaxMs: 20, ...opts });
  return { publisher, metrics };
}

async function counter(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}

describe('InProcessPublisher', () => {
  test('the embedded default: lines go straight to the file sink, per namespace', async () => {
    const dir = tempDir('inproc-').dir;
    dirs.push(dir);
    const sink = new FileSink({ dir, maxFileBytes: 1024 * 1024, maxFiles: 2, logger: silentLogger() });
    await sink.start();
    const { publisher, metrics } = make(sink);
    await publisher.start();
    await publisher.publish('shop', ['a v=1 1', 'b v=2 2']);
    await publisher.stop();
    await sink.stop();
    assert.equal(readFileSync(path.join(dir, 'shop.lp'), 'utf8'), 'a v=1 1\nb v=2 2\n');
    assert.equal(await counter(metrics, 'nsagent_publish_published_lines_total'), 2);
    assert.equal(publisher.status().mode, 'in-process');
  });

  test('a failing write is retried with backoff until the sender takes it', async () => {
    const sender = new FlakySender(2);
    const { publisher } = make(sender);
    await publisher.start();
    await publisher.publish('ns', ['a v=1 1']);
    assert.equal(sender.writes, 3);
    assert.deepEqual(sender.accepted, ['a v=1 1']);
    assert.equal(publisher.status().retries, 2);
    await publisher.stop();
  });

  test('a sender failing past giveUpAfterMs: the lines are dropped, counted, and rejected', async () => {
    const sender = new FlakySender();
    sender.down = true;
    const { publisher, metrics } = make(sender, { giveUpAfterMs: 50 });
    await publisher.start();
    await assert.rejects(publisher.publish('ns', ['a v=1 1', 'b v=1 1']), (err: unknown) => err instanceof DroppedError && err.lines === 2);
    assert.equal(await counter(metrics, 'nsagent_publish_dropped_lines_total', { reason: 'sender_failed' }), 2);
    await publisher.stop();
  });

  test('beyond maxPendingLines a publish is dropped at once, not queued', async () => {
    const sender = new FlakySender();
    sender.down = true;
    const { publisher, metrics } = make(sender, { maxPendingLines: 3, giveUpAfterMs: 60_000, stopTimeoutMs: 20 });
    await publisher.start();
    const waiting = publisher.publish('ns', ['a v=1 1', 'b v=1 1']);
    await assert.rejects(publisher.publish('ns', ['c v=1 1', 'd v=1 1']), (err: unknown) => err instanceof DroppedError && err.lines === 2);
    assert.equal(await counter(metrics, 'nsagent_publish_dropped_lines_total', { reason: 'queue_full' }), 2);
    // stop() gives up on the write still retrying after stopTimeoutMs.
    await publisher.stop();
    await assert.rejects(waiting, DroppedError);
    await assert.rejects(publisher.publish('ns', ['x v=1 1']), /stopped/);
  });

  test('publish before start is refused', async () => {
    const { publisher } = make(new FlakySender());
    await assert.rejects(publisher.publish('ns', ['a v=1 1']), /not started/);
  });
});
