// The gateway sender: routes each namespace's lines to the backends (`shard`: each
// series to one backend on a consistent-hash ring; `replicate`: every line to every backend)
// and resolves a write only when every line was accepted by every backend it belongs to, or
// dead-lettered as invalid. Bounded by maxQueuedPoints: a write that does not fit waits for
// room (backpressure: the relay's messages stay in flight, so nsqd sends no more), up to
// maxQueueWaitMs and as many points again; beyond that it is refused, counted, and handed
// back as retryable — as is anything a down backend cannot take now. Room goes to the oldest
// waiting write, but a namespace holding half the queue waits while another namespace does.
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.ts';
import type { BackendConfig, SenderConfig } from '../config/schema.ts';
import { BackendQueue, WritePart } from './backend-queue.ts';
import type { BackendWriter } from './backend-writer.ts';
import { DeadLetterLog } from './dead-letter.ts';
import { HashRing, hash32 } from './hash-ring.ts';
import { LineBlock } from './line-block.ts';
import { seriesKey } from './line-protocol.ts';
import { BackendCounters, SenderPromMetrics } from './sender-metrics.ts';
import { createBackendWriter, kindOf } from './storage-kinds.ts';
import { RetryableWriteError, type GatewaySender, type WriteOutcome } from './types.ts';

export const REJECTED_POINTS_FILE = 'rejected-points.jsonl';

interface Waiter {
  namespace: string;
  points: number;
  admit(): void;
  cancel(err: Error): void;
}

export interface GatewaySenderOptions {
  /** The `sender` section with `deadLetterDir` resolved to an absolute path. */
  config: SenderConfig & { deadLetterDir: string };
  logger: Logger;
  clock?: Clock;
  /** Where the nsagent_sender_* metrics are registered; none = not exported. */
  metrics?: Registry;
  /** Builds a backend's client (default: its storage kind's); tests inject faults here. */
  clientFactory?: (backend: BackendConfig, maxSockets: number) => BackendWriter;
}

export class InfluxGatewaySender implements GatewaySender {
  private readonly config: SenderConfig & { deadLetterDir: string };
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly queues: BackendQueue[];
  private readonly ring: HashRing | undefined;
  private readonly deadLetter: DeadLetterLog;
  private readonly prom: SenderPromMetrics | undefined;
  private readonly listeners = new Set<(available: boolean) => void>();
  private readonly down = new Set<string>();
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | undefined;
  private refusedPoints = 0;
  private readonly writes = { total: 0, failed: 0, waited: 0 };
  /** Writes waiting for room in the queue, in arrival order. */
  private readonly waiting: Waiter[] = [];
  /** Points each namespace has queued or in flight (admitted, not yet settled). */
  private readonly held = new Map<string, number>();
  private waitingPoints = 0;
  /** Let in from the line, not yet enqueued (they enqueue a microtask later). */
  private admittedPoints = 0;

  constructor(opts: GatewaySenderOptions) {
    const { config } = opts;
    if (config.backends.length === 0) {
      throw new Error('sender: no backends configured (sender.backends); without backends the file sink is used instead');
    }
    if (config.retryMaxMs < config.retryMinMs) throw new Error('sender.retryMaxMs must be >= sender.retryMinMs');
    this.config = config;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.prom = opts.metrics ? new SenderPromMetrics(opts.metrics) : undefined;
    this.deadLetter = new DeadLetterLog({
      dir: config.deadLetterDir,
      fileName: REJECTED_POINTS_FILE,
      maxFileBytes: config.deadLetterMaxFileBytes,
      clock: this.clock,
      logger: this.log,
    });
    const makeClient = opts.clientFactory ?? ((backend, maxSockets) => createBackendWriter(backend, { maxSockets }));
    this.queues = config.backends.map(
      (backend) =>
        new BackendQueue({
          client: makeClient(backend, config.maxConcurrentWrites),
          batchSize: config.batchSize,
          flushIntervalMs: config.flushIntervalMs,
          maxConcurrentWrites: config.maxConcurrentWrites,
          retryMinMs: config.retryMinMs,
          retryMaxMs: config.retryMaxMs,
          downAfterFailures: config.downAfterFailures,
          probeIntervalMs: config.probeIntervalMs,
          createDatabase: 'createDatabase' in backend && backend.createDatabase,
          deadLetter: this.deadLetter,
          counters: new BackendCounters(this.clock, this.prom?.forBackend(backend.name)),
          clock: this.clock,
          logger: this.log,
          onStateChange: (up) => this.backendStateChanged(backend.name, up),
          onReleased: () => this.admitWaiting(),
        }),
    );
    this.ring =
      config.mode === 'shard' && this.queues.length > 1
        ? new HashRing(
            config.backends.map((b) => b.name),
            config.virtualNodes,
          )
        : undefined;
  }

