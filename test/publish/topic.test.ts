import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeMessage, encodeMessage, messageHeader } from '../../src/publish/envelope.ts';
import { isValidTopic, topicFor } from '../../src/topic-names.ts';

describe('topicFor', () => {
  test('a namespace that is a valid NSQ name keeps it, after the prefix', () => {
    assert.equal(topicFor('shop.web-1_a'), 'ns.shop.web-1_a');
    assert.equal(topicFor('shop', 'agent.'), 'agent.shop');
    assert.equal(topicFor('shop', ''), 'shop');
  });

  test('any other namespace gets a readable cut and 16 hex digits of its hash, always a valid topic', () => {
    const hostile = [
      'team a/b c',
      'x'.repeat(100),
      'café.東京',
      '',
      '../../etc/passwd',
      'a#ephemeral',
      'tab\tnew\nline',
      'ns' + '€'.repeat(70),
    ];
    for (const ns of hostile) {
      const t = topicFor(ns);
      assert.ok(isValidTopic(t), `${JSON.stringify(ns)} → ${t} is not a valid topic`);
      assert.match(t, /^ns\.[.a-zA-Z0-9_-]*--[0-9a-f]{16}$/);
    }
    assert.equal(topicFor('team a/b c').slice(0, 14), 'ns.team_a_b_c-');
    assert.equal(topicFor('café').slice(0, 9), 'ns.cafe--');
    assert.equal(topicFor('équipe A/b').slice(0, 15), 'ns.equipe_A_b--');
  });

  test('look-alike namespaces get different topics', () => {
    const names = ['a b', 'a_b', 'a/b', 'a\\b', 'a  b', 'A b', 'x'.repeat(61), 'x'.repeat(62), 'x'.repeat(100), 'x'.repeat(101)];
    const topics = names.map((n) => topicFor(n));
    assert.equal(new Set(topics).size, names.length, topics.join('\n'));
  });

  test('a namespace shaped like a hashed topic is hashed too, so it cannot take another\'s topic', () => {
    const other = 'a b';
    const t = topicFor(other);
    const lookalike = t.slice('ns.'.length);
    assert.notEqual(topicFor(lookalike), t);
    assert.match(topicFor(lookalike), /--[0-9a-f]{16}$/);
  });

  test('the longest plain name fits exactly; one more character is hashed', () => {
    assert.equal(topicFor('y'.repeat(61)), `ns.${'y'.repeat(61)}`);
    assert.notEqual(topicFor('y'.repeat(62)), `ns.${'y'.repeat(62)}`);
    assert.equal(topicFor('y'.repeat(62)).length, 64);
  });

  test('the mapping is stable (the relay computes the same topics)', () => {
    assert.equal(topicFor('team a/b c'), topicFor('team a/b c'));
  });
});

describe('envelope', () => {
  test('the exact namespace travels in the header and the body is the lines', () => {
    const ns = 'équipe A/b\n#x %41';
    const msg = encodeMessage(ns, ['m v=1 1', 'm v=2 2']);
    assert.ok(msg.toString().startsWith(messageHeader(ns)));
    assert.deepEqual(decodeMessage(msg), { namespace: ns, body: 'm v=1 1\nm v=2 2' });
    assert.equal(msg.toString().split('\n').length, 3, 'the header is exactly one line');
  });

  test('a body without a header or with a broken one is refused with a reason', () => {
    assert.throws(() => decodeMessage('m v=1 1'), /no "# ns=" header/);
    assert.throws(() => decodeMessage('# ns=%E0%A4%A\nm v=1'), /malformed namespace/);
    assert.throws(() => decodeMessage('# ns=\nm v=1'), /empty namespace/);
  });
});
