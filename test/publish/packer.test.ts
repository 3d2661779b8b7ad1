import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeMessage } from '../../src/publish/envelope.ts';
import { Batch, MAX_HEADER_BYTES, Packer, Ticket } from '../../src/publish/packer.ts';
import { DroppedError } from '../../src/publish/publisher.ts';
import { FakeClock } from '../helpers/clocks.ts';

function setup(opts: { maxMessageBytes?: number; maxMpubBytes?: number; lingerMs?: number } = {}) {
  const clock = new FakeClock();
  const sealed: Batch[] = [];
  const oversize: number[] = [];
  const packer = new Packer({
    topicPrefix: 'ns.',
    maxMessageBytes: opts.maxMessageBytes ?? 1024,
    maxMpubBytes: opts.maxMpubBytes ?? 4096,
    lingerMs: opts.lingerMs ?? 20,
    clock,
    onSealed: (b) => sealed.push(b),
    onOversize: (_ns, bytes) => oversize.push(bytes),
  });
  /** Adds everything, as publish() does without backpressure. */
  const addAll = (ns: string, lines: string[], ticket = new Ticket(lines.length)): Ticket => {
    let next = 0;
    while (next < lines.length) next = packer.add(ns, lines, next, ticket);
    ticket.doneAdding();
    return ticket;
  };
  return { clock, sealed, oversize, packer, addAll };
}

const lines = (n: number, width = 40): string[] =>
  Array.from({ length: n }, (_, i) => `m,host=h value=${i} ${String(1_700_000_000 + i)}`.padEnd(width, 'x'));

/** MPUB body size: count, then a length before each message. */
const mpubBytes = (b: Batch): number => 4 + b.messages.reduce((s, m) => s + 4 + m.length, 0);

