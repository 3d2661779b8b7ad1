// The exposition parser on string literals, then prom_scrape against a real exporter on loopback
// (prom-client's own output: counters, gauges, histograms, summaries, escaped labels).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { silentLogger } from '../../src/log/logger.ts';
import type { Metric } from '../../src/points/metric.ts';
import { promScrape } from './index.ts';
import { parseExposition } from './parse.ts';

describe('parseExposition', () => {
  test('HELP, TYPE, labels with escapes, timestamps, special values', () => {
    const text = [
      '# HELP http_requests_total The total number of HTTP requests.',
      '# TYPE http_requests_total counter',
      'http_requests_total{method="post",code="200"} 1027 1395066363000',
      'http_requests_total{method="post",code="400"}    3 1395066363000',
      '',
      '# Escaping in label values:',
      'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
      '# HELP help_with_escapes line one\\nline two \\\\ done',
      'metric_without_timestamp_and_labels 12.47',
      'something_weird{problem="division by zero"} +Inf -3982045',
      'minus_inf -Inf',
      'not_a_number NaN',
      'trailing_comma{a="1",} 2',
      'spaces_inside { a = "1" , b="2" } 3',
      'hex_value 0x1A',
    ].join('\n');
    const out = parseExposition(text);
    assert.deepEqual(out.errors, []);
    assert.equal(out.types.get('http_requests_total'), 'counter');
    assert.equal(out.help.get('http_requests_total'), 'The total number of HTTP requests.');
    assert.equal(out.help.get('help_with_escapes'), 'line one\nline two \\ done');
    const [first, second, msdos, plain, weird, minus, nan, trailing, spaced, hex] = out.samples;
    assert.deepEqual(first, { name: 'http_requests_total', labels: { method: 'post', code: '200' }, value: 1027, timestampMs: 1395066363000 });
    assert.equal(second?.value, 3);
    assert.deepEqual(msdos?.labels, { path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' });
    assert.equal(msdos?.value, 1458255915);
    assert.deepEqual(plain, { name: 'metric_without_timestamp_and_labels', labels: {}, value: 12.47 });
    assert.deepEqual([weird?.value, weird?.timestampMs], [Infinity, -3982045]);
    assert.equal(minus?.value, -Infinity);
    assert.ok(Number.isNaN(nan?.value));
    assert.deepEqual(trailing?.labels, { a: '1' });
    assert.deepEqual(spaced?.labels, { a: '1', b: '2' });
    assert.equal(hex?.value, 26);
  });

  test('histograms and summaries are plain samples with le / quantile labels', () => {
    const out = parseExposition(
      [
        '# TYPE rpc_duration_seconds summary',
        'rpc_duration_seconds{quantile="0.5"} 4773',
        'rpc_duration_seconds{quantile="0.99"} NaN',
        'rpc_duration_seconds_sum 1.7560473e+07',
        'rpc_duration_seconds_count 2693',
        '# TYPE req_seconds histogram',
        'req_seconds_bucket{le="0.05"} 24054',
        'req_seconds_bucket{le="+Inf"} 144320',
        'req_seconds_sum 53423',
        'req_seconds_count 144320',
      ].join('\n'),
    );
    assert.equal(out.types.get('req_seconds'), 'histogram');
    assert.deepEqual(
      out.samples.map((s) => [s.name, s.labels.le ?? s.labels.quantile ?? '', s.value]),
      [
        ['rpc_duration_seconds', '0.5', 4773],
        ['rpc_duration_seconds', '0.99', NaN],
        ['rpc_duration_seconds_sum', '', 17560473],
        ['rpc_duration_seconds_count', '', 2693],
        ['req_seconds_bucket', '0.05', 24054],
        ['req_seconds_bucket', '+Inf', 144320],
        ['req_seconds_sum', '', 53423],
        ['req_seconds_count', '', 144320],
      ],
    );
  });

  test('Prometheus 3 quoted UTF-8 names; OpenMetrics # EOF ends the page', () => {
    const out = parseExposition('{"my.dotted.metric", "ünïcode label"="v"} 1\r\n# EOF\nafter_eof 2\n');
    assert.deepEqual(out.samples, [{ name: 'my.dotted.metric', labels: { 'ünïcode label': 'v' }, value: 1 }]);
  });

  test('a bad line is reported with its number and skipped; the rest is kept', () => {
    const out = parseExposition(['good 1', 'bad{a="1" 2', 'bad{a="unterminated} 2', 'bad{a="1",a="2"} 3', 'bad_value abc', '1bad 2', 'no_value', 'extra 1 2 3', '# TYPE x wibble', 'good_too 2'].join('\n'));
    assert.deepEqual(out.samples.map((s) => s.name), ['good', 'good_too']);
    assert.equal(out.errorCount, 8);
    assert.match(out.errors[0] ?? '', /^line 2: expected ","/);
    assert.match(out.errors[1] ?? '', /^line 3: unterminated quoted string/);
    assert.match(out.errors[2] ?? '', /^line 4: label a appears twice/);
    assert.match(out.errors[3] ?? '', /^line 5: value "abc" is not a number/);
    assert.match(out.errors[7] ?? '', /^line 9: unknown metric type "wibble"/);
  });

  test('maxSamples bounds what is kept, and counts the rest', () => {
    const text = Array.from({ length: 10 }, (_, i) => `m{i="${i}"} ${i}`).join('\n');
    const out = parseExposition(text, { maxSamples: 4 });
    assert.equal(out.samples.length, 4);
    assert.equal(out.overLimit, 6);
  });
});

describe('prom_scrape', () => {
  const registry = new Registry();
  let server: http.Server;
  let base: string;
  let requests = 0;

  before(async () => {
    const counter = new Counter({ name: 'jobs_total', help: 'Jobs done', labelNames: ['queue', 'url', 'note'], registers: [registry] });
    counter.inc({ queue: 'mail', url: '/x', note: 'say "hi"\\ there\nnext' }, 5);
    new Gauge({ name: 'temperature_celsius', help: 'Temp', registers: [registry] }).set(21.5);
    new Gauge({ name: 'not_yet', help: 'NaN gauge', registers: [registry] }).set(NaN);
    const h = new Histogram({ name: 'latency_seconds', help: 'Latency', buckets: [0.1, 1], registers: [registry] });
    h.observe(0.05);
    h.observe(0.5);
    const sum = new Summary({ name: 'size_bytes', help: 'Sizes', percentiles: [0.5], registers: [registry] });
    sum.observe(10);
    server = http.createServer((req, res) => {
      requests++;
      if (req.url === '/metrics') {
        void registry.metrics().then((text) => res.end(text));
      } else if (req.url === '/huge') {
        res.write('# a big page\n');
        const line = `${'x'.repeat(60)} 1\n`;
        for (let i = 0; i < 5000; i++) res.write(line);
        res.end();
      } else {
        res.statusCode = 500;
        res.end('boom');
      }
    });
    base = await new Promise<string>((r) => server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
  });
  after(() => server.close());

  const run = (params: Record<string, unknown>): Promise<Metric[]> =>
    promScrape(params, { signal: new AbortController().signal, timeoutMs: 5000, logger: silentLogger() });

  test("an exporter's page becomes metrics tagged with its labels and the URL", async () => {
    const url = `${base}/metrics`;
    const metrics = await run({ url });
    const find = (name: string, tags: Record<string, string> = {}) =>
      metrics.filter((m) => m.name === name && Object.entries(tags).every(([k, v]) => m.tags?.[k] === v));
    const [jobs] = find('jobs_total');
    assert.deepEqual(jobs?.tags, { queue: 'mail', exported_url: '/x', note: 'say "hi"\\ there\nnext', url });
    assert.equal(jobs?.value, 5);
    assert.equal(find('temperature_celsius')[0]?.value, 21.5);
    assert.deepEqual(find('latency_seconds_bucket').map((m) => [m.tags?.le, m.value]), [['0.1', 1], ['1', 2], ['+Inf', 2]]);
    assert.equal(find('latency_seconds_count')[0]?.value, 2);
    assert.equal(find('size_bytes', { quantile: '0.5' })[0]?.value, 10);
    assert.equal(find('not_yet').length, 0, 'NaN cannot be stored: dropped');
    assert.equal(find('scrape_dropped')[0]?.value, 1);
    assert.deepEqual([find('scrape_up')[0]?.value, find('scrape_up')[0]?.tags?.error], [1, 'none']);
    assert.equal(find('scrape_parse_errors')[0]?.value, 0);
    assert.equal(find('scrape_samples')[0]?.value, metrics.filter((m) => !m.name.startsWith('scrape_')).length);
  });

  test('include keeps only the named metric families', async () => {
    const metrics = await run({ url: `${base}/metrics`, include: ['latency_'] });
    assert.deepEqual([...new Set(metrics.filter((m) => !m.name.startsWith('scrape_')).map((m) => m.name))].sort(), [
      'latency_seconds_bucket',
      'latency_seconds_count',
      'latency_seconds_sum',
    ]);
  });

  test('a body past maxBodyBytes, an HTTP error or a closed port: scrape_up 0 with the reason', async () => {
    const before = requests;
    const metrics = await run({ urls: [`${base}/huge`, `${base}/broken`, 'http://127.0.0.1:1/metrics'], maxBodyBytes: 64 * 1024 });
    const up = (url: string) => metrics.find((m) => m.name === 'scrape_up' && m.tags?.url === url);
    assert.deepEqual([up(`${base}/huge`)?.value, up(`${base}/huge`)?.tags?.error], [0, 'body_too_large']);
    assert.deepEqual(up(`${base}/broken`)?.tags?.error, 'http_500');
    assert.deepEqual(up('http://127.0.0.1:1/metrics')?.tags?.error, 'connection_refused');
    assert.equal(requests - before, 2);
  });

  test('params are checked with a sentence naming the param', () => {
    assert.throws(() => promScrape.checkParams?.({ urls: [] }), /param "urls": array must contain at least 1/);
    assert.throws(() => promScrape.checkParams?.({ url: `${base}/metrics`, maxBodyBytes: 10 }), /param "maxBodyBytes"/);
  });
});
