import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Slots, SlotUnavailableError } from '../src/slots.ts';

describe('Slots', () => {
  test('never more than the capacity at once; waiters go in arrival order', async () => {
    const slots = new Slots({ capacity: 2 });
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    const gates: Array<() => void> = [];
    const runs = Array.from({ length: 6 }, async (_, i) => {
      const release = await slots.acquire();
      order.push(i);
      active++;
      peak = Math.max(peak, active);
      await new Promise<void>((r) => gates.push(r));
      active--;
      release();
      release(); // idempotent
    });
    while (gates.length < 2) await new Promise((r) => setImmediate(r));
    assert.equal(slots.status().active, 2);
    assert.equal(slots.status().waiting, 4);
    for (let opened = 0; opened < 6; opened++) {
      while (gates.length <= opened) await new Promise((r) => setImmediate(r));
      (gates[opened] as () => void)();
    }
    await Promise.all(runs);
    assert.equal(peak, 2);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual({ active: slots.status().active, waiting: slots.status().waiting }, { active: 0, waiting: 0 });
  });

  test('a waiter gives up at its deadline or on abort, and a full queue refuses at once', async () => {
    const slots = new Slots({ capacity: 1, maxWaiting: 1 });
    const release = await slots.acquire();
    const ac = new AbortController();
    const aborted = slots.acquire({ signal: ac.signal });
    await assert.rejects(slots.acquire(), SlotUnavailableError, 'queue of one is full');
    ac.abort();
    await assert.rejects(aborted, /stopped/);
    await assert.rejects(slots.acquire({ waitMs: 20 }), /stayed busy for 20 ms/);
    assert.equal(slots.status().refusedTotal, 2);
    release();
    const again = await slots.acquire();
    again();
    assert.equal(slots.status().active, 0);
  });

  test('idle() waits for the holders and the waiters, and is at once when nothing is held', async () => {
    const slots = new Slots({ capacity: 1, what: 'clones' });
    await slots.idle();
    const first = await slots.acquire();
    const second = slots.acquire();
    let idle = false;
    const idled = slots.idle().then(() => (idle = true));
    first();
    const release = await second;
    await new Promise((r) => setImmediate(r));
    assert.equal(idle, false, 'the waiter got the slot: not idle yet');
    release();
    await idled;
    assert.equal(idle, true);
    assert.throws(() => new Slots({ capacity: 0 }), /capacity must be an integer/);
  });
});
