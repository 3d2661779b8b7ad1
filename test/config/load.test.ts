// The config loader: every problem reported at once with its JSON path, env substitution,
// paths resolved against the config file's folder, secrets masked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ConfigError, maskSecrets, parseConfig } from '../../src/config/load.ts';
import { REGISTRY_LIMITS } from '../../src/registry/validate.ts';

const at = '/etc/ns-agent/agent.json';

function problems(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, at, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('an empty object is a valid config with every default filled in', () => {
  const cfg = parseConfig({}, at, {});
  assert.equal(cfg.dataDir, '/etc/ns-agent/data');
  assert.equal(cfg.pidFile, '/etc/ns-agent/data/agent.pid');
  assert.equal(cfg.log.level, 'info');
  assert.equal(cfg.http.listen, '127.0.0.1:1988');
  assert.equal(cfg.nsq, undefined);
  assert.equal(cfg.sender.fileSink.dir, '/etc/ns-agent/data/lp');
  assert.equal(cfg.registry.file, path.join('/etc/ns-agent', 'registry.example.json'));
});

test('wrong type, unknown key and missing required field are all reported with their paths', () => {
  const found = problems({ dataDir: 5, bogus: 1, nsq: { topicPrefix: 'ns.' } });
  assert.equal(found.length, 3, found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('$.dataDir: found number, expected string')));
  assert.ok(found.some((p) => p.startsWith('$: unknown key "bogus"')));
  assert.ok(found.some((p) => p.startsWith('$.nsq.nsqdTcpAddresses: required array is missing')));
});

test('nested paths name array indexes', () => {
  const found = problems({ sender: { backends: [{ name: 'a', url: 'http://x:1' }, { name: 'a', url: 'nope' }] } });
  assert.ok(found.some((p) => p.startsWith('$.sender.backends[1].url')), found.join('\n'));
  assert.ok(found.some((p) => p.includes('$.sender.backends[1].name: duplicate backend name "a"')), found.join('\n'));
});

test('${VAR} and ${VAR:-default} are substituted; an unset variable is an error with its path', () => {
  const cfg = parseConfig({ http: { token: '${TOK}' }, hostname: '${HOST:-web-1}' }, at, { TOK: 's3cret' });
  assert.equal(cfg.http.token, 's3cret');
  assert.equal(cfg.hostname, 'web-1');
  const found = problems({ http: { token: '${MISSING}' } });
  assert.deepEqual(found, ['$.http.token: environment variable MISSING is not set (set it, or write "${MISSING:-default}")']);
});

test('an empty token from "${VAR:-}" means no token', () => {
  assert.equal(parseConfig({ http: { token: '${NONE:-}' } }, at, {}).http.token, undefined);
});

test('secrets are masked wherever they are', () => {
  const masked = maskSecrets({ http: { token: 'x' }, sender: { backends: [{ token: 'y', name: 'b' }] } });
  assert.deepEqual(masked, { http: { token: '***' }, sender: { backends: [{ token: '***', name: 'b' }] } });
});

test('nsq.replicas needs as many distinct nsqd addresses, said in one sentence', () => {
  const found = problems({ nsq: { nsqdTcpAddresses: ['127.0.0.1:4150'], replicas: 2 } });
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0] as string, /^\$\.nsq\.replicas: 2 replicas need at least 2 nsqd, but nsqdTcpAddresses names 1: add nsqd addresses or lower replicas/);
  const twice = problems({ nsq: { nsqdTcpAddresses: ['127.0.0.1:4150', '127.0.0.1:4150'], replicas: 2 } });
  assert.match(twice.join('\n'), /\$\.nsq\.nsqdTcpAddresses\[1\]: "127\.0\.0\.1:4150" is listed twice/);
  const ok = parseConfig({ nsq: { nsqdTcpAddresses: ['127.0.0.1:4150', '127.0.0.1:4250'], replicas: 2 } }, at, {});
  assert.equal(ok.nsq?.replicas, 2);
  assert.equal(parseConfig({ nsq: { nsqdTcpAddresses: ['127.0.0.1:4150'] } }, at, {}).nsq?.replicas, 1);
});

test('relay defaults: as many topics as the registry allows namespaces, 25 ms output buffer, 16 MiB in flight', () => {
  const cfg = parseConfig({}, at, {});
  assert.equal(cfg.relay.maxTopics, REGISTRY_LIMITS.maxNamespaces);
  assert.equal(cfg.relay.outputBufferTimeoutMs, 25);
  assert.equal(cfg.relay.maxInFlightBytes, 16 * 1024 * 1024);
});

test('the rules across keys refuse only the mistakes: their edge cases pass', () => {
  const ok = {
    registry: { source: 'http', url: 'https://registry.example/api' },
    nsq: { nsqdTcpAddresses: ['127.0.0.1:4150'], reconnectMinMs: 500, reconnectMaxMs: 500 },
    relay: { topicsFrom: 'both', lookupdHttpAddresses: ['127.0.0.1:4161'], requeueMinMs: 0, requeueMaxMs: 0 },
    sender: { backends: [{ name: 'a', url: 'http://influx:8086' }, { name: 'b', url: 'https://influx:8086/prefix/' }], retryMinMs: 7, retryMaxMs: 7 },
    http: { listen: '0.0.0.0:0', token: 't' },
  };
  assert.doesNotThrow(() => parseConfig(ok, at, {}));
  assert.doesNotThrow(() => parseConfig({ http: { listen: '[::1]:0' } }, at, {}), 'loopback on port 0 (any free port)');
  assert.doesNotThrow(() => parseConfig({ http: { listen: '10.1.2.3:1988', allowInsecureNonLoopback: true } }, at, {}));
  assert.deepEqual(problems({ http: { listen: '127.0.0.1:65536' } }), ['$.http.listen: the port must be at most 65535']);
  assert.deepEqual(problems({ http: { listen: '10.1.2.3:1988', token: '${T:-}' } }), [
    '$.http.listen: "10.1.2.3:1988" is beyond loopback and no http.token is set: set a token, or set http.allowInsecureNonLoopback to true',
  ]);
});
