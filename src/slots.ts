// A counting semaphore: plugin runs (scheduler.maxConcurrentRuns, shared by scheduled and
// on-demand runs so neither can starve the host) and plugin clones (plugins.maxConcurrentClones).
// Waiters queue in arrival order; the queue is bounded, and an acquire can give up on a deadline
// or an abort signal.

export interface SlotsOptions {
  /** Holders at once. */
  capacity: number;
  /** What is being limited, plural, for refusals ("runs", "clones"). */
  what?: string;
  /** Waiters beyond this are refused at once (and counted). */
  maxWaiting?: number;
}

export class SlotUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlotUnavailableError';
  }
}

interface Waiter {
  grant: (release: () => void) => void;
  cancel: (err: Error) => void;
}

export class Slots {
  readonly capacity: number;
  private readonly what: string;
  private readonly maxWaiting: number;
  private active = 0;
  private readonly waiters: Waiter[] = [];
  private idleWaiters: Array<() => void> = [];
  private waitedTotal = 0;
  private refusedTotal = 0;

  constructor(opts: SlotsOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1) throw new Error(`slots: capacity must be an integer ≥ 1, got ${opts.capacity}`);
    this.capacity = opts.capacity;
    this.what = opts.what ?? 'runs';
    this.maxWaiting = opts.maxWaiting ?? 10_000;
  }

  /**
   * Resolves with a release function (idempotent) once a slot is free. Rejects with
   * SlotUnavailableError when the queue is full, `waitMs` passes, or `signal` aborts.
   */
  acquire(opts: { signal?: AbortSignal; waitMs?: number } = {}): Promise<() => void> {
    if (opts.signal?.aborted) return Promise.reject(new SlotUnavailableError('stopped'));
    if (this.active < this.capacity && this.waiters.length === 0) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiters.length >= this.maxWaiting) {
      this.refusedTotal++;
      return Promise.reject(new SlotUnavailableError(`${this.waiters.length} ${this.what} already wait for one of ${this.capacity} slots`));
    }
    this.waitedTotal++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => waiter.cancel(new SlotUnavailableError('stopped'));
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: (release) => {
          cleanup();
          resolve(release);
        },
        cancel: (err) => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          cleanup();
          reject(err);
        },
      };
      this.waiters.push(waiter);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.waitMs !== undefined) {
        timer = setTimeout(() => {
          this.refusedTotal++;
          waiter.cancel(new SlotUnavailableError(`all ${this.capacity} slots for ${this.what} stayed busy for ${opts.waitMs} ms`));
        }, opts.waitMs);
      }
    });
  }

  /** Resolves when no slot is held and nobody waits for one. */
  idle(): Promise<void> {
    if (this.active === 0 && this.waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  status(): { capacity: number; active: number; waiting: number; waitedTotal: number; refusedTotal: number } {
    return { capacity: this.capacity, active: this.active, waiting: this.waiters.length, waitedTotal: this.waitedTotal, refusedTotal: this.refusedTotal };
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter: `active` stays the same.
      if (next) next.grant(this.releaser());
      else this.active--;
      if (this.active === 0 && this.waiters.length === 0) {
        const idle = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of idle) resolve();
      }
    };
  }
}
