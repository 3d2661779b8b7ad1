// Fault suite, the local disk: spool and log folder on one small file system (a 20 MB tmpfs,
// mounted by the test, which runs as root) while nsqd is unreachable and /post keeps coming.
// The disk fills: the agent must keep running with its log unwritable (counted), refuse what it
// cannot spool (503, counted as dropped), write again once space is freed, and after nsqd comes
// up replay the spool and leave no segment file behind.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startInfluxd, startNsqd, stopAll, type InfluxdHandle, type NsqdHandle } from '../helpers/servers.ts';
import { agentConfig, arrivedCount, droppedCount, freePort, postAll, postLoop, report, settle, startAgent, stopAgent } from './harness.ts';
import { waitUntil } from '../helpers/wait.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const NS = 'faults.disk';
let influxd: InfluxdHandle;
let mounted: string | undefined;

before(async () => {
  influxd = await startInfluxd();
});
after(async () => {
  await stopAll();
  if (mounted) execFileSync('umount', ['-l', mounted]);
});

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.seg'));
}

test('disk full with logs on the same disk: the agent keeps running, refuses and counts, resumes when space returns', { timeout: 180_000 }, async () => {
  const dir = tempDir('fault-disk').dir;
  const small = path.join(dir, 'small');
  mkdirSync(small);
  // A real ENOSPC needs a real small file system: tmpfs (root may mount it).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', small]);
  mounted = small;
  const filler = path.join(small, 'filler');
  writeFileSync(filler, Buffer.alloc(6 * 1024 * 1024, 1));

  // nsqd's ports are chosen now and nothing listens there until later: the spool takes everything.
  const tcpPort = await freePort();
  const httpPort = await freePort();
  const nsqdAddr = { tcpAddress: `127.0.0.1:${tcpPort}`, httpAddress: `127.0.0.1:${httpPort}` } as NsqdHandle;
  const spoolDir = path.join(small, 'spool');
  const config = agentConfig({
    dir,
    httpPort: await freePort(),
    nsqd: nsqdAddr,
    influxd,
    namespaces: [NS],
    extra: {
      log: { dir: path.join(small, 'log') },
      nsq: { spool: { dir: spoolDir, segmentBytes: 1024 * 1024 } },
    },
  });
  const agent = await startAgent(dir, config);
  const { api } = agent;
  let sent = 0;
  const loop = postLoop(api, NS, 'disk', 200);
  const statusOrDeath = async () => {
    if (agent.run.child.exitCode !== null || agent.run.child.signalCode !== null) {
      assert.fail(`the agent died; its last output:\n${agent.run.output().slice(-3000)}`);
    }
    return api.status();
  };
  try {
    // Steady load until the disk is full: spool appends fail and so do log writes.
    await waitUntil('the spool refuses appends and the log cannot be written', async () => {
      const st = await statusOrDeath();
      return (st.publish.counters.dropped.spool_error ?? 0) > 0 && (st.log?.writeFailures ?? 0) > 0;
    }, { timeoutMs: 90_000, everyMs: 200 });
    // Keep the full disk under load a little longer: the agent must live through it.
    const refusedSoFar = loop.totals.unacked;
    await waitUntil('more posts refused on the full disk', () => loop.totals.unacked >= refusedSoFar + 2000, { timeoutMs: 30_000 });
    await loop.stop();
    sent += loop.totals.acked + loop.totals.unacked;
    assert.ok(await api.health(), 'the agent answers /health with its disk full');
    const full = await api.status();
    assert.equal(full.log.writable, false, `log reported unwritable: ${JSON.stringify(full.log)}`);
    assert.ok(full.publish.counters.dropped.spool_error > 0, 'spool refusals counted as drops');
    assert.ok((loop.totals.statuses[503] ?? 0) > 0, `refused posts answered 503: ${JSON.stringify(loop.totals.statuses)}`);
    assert.ok((await api.metric('nsagent_log_write_failures_total')) > 0);
    assert.equal(await api.metric('nsagent_log_writable'), 0);

    // Space returns: the next log line is written and the spool takes points again.
    rmSync(filler);
    agent.run.child.kill('SIGHUP'); // a reload logs a line
    await waitUntil('the log is written again', async () => (await api.status()).log.writable === true, { timeoutMs: 20_000 });
    const spooledBefore = (await api.status()).publish.counters.spooledLines as number;
    const again = await postAll(api, NS, 'disk', loop.totals.next, 2000, 200);
    sent += again.acked + again.unacked;
    assert.equal(again.acked, 2000, `the spool takes points again: ${JSON.stringify(again.statuses)}`);
    await waitUntil('the new points spooled', async () => (await api.status()).publish.counters.spooledLines >= spooledBefore + 2000);

    // nsqd comes up where the agent looks for it: the spool is replayed and emptied.
    await startNsqd({ tcpPort, httpPort });
    const dropped = await droppedCount(api);
    const arrived = await settle(() => arrivedCount(influxd, NS, 'disk'), sent - dropped, 60_000);
    await waitUntil('the spool is empty and its segments deleted', async () => {
      const st = await api.status();
      return st.publish.spool.bytes === 0 && st.publish.spool.segments === 0 && segmentFiles(spoolDir).length === 0;
    }, { timeoutMs: 30_000 });
    const st = await api.status();
    report('disk full, logs on the same disk', { sent, arrived, dropped, unacked: loop.totals.unacked + again.unacked },
      `log write failures ${st.log.writeFailures}, log lines dropped ${st.log.droppedLines}, spool failed appends ${st.publish.spool.failedAppends}`);
    assert.equal(arrived + dropped, sent, 'sent = arrived + dropped');
    assert.ok(arrived >= loop.totals.acked + again.acked, 'everything acknowledged arrived');
    assert.equal(agent.run.child.exitCode, null, 'the agent never exited');
  } finally {
    await loop.stop();
    await stopAgent(agent.run);
  }
});
