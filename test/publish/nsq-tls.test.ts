// The agent → remote nsqd hop across data centres: a real nsqd that requires TLS and a client
// certificate signed by a throwaway CA. The publisher (snappy) and the relay's readers (deflate)
// carry every line through it; a wrong CA, a wrong name or a missing client certificate is
// refused with a sentence that says which.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { nsqSchema, relaySchema, type ConfigInput } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { NsqPublisher } from '../../src/publish/nsq-publisher.ts';
import { createRelay } from '../../src/relay/relay.ts';
import type { LineBlock } from '../../src/sender/line-block.ts';
import type { GatewaySender, WriteOutcome } from '../../src/sender/types.ts';
import { makeTestCerts, type TestCerts } from '../helpers/certs.ts';
import { startNsqd, stopAll, type NsqdHandle } from '../helpers/servers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

type NsqInput = NonNullable<ConfigInput['nsq']>;

let certs: TestCerts;
let nsqd: NsqdHandle;
const stops: Array<() => Promise<void>> = [];

before(async () => {
  certs = makeTestCerts();
  nsqd = await startNsqd({
    extraArgs: [
      `--tls-cert=${certs.serverCertFile}`,
      `--tls-key=${certs.serverKeyFile}`,
      `--tls-root-ca-file=${certs.caFile}`,
      '--tls-client-auth-policy=require-verify',
      // TLS for every TCP client; plain HTTP stays for the helpers' /ping and /stats.
      '--tls-required=tcp-https',
    ],
  });
});
after(async () => {
  for (const stop of stops.reverse()) await stop();
  await stopAll();
});

function publisher(nsq: Partial<NsqInput>): NsqPublisher {
  const dir = tempDir('ns-agent-nsq-tls-').dir;
  const cfg = nsqSchema.parse({ nsqdTcpAddresses: [nsqd.tcpAddress], reconnectMinMs: 50, reconnectMaxMs: 300, ...nsq, spool: { dir } });
  const p = new NsqPublisher({
    ...cfg,
    spool: { ...cfg.spool, dir },
    metrics: new Registry(),
    logger: silentLogger(),
    connectWaitMs: 3000,
  });
  stops.push(() => p.stop());
  return p;
}

/** A sender that keeps what it is given: the hop under test ends at the relay. */
class Collecting implements GatewaySender {
  readonly lines: string[] = [];
  private waiter: { n: number; resolve: () => void } | undefined;
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async write(_ns: string, lines: readonly string[] | LineBlock): Promise<WriteOutcome> {
    this.lines.push(...lines);
    if (this.waiter && this.lines.length >= this.waiter.n) this.waiter.resolve();
    return { written: lines.length, deadLettered: 0 };
  }
  status(): Record<string, unknown> {
    return {};
  }
  until(n: number, timeoutMs: number): Promise<void> {
    if (this.lines.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.lines.length} of ${n} lines after ${timeoutMs} ms`)), timeoutMs);
      this.waiter = { n, resolve: () => (clearTimeout(timer), resolve()) };
    });
  }
}

async function lastLinkError(p: NsqPublisher, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const link = p.status().nsqd[0];
    if (link?.lastError) return link.lastError;
    if (Date.now() > deadline) throw new Error('no link error reported');
    await delay(50);
  }
}

const mutualTls = (): { caFile: string; certFile: string; keyFile: string } => ({ caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile });

describe('agent → nsqd with TLS and a client certificate', () => {
  test('publisher (snappy) and relay readers (deflate) carry every line through a TLS-only nsqd', async () => {
    const p = publisher({ tls: mutualTls(), compression: 'snappy' });
    await p.start();
    assert.equal(p.status().nsqd[0]?.state, 'ready', JSON.stringify(p.status().nsqd[0]));
    const lines = Array.from({ length: 2000 }, (_, i) => `tls,host=h value=${i} ${1_700_000_000 + i}`);
    for (let i = 0; i < lines.length; i += 100) await p.publish('tls-ns', lines.slice(i, i + 100));

    const sender = new Collecting();
    const relay = createRelay(
      {
        relay: relaySchema.parse({ channel: 'tls', tls: mutualTls(), compression: 'deflate', lookupdPollIntervalSec: 1 }),
        nsq: { nsqdTcpAddresses: [nsqd.tcpAddress], topicPrefix: 'ns.' },
        sender: { deadLetterDir: tempDir('ns-agent-nsq-tls-dl-').dir, deadLetterMaxFileBytes: 1 << 20 },
      },
      { sender, namespaces: { current: () => ['tls-ns'], onChange: () => {} }, logger: silentLogger() },
    );
    await relay.start();
    stops.push(() => relay.stop());
    await sender.until(lines.length, 20_000);
    assert.deepEqual([...sender.lines].sort(), [...lines].sort());
    // nsqd's view of both ends: TLS and the asked compression were negotiated.
    const stats = JSON.parse(await (await fetch(`http://${nsqd.httpAddress}/stats?format=json`)).text()) as {
      topics: Array<{ topic_name: string; channels: Array<{ clients: Array<{ tls: boolean; deflate: boolean; snappy: boolean }> }> }>;
      producers?: Array<{ tls: boolean; deflate: boolean; snappy: boolean }>;
    };
    const clients = stats.topics.find((t) => t.topic_name === 'ns.tls-ns')?.channels[0]?.clients ?? [];
    assert.deepEqual(clients.map((c) => [c.tls, c.deflate, c.snappy]), [[true, true, false]]);
    assert.ok((stats.producers ?? []).some((c) => c.tls && c.snappy && !c.deflate), JSON.stringify(stats.producers));
  });

  test('a server certificate from another CA is refused, naming the CA file', async () => {
    const p = publisher({ tls: { ...mutualTls(), caFile: certs.otherCaFile } });
    await p.start();
    assert.match(await lastLinkError(p), /nsqd 127\.0\.0\.1:\d+: TLS certificate not trusted: it is not signed by the CA file ".*other-ca\.crt"/);
    assert.notEqual(p.status().nsqd[0]?.state, 'ready');
  });

  test('a server name the certificate does not hold is refused, naming the name', async () => {
    const p = publisher({ tls: { ...mutualTls(), serverName: 'nsqd.dc2.example' } });
    await p.start();
    assert.match(await lastLinkError(p), /TLS certificate does not hold the name "nsqd\.dc2\.example"/);
  });

  test('serverName "localhost" (held by the certificate) is accepted while dialling 127.0.0.1', async () => {
    const p = publisher({ tls: { ...mutualTls(), serverName: 'localhost' } });
    await p.start();
    assert.equal(p.status().nsqd[0]?.state, 'ready', JSON.stringify(p.status().nsqd[0]));
  });

  test('without a client certificate nsqd refuses the link, and the sentence says so', async () => {
    const p = publisher({ tls: { caFile: certs.caFile } });
    await p.start();
    assert.match(await lastLinkError(p), /the server refused a missing client certificate/);
  });
});

