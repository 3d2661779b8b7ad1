// Which topics the relay consumes: registry namespaces mapped like the publisher maps them,
// nsqlookupd topics filtered by prefix, and a failing lookupd keeping its last answer (fault
// injected through the fetch seam; the real nsqlookupd path is in relay.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/log/logger.ts';
import { topicFor } from '../../src/topic-names.ts';
import { namespacesFromRegistry, TopicSource } from '../../src/relay/topic-source.ts';
import type { RegistrySnapshot } from '../../src/registry/types.ts';

const snapshot = (namespaces: string[]): RegistrySnapshot => ({ namespaces, checks: {}, plugins: {} });

void test('registry: each namespace through topicFor with the prefix; changes are passed on', async () => {
  let snap = snapshot(['a.b', 'team/x y']);
  const listeners: Array<(s: RegistrySnapshot) => void> = [];
  const ns = namespacesFromRegistry({ current: () => snap, onChange: (l) => listeners.push(l) });
  let changed = 0;
  ns.onChange(() => changed++);
  const src = new TopicSource({ topicsFrom: 'registry', topicPrefix: 'p.', namespaces: ns, lookupdHttpAddresses: [], timeoutMs: 1000, logger: silentLogger() });
  assert.deepEqual(await src.topics(), ['p.a.b', topicFor('team/x y', 'p.')].sort());
  snap = snapshot(['c']);
  for (const l of listeners) l(snap);
  assert.equal(changed, 1);
  assert.deepEqual(await src.topics(), ['p.c']);
});

void test('lookupd: prefix-filtered, both answer shapes, union with the registry, last good answer kept', async () => {
  let fail = false;
  const fetchFn = (async (url: string | URL) => {
    if (fail) throw new Error('connect ECONNREFUSED');
    const body = String(url).includes(':1/') ? { topics: ['ns.one', 'other', 'ns.two#ephemeral'] } : { status_code: 200, data: { topics: ['ns.three'] } };
    return new Response(JSON.stringify(body), { status: 200 });
  }) as typeof fetch;
  const src = new TopicSource({
    topicsFrom: 'both',
    topicPrefix: 'ns.',
    namespaces: { current: () => ['reg'], onChange: () => undefined },
    lookupdHttpAddresses: ['127.0.0.1:1', '127.0.0.1:2'],
    timeoutMs: 1000,
    logger: silentLogger(),
    fetch: fetchFn,
  });
  assert.deepEqual(await src.topics(), ['ns.one', 'ns.reg', 'ns.three']);
  fail = true;
  assert.deepEqual(await src.topics(), ['ns.one', 'ns.reg', 'ns.three']);
  assert.equal(src.stats.lookupdFailures, 2);
});

void test('misconfiguration is refused with a sentence', () => {
  const logger = silentLogger();
  assert.throws(() => new TopicSource({ topicsFrom: 'registry', topicPrefix: 'ns.', lookupdHttpAddresses: [], timeoutMs: 1, logger }), /no namespace source/);
  assert.throws(
    () => new TopicSource({ topicsFrom: 'lookupd', topicPrefix: 'ns.', lookupdHttpAddresses: [], timeoutMs: 1, logger }),
    /set relay.lookupdHttpAddresses/,
  );
});
