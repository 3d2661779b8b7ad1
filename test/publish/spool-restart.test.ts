// The agent SIGKILLed with a non-empty spool: a real child process acknowledges points into its
// spool (nsqd unreachable), is killed, and a new publisher on the same spool dir delivers them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/log/logger.ts';
import { decodeMessage } from '../../src/publish/envelope.ts';
import { NsqPublisher } from '../../src/publish/nsq-publisher.ts';
import { topicFor } from '../../src/topic-names.ts';
import { CHUNK_LINES, TOPIC_PREFIX, chunkLines } from '../fixtures/publish/spool-writer.ts';
import { freePort, readAll, startNsqd, stopAll } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/publish/spool-writer.ts', import.meta.url));
const NAMESPACE = 'restart ns/ü';
const dirs: string[] = [];
after(async () => {
  await stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Report {
  acked: number[];
  dropped: number[];
  /** Sum of DroppedError.lines the publish() calls rejected with. */
  rejectedLines: number;
  spoolBytes: number;
  droppedLines: Record<string, number>;
}

/** Runs the fixture until it reports, checks it is still alive, then SIGKILLs it. */
async function runAndKill(dir: string, address: string, chunks: number, maxBytes?: number): Promise<Report> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir, address, String(chunks), ...(maxBytes ? [String(maxBytes)] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([once(lines, 'line').then(([l]) => l as string), exited.then(() => undefined)]);
  assert.ok(first, `the fixture exited without reporting: ${stderr}`);
  assert.equal(child.exitCode, null, 'still alive after reporting');
  child.kill('SIGKILL');
  const [code, signal] = await exited;
  assert.equal(signal, 'SIGKILL', `exit code ${String(code)}`);
  return JSON.parse(first) as Report;
}

async function deliver(dir: string, nsqdAddress: string) {
  const publisher = new NsqPublisher({
    nsqdTcpAddresses: [nsqdAddress],
    topicPrefix: TOPIC_PREFIX,
    maxMessageBytes: 64 * 1024,
    maxMpubBytes: 1024 * 1024,
    lingerMs: 5,
    maxInFlightBatches: 4,
    reconnectMinMs: 50,
    reconnectMaxMs: 500,
    spool: { dir, maxBytes: 256 * 1024 * 1024, maxAgeSec: 3600, commitIntervalMs: 5, segmentBytes: 256 * 1024 },
    metrics: new Registry(),
    logger: silentLogger(),
  });
  await publisher.start();
  const before = publisher.status().spool.bytes;
  await publisher.drained();
  const status = publisher.status();
  await publisher.stop();
  return { before, status };
}

describe('spool across an agent SIGKILL', () => {
  test('points acknowledged into the spool before the kill are all published after the restart', async () => {
    const dir = tempDir('spool-restart-').dir;
    dirs.push(dir);
    const [tcpPort, httpPort] = [await freePort(), await freePort()];
    const report = await runAndKill(dir, `127.0.0.1:${tcpPort}`, 50);
    assert.equal(report.acked.length, 50);
    assert.ok(report.spoolBytes > 0);

    const nsqd = await startNsqd({ tcpPort, httpPort });
    const { before, status } = await deliver(dir, nsqd.tcpAddress);
    assert.ok(before > 0, 'the new publisher found the spool');
    assert.equal(status.spool.bytes, 0);
    assert.equal(status.counters.replayedLines, 50 * CHUNK_LINES);

    const bodies = await readAll(nsqd, topicFor(NAMESPACE, TOPIC_PREFIX), 'test', { idleMs: 300 });
    const got = new Set<string>();
    for (const b of bodies) {
      const d = decodeMessage(b);
      assert.equal(d.namespace, NAMESPACE);
      for (const l of d.body.split('\n')) got.add(l);
    }
    const missing = report.acked.flatMap(chunkLines).filter((l) => !got.has(l));
    assert.equal(missing.length, 0, `${missing.length} acknowledged lines missing`);
  });

  test('a full spool drops what it cannot hold (counted) and the process lives on; what it held is delivered', async () => {
    const dir = tempDir('spool-restart-').dir;
    dirs.push(dir);
    const [tcpPort, httpPort] = [await freePort(), await freePort()];
    // About 3 MB of points for a 1 MiB spool.
    const report = await runAndKill(dir, `127.0.0.1:${tcpPort}`, 60, 1024 * 1024);
    assert.ok(report.dropped.length > 0, 'some chunks were dropped');
    assert.ok(report.acked.length > 0, 'some chunks were acknowledged');
    // A chunk can straddle two batches: only the lines of the refused batch count as dropped.
    assert.equal(report.droppedLines.spool_full, report.rejectedLines);
    assert.ok(report.rejectedLines > 0 && report.rejectedLines <= report.dropped.length * CHUNK_LINES);

    const nsqd = await startNsqd({ tcpPort, httpPort });
    await deliver(dir, nsqd.tcpAddress);
    const bodies = await readAll(nsqd, topicFor(NAMESPACE, TOPIC_PREFIX), 'test', { idleMs: 300 });
    const got = new Set(bodies.flatMap((b) => decodeMessage(b).body.split('\n')));
    assert.equal(report.acked.flatMap(chunkLines).filter((l) => !got.has(l)).length, 0);
  });
});