describe('Packer', () => {
  test('a lone line lingers, then is sealed with the namespace header', () => {
    const { clock, sealed, addAll } = setup({ lingerMs: 20 });
    addAll('shop', ['m v=1 1']);
    assert.equal(sealed.length, 0);
    clock.advance(19);
    assert.equal(sealed.length, 0);
    clock.advance(1);
    assert.equal(sealed.length, 1);
    const b = sealed[0] as Batch;
    assert.equal(b.topic, 'ns.shop');
    assert.equal(b.lines, 1);
    assert.deepEqual(decodeMessage(b.messages[0] as Buffer), { namespace: 'shop', body: 'm v=1 1' });
  });

  test('lines fill messages up to maxMessageBytes and messages fill MPUBs up to maxMpubBytes, in order', () => {
    const { clock, sealed, addAll } = setup({ maxMessageBytes: 1024, maxMpubBytes: 4096 });
    const input = lines(500);
    addAll('a b', input);
    clock.advance(20);
    assert.ok(sealed.length > 1);
    const out: string[] = [];
    for (const b of sealed) {
      assert.ok(mpubBytes(b) <= 4096, `MPUB of ${mpubBytes(b)} bytes`);
      assert.equal(b.topic, 'ns.a_b--' + b.topic.slice(-16));
      let count = 0;
      for (const m of b.messages) {
        assert.ok(m.length <= 1024, `message of ${m.length} bytes`);
        const d = decodeMessage(m);
        assert.equal(d.namespace, 'a b');
        const ls = d.body.split('\n');
        count += ls.length;
        out.push(...ls);
      }
      assert.equal(count, b.lines);
    }
    assert.deepEqual(out, input);
    // Full messages except the last of each batch: packing is dense.
    const full = sealed.flatMap((b) => b.messages.slice(0, -1));
    for (const m of full) assert.ok(m.length > 1024 - 45, `message of only ${m.length} bytes`);
  });

  test('namespaces are packed apart, each to its own topic', () => {
    const { clock, sealed, addAll } = setup();
    addAll('one', ['a v=1 1']);
    addAll('two', ['b v=1 1']);
    addAll('one', ['c v=1 1']);
    clock.advance(20);
    const byNs = Object.fromEntries(sealed.map((b) => [b.namespace, b.messages.map((m) => decodeMessage(m).body)]));
    assert.deepEqual(byNs, { one: ['a v=1 1\nc v=1 1'], two: ['b v=1 1'] });
  });

  test('a line too long for any message is dropped and counted; the rest still go', async () => {
    const { clock, sealed, oversize, packer, addAll } = setup({ maxMessageBytes: 1024 });
    const big = 'x'.repeat(1024);
    const ticket = addAll('ns', ['ok v=1 1', big, 'ok v=2 2']);
    clock.advance(20);
    assert.deepEqual(oversize, [1024]);
    assert.equal(sealed[0]?.lines, 2);
    sealed[0]?.settle(false);
    await assert.rejects(ticket.promise, (err: unknown) => err instanceof DroppedError && err.lines === 1 && /longer than nsq.maxMessageBytes/.test(err.message));
    // A small message keeps a quarter for the namespace header, a large one MAX_HEADER_BYTES.
    assert.equal(packer.maxLineBytes, 1024 - 256);
    assert.equal(setup({ maxMessageBytes: 256 * 1024, maxMpubBytes: 4 * 1024 * 1024 }).packer.maxLineBytes, 256 * 1024 - MAX_HEADER_BYTES);
  });

  test('a caller settles once every batch holding its lines settled', async () => {
    const { clock, sealed, addAll } = setup({ maxMessageBytes: 1024, maxMpubBytes: 2100 });
    const t = addAll('ns', lines(100));
    clock.advance(20);
    assert.ok(sealed.length >= 2);
    let done = false;
    void t.promise.then(() => (done = true));
    for (const b of sealed) {
      await Promise.resolve();
      assert.equal(done, false);
      b.settle(false);
    }
    await t.promise;
  });

  test('a batch refused by a bound rejects only the callers with lines in it, with their line count', async () => {
    const { clock, sealed, addAll } = setup();
    const a = addAll('ns', ['a v=1 1', 'a v=2 2']);
    const b = addAll('ns', ['b v=1 1']);
    clock.advance(20);
    assert.equal(sealed.length, 1);
    sealed[0]?.settle(true, 'the spool is full');
    await assert.rejects(a.promise, (err: unknown) => err instanceof DroppedError && err.lines === 2 && /spool is full/.test(err.message));
    await assert.rejects(b.promise, (err: unknown) => err instanceof DroppedError && err.lines === 1);
  });

  test('add() hands control back right after sealing a full batch (room for backpressure)', () => {
    const { sealed, packer } = setup({ maxMessageBytes: 1024, maxMpubBytes: 2100 });
    const input = lines(200);
    const ticket = new Ticket(input.length);
    const first = packer.add('ns', input, 0, ticket);
    assert.ok(first > 0 && first < input.length);
    assert.equal(sealed.length, 1);
  });

  test('sealAll() sends everything lingering at once', () => {
    const { sealed, packer, addAll } = setup();
    addAll('x', ['a v=1 1']);
    addAll('y', ['b v=1 1']);
    packer.sealAll();
    assert.equal(sealed.length, 2);
    assert.equal(packer.openBatches, 0);
    assert.equal(packer.openLines, 0);
  });

  test('multi-byte lines are measured in bytes, mixed with ASCII ones, order kept', () => {
    const { clock, sealed, addAll } = setup({ maxMessageBytes: 1024 });
    const input = Array.from({ length: 120 }, (_, i) => (i % 3 === 0 ? `m v="${'€'.repeat(30)}" ${i}` : `m v=${i} ${i}`.padEnd(60, 'x')));
    addAll('ns', input);
    clock.advance(20);
    const out: string[] = [];
    for (const b of sealed) {
      for (const m of b.messages) {
        assert.ok(m.length <= 1024, `message of ${m.length} bytes`);
        out.push(...decodeMessage(m).body.split('\n'));
      }
    }
    assert.deepEqual(out, input);
  });

  test('options that cannot work are refused', () => {
    const base = { topicPrefix: 'ns.', maxMessageBytes: 1024, maxMpubBytes: 4096, lingerMs: 1, clock: new FakeClock(), onSealed() {}, onOversize() {} };
    assert.throws(() => new Packer({ ...base, topicPrefix: 'bad prefix' }), /prefix/);
    assert.throws(() => new Packer({ ...base, maxMpubBytes: 40 }), /maxMpubBytes/);
    assert.throws(() => new Packer({ ...base, lingerMs: -1 }), /lingerMs/);
  });
});