describe('agent → nsqd with an auth secret', () => {
  test('the secret nsqd\'s auth server accepts publishes; another is refused and said so', async () => {
    const seen: string[] = [];
    // nsqd's --auth-http-address contract: GET /auth?secret=…, 200 with authorizations or a refusal.
    const auth = createServer((req, res) => {
      const secret = new URL(req.url ?? '/', 'http://x').searchParams.get('secret') ?? '';
      seen.push(secret);
      if (secret !== 'dc2-secret') return void res.writeHead(403).end('{"message":"unknown secret"}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ ttl: 3600, identity: 'dc2', authorizations: [{ topic: '.*', channels: ['.*'], permissions: ['publish', 'subscribe'] }] }),
      );
    });
    await new Promise<void>((resolve) => auth.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise((resolve) => auth.close(() => resolve())));
    const authd = await startNsqd({
      extraArgs: [
        `--auth-http-address=127.0.0.1:${(auth.address() as AddressInfo).port}`,
        `--tls-cert=${certs.serverCertFile}`,
        `--tls-key=${certs.serverKeyFile}`,
        '--tls-required=tcp-https',
      ],
    });
    const make = (authSecret: string): NsqPublisher => {
      const dir = tempDir('ns-agent-nsq-auth-').dir;
      const cfg = nsqSchema.parse({ nsqdTcpAddresses: [authd.tcpAddress], reconnectMinMs: 50, reconnectMaxMs: 300, tls: { caFile: certs.caFile }, authSecret, spool: { dir } });
      const p = new NsqPublisher({ ...cfg, spool: { ...cfg.spool, dir }, metrics: new Registry(), logger: silentLogger(), connectWaitMs: 3000 });
      stops.push(() => p.stop());
      return p;
    };
    const good = make('dc2-secret');
    await good.start();
    await good.publish('auth-ns', ['auth value=1 1700000000']);
    assert.equal(good.status().nsqd[0]?.state, 'ready');
    const bad = make('wrong-secret');
    await bad.start();
    assert.match(await lastLinkError(bad), /AUTH/i);
    assert.notEqual(bad.status().nsqd[0]?.state, 'ready');
    assert.ok(seen.includes('dc2-secret') && seen.includes('wrong-secret'), `auth server saw ${JSON.stringify(seen)}`);
  });
});
