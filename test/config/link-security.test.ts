// The keys for hops that leave a data centre: TLS, compression and credentials, their secrets
// taken from the environment and masked when the config is printed.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, maskSecrets, parseConfig } from '../../src/config/load.ts';

const at = path.resolve('agent.json');

function problems(raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(raw, at, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('link settings parse, secrets come from the environment and are masked', () => {
  const cfg = parseConfig(
    {
      nsq: { nsqdTcpAddresses: ['nsqd.dc2:4150'], tls: { caFile: '/ca.pem', serverName: 'nsqd.dc2' }, compression: 'snappy', authSecret: '${NSQ_SECRET}' },
      relay: { compression: 'deflate' },
      sender: { backends: [{ name: 'central', url: 'https://influx:8086', username: 'dc2', password: '${INFLUX_PASSWORD}', tls: { caFile: '/ca.pem' } }] },
    },
    at,
    { NSQ_SECRET: 'n-s3cret', INFLUX_PASSWORD: 'i-s3cret' },
  );
  assert.equal(cfg.nsq?.authSecret, 'n-s3cret');
  assert.equal(cfg.nsq?.compression, 'snappy');
  assert.equal(cfg.relay.compression, 'deflate');
  assert.equal(cfg.relay.tls, undefined, 'absent: the relay takes the nsq section\'s');
  assert.equal(cfg.sender.backends[0]?.password, 'i-s3cret');
  const printed = JSON.stringify(maskSecrets(cfg));
  assert.ok(!printed.includes('n-s3cret') && !printed.includes('i-s3cret'), printed);
});

test('bad link settings are refused with a sentence naming the key', () => {
  assert.match(problems({ nsq: { nsqdTcpAddresses: ['h:1'], tls: { certFile: '/c.pem' } } }), /nsq\.tls\.keyFile.*certFile and keyFile go together/);
  assert.match(problems({ nsq: { nsqdTcpAddresses: ['h:1'], compression: 'gzip' } }), /nsq\.compression/);
  assert.match(problems({ sender: { backends: [{ name: 'b', url: 'http://h:8086', tls: { caFile: '/ca' } }] } }), /sender\.backends\[0\]\.tls: tls needs an https:\/\/ url/);
  assert.match(problems({ sender: { backends: [{ name: 'b', url: 'https://h:8086', token: 't', username: 'u' }] } }), /either token or username\/password/);
});
