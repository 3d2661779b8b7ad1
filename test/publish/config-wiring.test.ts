// The parts of issue #3 built from a parsed config exactly as the composition root wires them
// (see the report / README): the embedded default end to end, and the NSQ publisher's options
// taken straight from the `nsq` section.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import { Pipeline } from '../../src/points/pipeline.ts';
import { InProcessPublisher } from '../../src/publish/inprocess.ts';
import { NsqPublisher } from '../../src/publish/nsq-publisher.ts';
import { FileSink, fileBaseFor } from '../../src/sender/file-sink.ts';
import { freePort } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function configIn(raw: Record<string, unknown>) {
  const dir = tempDir('wiring-').dir;
  dirs.push(dir);
  return parseConfig({ hostname: 'wired-host', dataDir: 'data', ...raw }, path.join(dir, 'agent.json'));
}

describe('wiring from the config', () => {
  test('no nsq section: metrics go through the pipeline, in-process, into <dataDir>/lp/<ns>.lp', async () => {
    const cfg = configIn({});
    assert.equal(cfg.nsq, undefined);
    const metrics = new Registry();
    const logger = silentLogger();
    const sender = new FileSink({ ...cfg.sender.fileSink, logger });
    const publisher = new InProcessPublisher({
      sender,
      metrics,
      logger,
      clock: systemClock,
      maxPendingLines: cfg.sender.maxQueuedPoints,
      retryMinMs: cfg.sender.retryMinMs,
      retryMaxMs: cfg.sender.retryMaxMs,
    });
    const pipeline = new Pipeline({ normaliser: new Normaliser({ hostname: cfg.hostname, clock: systemClock }), publisher, metrics, logger });
    // Sinks first, sources last; stop in reverse.
    await sender.start();
    await publisher.start();
    const result = await pipeline.push('shop web', [{ name: 'qps', timestamp: 1_700_000_000, tags: { api: 'login' }, value: 12.5 }]);
    assert.equal(result.accepted, 1);
    await publisher.stop();
    await sender.stop();
    const file = path.join(cfg.dataDir, 'lp', `${fileBaseFor('shop web')}.lp`);
    assert.equal(readFileSync(file, 'utf8'), 'qps,api=login,host=wired-host value=12.5 1700000000\n');
    const text = await metrics.metrics();
    assert.match(text, /nsagent_points_accepted_total 1/);
    assert.match(text, /nsagent_publish_published_lines_total 1/);
  });

  test('an nsq section maps onto NsqPublisherOptions as it is (spool under <dataDir>/spool)', async () => {
    const cfg = configIn({ nsq: { nsqdTcpAddresses: [`127.0.0.1:${await freePort()}`] } });
    assert.ok(cfg.nsq);
    const publisher = new NsqPublisher({ ...cfg.nsq, metrics: new Registry(), logger: silentLogger(), clock: systemClock, connectWaitMs: 0 });
    await publisher.start();
    await publisher.publish('ns', ['m v=1 1']);
    const status = publisher.status();
    assert.equal(status.spool.dir, path.join(cfg.dataDir, 'spool'));
    assert.equal(status.counters.spooledLines, 1);
    assert.equal(status.topicPrefix, 'ns.');
    await publisher.stop();
  });
});
