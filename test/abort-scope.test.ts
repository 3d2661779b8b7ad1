// abortScope: follows its parent and its timeout, and lets go of the parent when disposed (the
// reason it exists: AbortSignal.any keeps dependents of a long-lived signal alive on Node 20).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners, once } from 'node:events';
import { abortScope } from '../src/abort-scope.ts';

test('aborts when its parent aborts, with the parent reason', () => {
  const parent = new AbortController();
  const scope = abortScope(parent.signal);
  const reason = new Error('stopping');
  parent.abort(reason);
  assert.equal(scope.signal.aborted, true);
  assert.equal(scope.signal.reason, reason);
});

test('an already aborted parent gives an aborted scope', () => {
  const parent = new AbortController();
  parent.abort();
  assert.equal(abortScope(parent.signal, 1000).signal.aborted, true);
});

test('aborts with a TimeoutError after its timeout', async () => {
  const scope = abortScope(undefined, 20);
  await once(scope.signal, 'abort');
  assert.equal((scope.signal.reason as Error).name, 'TimeoutError');
  scope.dispose();
});

test('dispose detaches from the parent: a long-lived parent holds nothing after many operations', () => {
  const parent = new AbortController();
  for (let i = 0; i < 1000; i++) abortScope(parent.signal, 60_000).dispose();
  assert.equal(getEventListeners(parent.signal, 'abort').length, 0);
  const live = abortScope(parent.signal);
  assert.equal(getEventListeners(parent.signal, 'abort').length, 1);
  live.dispose();
  parent.abort();
  assert.equal(live.signal.aborted, false, 'a disposed scope no longer follows its parent');
});
