// Port and process checks against the real host: listening and closed loopback ports (IPv4
// and IPv6), TCP connects and their timing, and real child processes counted, restarted and
// gone. Each test uses its own ports, binaries and temp folder.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../src/clock.ts';
import { HostFs } from '../../src/collectors/hostfs.ts';
import { PortChecker } from '../../src/collectors/port-check.ts';
import { ProcessChecker } from '../../src/collectors/process-check.ts';
import { MetricBatch } from '../../src/collectors/types.ts';
import type { Metric } from '../../src/points/metric.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('nsagent-checks-').dir;
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

const hostFs = new HostFs({ root: '/' });

async function listen(host: string): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => s.destroy());
  server.listen(0, host);
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** A port nothing listens on: bound, noted, closed. */
async function closedPort(): Promise<number> {
  const { server, port } = await listen('127.0.0.1');
  server.close();
  await once(server, 'close');
  return port;
}

function byPort(metrics: Metric[]): Map<string, Metric> {
  return new Map(metrics.map((m) => [m.tags!.port!, m]));
}

describe('port checks on loopback', () => {
  test('listening (IPv4 and IPv6) and closed ports, from the socket tables', async () => {
    const v4 = await listen('127.0.0.1');
    const v6 = await listen('::1');
    const closed = await closedPort();
    try {
      const checker = new PortChecker({ hostFs, connectTimeoutMs: 1000 });
      const batch = new MetricBatch(1);
      await checker.check([{ port: v4.port }, { port: v6.port }, { port: closed }], batch);
      assert.deepEqual(batch.errors, []);
      const r = byPort(batch.metrics);
      assert.deepEqual(r.get(String(v4.port))!.fields, { listening: 1, result_code: 0 });
      assert.equal(r.get(String(v4.port))!.tags!.result, 'success');
      assert.deepEqual(r.get(String(v6.port))!.fields, { listening: 1, result_code: 0 });
      assert.deepEqual(r.get(String(closed))!.fields, { listening: 0, result_code: 1 });
      assert.equal(r.get(String(closed))!.tags!.result, 'not_listening');
      assert.equal(r.get(String(closed))!.tags!.server, undefined, 'no connect, no server tag');
    } finally {
      v4.server.close();
      v6.server.close();
    }
  });

  test('connect: success with a response time, refused as connection_failed', async () => {
    const up = await listen('127.0.0.1');
    const v6 = await listen('::1');
    const closed = await closedPort();
    try {
      const checker = new PortChecker({ hostFs, connectTimeoutMs: 2000 });
      const batch = new MetricBatch(1);
      await checker.check(
        [
          { port: up.port, connect: true },
          { port: v6.port, connect: true, host: '::1' },
          { port: closed, connect: true },
        ],
        batch,
      );
      const r = byPort(batch.metrics);
      const ok = r.get(String(up.port))!;
      assert.equal(ok.tags!.result, 'success');
      assert.equal(ok.tags!.server, '127.0.0.1');
      assert.equal(ok.fields!.listening, 1);
      const rt = ok.fields!.response_time as number;
      assert.ok(rt > 0 && rt < 2, `response_time ${rt} s`);
      assert.equal(r.get(String(v6.port))!.tags!.result, 'success');
      assert.equal(r.get(String(v6.port))!.tags!.server, '::1');
      const refused = r.get(String(closed))!;
      assert.equal(refused.tags!.result, 'connection_failed');
      assert.deepEqual(refused.fields, { listening: 0, result_code: 2 });
    } finally {
      up.server.close();
      v6.server.close();
    }
  });

  test('a connect that does not complete before its deadline is result=timeout', async () => {
    const up = await listen('127.0.0.1');
    try {
      // Fault injection: a clock whose deadline passes before the connect can complete.
      const expired: Clock = {
        now: () => Date.now(),
        setTimeout: (fn) => {
          queueMicrotask(fn);
          return {};
        },
        clearTimeout: () => undefined,
      };
      const checker = new PortChecker({ hostFs, connectTimeoutMs: 50, clock: expired });
      const batch = new MetricBatch(1);
      await checker.check([{ port: up.port, connect: true }], batch);
      const [m] = batch.metrics;
      assert.equal(m!.tags!.result, 'timeout');
      assert.equal(m!.fields!.result_code, 3);
      assert.equal(m!.fields!.response_time, undefined);
    } finally {
      up.server.close();
    }
  });

  test('unreadable socket tables are data (read_failed), not an exception', async () => {
    const checker = new PortChecker({ hostFs: new HostFs({ root: path.join(tmp, 'no-such-root') }), connectTimeoutMs: 100 });
    const batch = new MetricBatch(1);
    await checker.check([{ port: 80 }], batch);
    assert.equal(batch.metrics[0]!.tags!.result, 'read_failed');
    assert.deepEqual(batch.metrics[0]!.fields, { result_code: 4 });
    assert.equal(batch.errors.length, 1);
  });
});

describe('process checks on real child processes', () => {
  // A copy of sleep under a unique name: comm is the file name, so no other process matches.
  const name = `nsa${randomBytes(4).toString('hex')}`; // 11 characters, under comm's 15
  const dir = tempDir('bin', tmp).dir;
  const binary = path.join(dir, name);
  copyFileSync('/bin/sleep', binary);

  async function start(): Promise<ChildProcess> {
    const child = spawn(binary, ['300'], { stdio: 'ignore' });
    children.add(child);
    await once(child, 'spawn'); // exec has happened: /proc shows the new comm
    return child;
  }

  async function stop(child: ChildProcess): Promise<void> {
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited; // reaped: gone from /proc
    children.delete(child);
  }

  async function check(checker: ProcessChecker): Promise<Record<string, Record<string, unknown>>> {
    const batch = new MetricBatch(1);
    await checker.check([{ name }, { cmdline: dir }], batch);
    assert.deepEqual(batch.errors, []);
    const out: Record<string, Record<string, unknown>> = {};
    for (const m of batch.metrics) out[m.tags!.process_name !== undefined ? 'name' : 'cmdline'] = { ...m.fields, result: m.tags!.result };
    return out;
  }

  test('counts matches, sees a restart, and reports not_running when all are gone', async () => {
    const checker = new ProcessChecker({ hostFs });
    const a = await start();
    const b = await start();
    let r = await check(checker);
    assert.deepEqual(r.name, { count: 2, restarted: 0, started: 0, exited: 0, result_code: 0, result: 'success' });
    assert.deepEqual(r.cmdline, r.name, 'the command line (the binary path) matches the same processes');

    r = await check(checker);
    assert.equal(r.name!.restarted, 0, 'nothing changed');

    await stop(a);
    const c = await start();
    r = await check(checker);
    assert.deepEqual(r.name, { count: 2, restarted: 1, started: 1, exited: 1, result_code: 0, result: 'success' });

    await stop(b);
    await stop(c);
    r = await check(checker);
    assert.deepEqual(r.name, { count: 0, restarted: 1, started: 0, exited: 2, result_code: 1, result: 'not_running' });
    assert.deepEqual(r.cmdline, r.name);
  });
});
