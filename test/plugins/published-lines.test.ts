// A git plugin and a built-in plugin through the real points pipeline (normaliser → publisher):
// renaming to PLUGIN.<name>.<metric>, host tag, the result point, each to its namespace.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../goplugins/index.ts';
import { systemClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Normaliser } from '../../src/points/normalise.ts';
import { Pipeline } from '../../src/points/pipeline.ts';
import { PluginManager } from '../../src/plugins/plugin-manager.ts';
import type { Publisher } from '../../src/publish/publisher.ts';
import { FakeScheduler, TestRepo, fixture } from './helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

class CapturingPublisher implements Publisher {
  readonly published: Array<{ namespace: string; line: string }> = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async publish(namespace: string, lines: readonly string[]): Promise<void> {
    for (const line of lines) this.published.push({ namespace, line });
  }
  status(): Record<string, unknown> {
    return {};
  }
}

let root: { dir: string; cleanup: () => void };
before(() => {
  root = tempDir('published');
});
after(() => root.cleanup());

describe('plugin points through the real pipeline', () => {
  test('metrics renamed PLUGIN.<name>.<metric>, host tag added, result point last, in the right namespace', async () => {
    const config = parseConfig({ hostname: 'web-01', plugins: { cacheDir: 'cache', allowLocalRepos: true } }, path.join(root.dir, 'agent.json'));
    const publisher = new CapturingPublisher();
    const sink = new Pipeline({ normaliser: new Normaliser({ hostname: 'web-01', clock: systemClock }), publisher, metrics: new Registry(), logger: silentLogger() });
    const scheduler = new FakeScheduler();
    const manager = new PluginManager({
      config: config.plugins,
      stateFile: path.join(config.dataDir, 'plugins-state.json'),
      scheduler,
      sink,
      builtins: builtinPlugins,
      logger: silentLogger(),
    });
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      await manager.start();
      const repo = new TestRepo(root.dir, 'ok');
      repo.commit({ 'plugin.sh': fixture('ok') });
      await manager.reconcile({
        'shop.web': [{ repo: repo.url, interval: 10, params: ['x y'] }],
        'shop.db': [{ builtin: 'tcp_probe', interval: 10, params: { address } }],
      });
      await scheduler.fire('plugin:shop.web/ok');
      await scheduler.fire('plugin:shop.db/tcp_probe');
      const web = publisher.published.filter((p) => p.namespace === 'shop.web').map((p) => p.line);
      assert.equal(web.length, 3);
      assert.match(web[0] ?? '', /^PLUGIN\.ok\.answer,arg=x\\ y,host=web-01 value=42 \d{10}$/);
      assert.match(web[1] ?? '', /^PLUGIN\.ok\.uid,host=web-01 value=65534 \d{10}$/);
      assert.match(web[2] ?? '', /^PLUGIN\.ok,host=web-01 duration_ms=[\d.]+,error="",exit_code=0,metric_count=2,output_bytes=\d+,output_capped=F,rejected_count=0,success=T,timed_out=F \d{10}$/);
      const db = publisher.published.filter((p) => p.namespace === 'shop.db').map((p) => p.line);
      assert.match(db[0] ?? '', new RegExp(`^PLUGIN\\.tcp_probe\\.up,address=${address.replace(/\./g, '\\.')},host=web-01,result=ok value=1 \\d{10}$`));
      assert.match(db.at(-1) ?? '', /^PLUGIN\.tcp_probe,host=web-01 .*success=T/);
    } finally {
      server.close();
      await manager.stop();
    }
  });

  test('a metric the pipeline refuses is counted in the result point; the others are published', async () => {
    const config = parseConfig({ hostname: 'web-01', plugins: { cacheDir: 'cache2', allowLocalRepos: true } }, path.join(root.dir, 'agent.json'));
    const publisher = new CapturingPublisher();
    const sink = new Pipeline({ normaliser: new Normaliser({ hostname: 'web-01', clock: systemClock }), publisher, metrics: new Registry(), logger: silentLogger() });
    const scheduler = new FakeScheduler();
    const manager = new PluginManager({ config: config.plugins, stateFile: path.join(root.dir, 'state2.json'), scheduler, sink, builtins: {}, logger: silentLogger() });
    try {
      await manager.start();
      const repo = new TestRepo(path.join(root.dir, 'mixed'), 'mixed');
      repo.commit({ 'plugin.sh': `echo '[{"name":"good","value":1},{"value":2},{"name":"nan","value":"x","tags":{"time":"1"}}]'\n` });
      await manager.reconcile({ ns: [{ repo: repo.url, interval: 0 }] });
      const reply = await manager.run('ns', repo.url, {});
      assert.ok(reply.ok);
      assert.equal(reply.result.success, true);
      assert.equal(reply.result.metricCount, 1);
      assert.equal(reply.result.rejectedCount, 2);
      assert.deepEqual(reply.result.rejected?.map((r) => r.index), [1, 2]);
      const lines = publisher.published.map((p) => p.line);
      assert.match(lines[0] ?? '', /^PLUGIN\.mixed\.good,host=web-01 value=1/);
      assert.match(lines[1] ?? '', /metric_count=1,.*rejected_count=2,success=T/);
    } finally {
      await manager.stop();
    }
  });
});
