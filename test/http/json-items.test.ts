// The JSON body reader on string literals: bodies over 1 MiB are cut into items by a scan of
// their structure and parsed item by item; the result must be JSON.parse's, and whatever
// JSON.parse refuses must still be a 400 naming the problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/http/envelope.ts';
import { readJsonItems } from '../../src/http/json-items.ts';

const opts = { hint: 'send JSON', maxItems: 1_000_000, sliceMs: 5 };
const ITEMS: unknown[] = [
  { name: 'a', value: 1, tags: { t: 'x,y]}{["' } },
  { name: 'quote \\" inside', value: 'tricky \\\\" end', fields: { 'k"': [1, [2, { a: ']' }]] } },
  0,
  'a string, with [brackets] and {braces} and \\',
  [1, 2, [3]],
  null,
  { nested: { deep: [[[[{}]]]] } },
  true,
  '\u00e9\u2713 \ud83d\ude00',
];

/** Repeats ITEMS until the body passes 1 MiB, so the item-by-item path is taken. */
function big(space = ''): { text: string; items: unknown[] } {
  // Rounds counted up front: stringifying the growing array each round made this quadratic (a minute of CPU).
  const rounds = Math.ceil((1.2 * 1024 * 1024) / JSON.stringify(ITEMS).length);
  const items = Array.from({ length: rounds }, () => ITEMS).flat();
  const text = `${space}[${space}${items.map((i) => JSON.stringify(i)).join(`${space},${space}`)}${space}]${space}`;
  return { text, items };
}

test('a large array comes out as JSON.parse would give it, with or without whitespace', async () => {
  for (const space of ['', ' \n\t ']) {
    const { text, items } = big(space);
    assert.ok(text.length > 1024 * 1024);
    assert.deepEqual(await readJsonItems(text, opts), items);
  }
});

async function refusal(text: string, o = opts): Promise<ApiError> {
  try {
    await readJsonItems(text, o);
  } catch (err) {
    assert.ok(err instanceof ApiError);
    return err;
  }
  assert.fail('not refused');
}

test('a large body that is not valid JSON is a 400, wherever the fault is', async () => {
  const { text } = big();
  const cases: Array<[string, string, RegExp]> = [
    ['unclosed array', text.slice(0, -1), /not closed/],
    ['text after the array', `${text} x`, /unexpected text after the array/],
    ['a trailing comma', `${text.slice(0, -1)},]`, /item \d+ is empty/],
    ['a bad token in the middle', `${text.slice(0, 500_000)}, nope ,${text.slice(500_001)}`, /not valid JSON/],
    ['an unclosed string at the end', `${text.slice(0, -1)},"abc]`, /string is not closed/],
    ['a stray "}"', `[}${text.slice(1)}`, /unexpected "}"/],
    ['__proto__', `[{"__proto__":{"x":1}},${text.slice(1)}`, /"__proto__" is not allowed/],
  ];
  for (const [what, body, re] of cases) {
    const err = await refusal(body);
    assert.equal(err.status, 400, what);
    assert.match(err.message, re, what);
  }
});

test('too many items, or one huge item, is a 413 found before the rest is parsed', async () => {
  const zeros = `[${'0,'.repeat(1_000_000)}0]`;
  const many = await refusal(zeros, { ...opts, maxItems: 1000 });
  assert.equal(many.status, 413);
  assert.match(many.message, /more than 1000 items \(http\.maxPointsPerBody\)/);
  const small = await refusal('[0,0,0]', { ...opts, maxItems: 2 });
  assert.equal(small.status, 413, 'small bodies are counted too');
  const huge = await refusal(`[[${'0,'.repeat(600_000)}0]]`);
  assert.equal(huge.status, 413);
  assert.match(huge.message, /item 0 is \d+ characters of JSON, more than a metric can hold/);
  const object = await refusal(`{"name":"x","pad":"${'p'.repeat(1_100_000)}"}`);
  assert.equal(object.status, 413);
});

test('small bodies: one parse; an object is a list of one; empty bodies and arrays are 400', async () => {
  assert.deepEqual(await readJsonItems('[{"name":"a","value":1}]', opts), [{ name: 'a', value: 1 }]);
  assert.deepEqual(await readJsonItems(' {"name":"a","value":1} ', opts), [{ name: 'a', value: 1 }]);
  for (const body of ['', '  ', '[]', ' [ ] ', '5', '"x"', 'null']) assert.equal((await refusal(body)).status, 400, JSON.stringify(body));
  assert.equal((await refusal(`[${' '.repeat(2 * 1024 * 1024)}]`)).status, 400, 'a large empty array');
});