  start(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'running';
      this.log.info(
        { mode: this.config.mode, backends: this.config.backends.map((b) => ({ name: b.name, kind: kindOf(b), url: b.url, ...('api' in b ? { api: b.api } : {}) })) },
        'gateway sender started',
      );
    }
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'stopping';
      const deadline = this.clock.now() + this.config.stopTimeoutMs;
      await Promise.allSettled(this.queues.map((q) => q.stop(deadline)));
      for (const w of this.waiting.splice(0)) w.cancel(new RetryableWriteError('sender stopped before the write found room', 'stopped'));
      await this.deadLetter.flush();
      this.state = 'stopped';
      this.log.info({ refusedPoints: this.refusedPoints }, 'gateway sender stopped');
    })();
    return this.stopping;
  }

  onAvailabilityChange(listener: (available: boolean) => void): void {
    this.listeners.add(listener);
  }

  async write(namespace: string, lines: readonly string[] | LineBlock): Promise<WriteOutcome> {
    if (this.state !== 'running') {
      throw new RetryableWriteError(`sender is ${this.state === 'new' ? 'not started' : 'stopped'}`, 'stopped');
    }
    if (typeof namespace !== 'string' || namespace === '') throw new TypeError('sender.write: namespace must be a non-empty string');
    const data = lines instanceof LineBlock ? lines : LineBlock.fromLines(lines);
    if (data.length === 0) return { written: 0, deadLettered: 0 };
    const shares = this.route(namespace, data);
    let total = 0;
    for (let i = 0; i < shares.length; i++) {
      const share = shares[i] as LineBlock;
      if (share.length === 0) continue;
      const refusal = (this.queues[i] as BackendQueue).refusal();
      if (refusal) {
        this.writes.failed++;
        throw refusal;
      }
      total += share.length;
    }
    if (this.fits(total)) {
      this.hold(namespace, total);
    } else {
      // Counted as held on admission, so the next waiter is chosen knowing it.
      await this.waitForRoom(namespace, total);
      this.admittedPoints -= total;
      // Time passed: a backend may have gone down, or the sender stopped, meanwhile.
      const refusal = shares.map((share, i) => (share.length > 0 ? (this.queues[i] as BackendQueue).refusal() : undefined)).find(Boolean);
      if (refusal) {
        this.hold(namespace, -total);
        this.writes.failed++;
        this.admitWaiting();
        throw refusal;
      }
    }
    this.writes.total++;
    const parts: WritePart[] = [];
    shares.forEach((share, i) => {
      if (share.length === 0) return;
      const part = new WritePart(share.length);
      parts.push(part);
      (this.queues[i] as BackendQueue).enqueue(namespace, share, part);
    });
    const settled = await Promise.allSettled(parts.map((p) => p.done));
    this.hold(namespace, -total);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      this.writes.failed++;
      throw failed.reason;
    }
    let written = 0;
    let deadLettered = 0;
    for (const p of parts) {
      written += p.written;
      deadLettered += p.deadLettered;
    }
    return { written, deadLettered };
  }

  status(): Record<string, unknown> {
    return {
      mode: this.config.mode,
      state: this.state,
      available: this.down.size === 0,
      queuedPoints: this.queuedPoints(),
      maxQueuedPoints: this.config.maxQueuedPoints,
      refusedPoints: this.refusedPoints,
      waitingWrites: this.waiting.length,
      waitingPoints: this.waitingPoints,
      namespacesHoldingPoints: this.held.size,
      writes: { ...this.writes },
      backends: Object.fromEntries(this.queues.map((q) => [q.name, q.status()])),
      deadLetter: this.deadLetter.status(),
    };
  }

  /** Index of the backend that owns a series in shard mode (exposed for tests and tools). */
  backendFor(namespace: string, line: string): string {
    const i = this.ring ? this.ring.locateHash(hash32(`${namespace}\n${seriesKey(line)}`)) : 0;
    return (this.queues[i] as BackendQueue).name;
  }

  private route(namespace: string, lines: LineBlock): LineBlock[] {
    const n = this.queues.length;
    if (!this.ring) return Array.from({ length: n }, () => lines);
    const shares: number[][] = Array.from({ length: n }, () => []);
    const prefix = `${namespace}\n`;
    for (let i = 0; i < lines.length; i++) (shares[this.ring.locateHash(hash32(prefix + seriesKey(lines.line(i))))] as number[]).push(i);
    return shares.map((indices) => lines.pick(indices));
  }

  /** Room for `points` now: under the bound (an oversized write goes alone into an empty queue). */
  private fits(points: number): boolean {
    if (this.waiting.length > 0) return false;
    const queued = this.queuedPoints();
    return queued + points <= this.config.maxQueuedPoints || queued === 0;
  }

  /** Waits in line for room; refuses (retryable, counted) when the line or the wait is too long. */
  private waitForRoom(namespace: string, points: number): Promise<void> {
    const { maxQueuedPoints, maxQueueWaitMs } = this.config;
    const refuse = (why: string): RetryableWriteError => {
      this.refusedPoints += points;
      this.prom?.refused.inc(points);
      this.writes.failed++;
      return new RetryableWriteError(`sender queue full: ${points} points ${why} (sender.maxQueuedPoints ${maxQueuedPoints})`, 'queue-full', this.config.retryMinMs);
    };
    if (this.waitingPoints + points > maxQueuedPoints || maxQueueWaitMs === 0) {
      return Promise.reject(refuse(`refused: ${this.waitingPoints} points already wait for room`));
    }
    this.writes.waited++;
    this.waitingPoints += points;
    return new Promise<void>((resolve, reject) => {
      const leave = (): void => {
        this.clock.clearTimeout(timer);
        this.waitingPoints -= points;
      };
      const entry: Waiter = {
        namespace,
        points,
        admit: () => {
          leave();
          this.admittedPoints += points;
          this.hold(namespace, points);
          resolve();
        },
        cancel: (err) => {
          leave();
          reject(err);
        },
      };
      const timer = this.clock.setTimeout(() => {
        const at = this.waiting.indexOf(entry);
        if (at === -1) return;
        this.waiting.splice(at, 1);
        entry.cancel(refuse(`waited ${maxQueueWaitMs} ms for room`));
        this.admitWaiting();
      }, maxQueueWaitMs);
      this.waiting.push(entry);
      // Room may have appeared between the check and now.
      this.admitWaiting();
    });
  }

  /**
   * Lets waiting writes in while they fit: the oldest first, except that a namespace holding
   * half the queue or more waits while another namespace does, so one namespace's backlog
   * (refused points being narrowed down, say) never takes all the room from the others.
   */
  private admitWaiting(): void {
    while (this.waiting.length > 0) {
      const at = this.nextWaiter();
      const next = this.waiting[at] as Waiter;
      const queued = this.queuedPoints();
      if (queued + next.points > this.config.maxQueuedPoints && queued !== 0) return;
      this.waiting.splice(at, 1);
      next.admit();
    }
  }

  private nextWaiter(): number {
    const half = this.config.maxQueuedPoints / 2;
    const first = this.waiting[0] as Waiter;
    if ((this.held.get(first.namespace) ?? 0) < half) return 0;
    const other = this.waiting.findIndex((w) => w.namespace !== first.namespace && (this.held.get(w.namespace) ?? 0) < half);
    return other === -1 ? 0 : other;
  }

  private hold(namespace: string, points: number): void {
    const held = (this.held.get(namespace) ?? 0) + points;
    if (held > 0) this.held.set(namespace, held);
    else this.held.delete(namespace);
  }

  /** Queued and in flight, plus writes let in that have not enqueued yet. */
  private queuedPoints(): number {
    let sum = this.admittedPoints;
    for (const q of this.queues) sum += q.queuedPoints();
    return sum;
  }

  private backendStateChanged(name: string, up: boolean): void {
    const wasAvailable = this.down.size === 0;
    if (up) this.down.delete(name);
    else this.down.add(name);
    const available = this.down.size === 0;
    if (available === wasAvailable) return;
    for (const listener of this.listeners) {
      try {
        listener(available);
      } catch (err) {
        this.log.error({ err }, 'availability listener threw');
      }
    }
  }
}

export interface CreateGatewaySenderDeps {
  logger: Logger;
  clock?: Clock;
  metrics?: Registry;
}

/** The factory the composition root uses: `createGatewaySender(config.sender, deps)`. */
export function createGatewaySender(config: SenderConfig & { deadLetterDir: string }, deps: CreateGatewaySenderDeps): InfluxGatewaySender {
  return new InfluxGatewaySender({ config, ...deps });
}
