// The NSQ publisher: lines in, packed into per-namespace MPUB batches (packer.ts), sent to the
// least-busy ready nsqd (nsqd-link.ts), and into the disk spool (spool.ts) whenever no nsqd
// takes them. A caller's publish() resolves once nsqd said OK or the spool committed its lines;
// spooled batches are replayed in order when an nsqd is back. Batches in flight and queued are
// capped: publish() awaits a free slot rather than growing memory.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock, type TimerHandle } from '../clock.ts';
import { LinkDownError, NsqdLink, type LinkStatus } from './nsqd-link.ts';
import { nsqConnectionSecurity, type NsqLinkSecurityConfig } from './nsq-tls.ts';
import { Batch, Packer, Ticket } from './packer.ts';
import { PublishMetrics, type PublishGaugeSource, type PublishTotals } from './publish-metrics.ts';
import type { Publisher } from './publisher.ts';
import { Spool, type SpoolEntry, type SpoolStatus } from './spool.ts';
import { topicFor } from '../topic-names.ts';

export interface NsqPublisherOptions {
  /** nsqd TCP addresses ("host:port"); batches go to the least busy ready one. */
  nsqdTcpAddresses: readonly string[];
  topicPrefix: string;
  /** Upper bound of one NSQ message (header + lines); within nsqd --max-msg-size. */
  maxMessageBytes: number;
  /** Upper bound of one MPUB body; within nsqd --max-body-size. */
  maxMpubBytes: number;
  /** How long a batch waits for more lines before it is sent. */
  lingerMs: number;
  /** Batches sent and not yet answered, across nsqds (also the cap on concurrent spool appends). */
  maxInFlightBatches: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  spool: { dir: string; maxBytes: number; maxAgeSec: number; commitIntervalMs: number; segmentBytes: number };
  /** prom-client registry for the nsagent_publish_* metrics. */
  metrics: Registry;
  /**
   * Counters shared with other publishers (the replicas of a ReplicatedPublisher); when given,
   * nothing is registered on `metrics`.
   */
  sharedMetrics?: PublishMetrics;
  logger: Logger;
  clock?: Clock;
  /** An MPUB unanswered this long kills its connection; its batch is resent or spooled. */
  publishTimeoutMs?: number;
  /** nsq.tls, nsq.compression, nsq.authSecret: how each link talks to its nsqd. */
  tls?: NsqLinkSecurityConfig['tls'];
  compression?: NsqLinkSecurityConfig['compression'];
  authSecret?: NsqLinkSecurityConfig['authSecret'];
  /** start() waits up to this long for a first nsqd, so the first batches are not spooled. */
  connectWaitMs?: number;
  /** stop() waits up to this long for batches in flight before spooling them. */
  stopTimeoutMs?: number;
  /** How often spooled batches past maxAgeSec are looked for while nsqd is away. */
  expireIntervalMs?: number;
}

export interface NsqPublisherStatus {
  mode: 'nsq';
  topicPrefix: string;
  nsqd: LinkStatus[];
  inFlightBatches: number;
  queuedBatches: number;
  /** Lines in batches still lingering for more. */
  openLines: number;
  spool: SpoolStatus;
  counters: PublishTotals;
  [key: string]: unknown;
}

/** Sealed batches that may wait for an in-flight slot before publish() callers wait too. */
const MAX_SEALED_WAITING = 2;
/**
 * Below this many batches in flight nsqd is idle or about to be: what lingers is sealed at once
 * (Nagle's rule). Lingering then would only add latency, and callers that await their acks
 * would be held to one batch per lingerMs. Under load, lines gather while batches are in flight.
 */
const EARLY_FLUSH_BELOW_IN_FLIGHT = 2;
/** A live batch is sent again at most this many times before it goes to the spool. */
const MAX_LIVE_ATTEMPTS = 3;
/** nsqd refused the batch itself (too big, bad topic): sending it again cannot help. */
const POISON = /^E_BAD_(MESSAGE|BODY|TOPIC)\b/;

interface ReplayBatch {
  batch: Batch;
  entry: SpoolEntry;
}

export class NsqPublisher implements Publisher {
  readonly maxLineBytes: number;
  private readonly opts: NsqPublisherOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly links: NsqdLink[];
  private readonly packer: Packer;
  private readonly spool: Spool;
  /** What the publish gauges read at scrape time; a ReplicatedPublisher combines its replicas'. */
  readonly gauges: PublishGaugeSource;
  private readonly metrics: PublishMetrics;
  private readonly maxInFlight: number;
  private readonly replayMax: number;

  /** Sealed live batches waiting for a slot (retries go to the front). */
  private readonly sealed: Batch[] = [];
  private inFlight = 0;
  private spooling = 0;
  /** Records read from the spool (or failed on their way back) waiting to be sent. */
  private readonly replayQueue: ReplayBatch[] = [];
  private replayInFlight = 0;
  private replayReading = false;
  private replayRetryTimer: TimerHandle | undefined;
  /** publish() calls still adding lines (they may be waiting for room). */
  private adders = 0;
  private roomWaiters: Array<() => void> = [];
  private flushing = false;
  private idleWaiters: Array<() => void> = [];
  private expireTimer: TimerHandle | undefined;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopPromise: Promise<void> | undefined;

  constructor(opts: NsqPublisherOptions) {
    if (opts.nsqdTcpAddresses.length === 0) throw new Error('NsqPublisher: nsqdTcpAddresses must name at least one nsqd');
    if (!(opts.maxInFlightBatches >= 1)) throw new Error('NsqPublisher: maxInFlightBatches must be at least 1');
    this.opts = opts;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.maxInFlight = opts.maxInFlightBatches;
    // Replay shares the in-flight slots with live batches but never takes more than half.
    this.replayMax = Math.max(1, Math.floor(this.maxInFlight / 2));
    this.packer = new Packer({
      topicPrefix: opts.topicPrefix,
      maxMessageBytes: opts.maxMessageBytes,
      maxMpubBytes: opts.maxMpubBytes,
      lingerMs: opts.lingerMs,
      clock: this.clock,
      onSealed: (batch) => {
        this.spool.noteOffered(batch.bytes);
        this.sealed.push(batch);
        this.pump();
      },
      onOversize: (namespace, bytes) =>
        this.metrics.dropped('oversize', 1, { namespace, lineBytes: bytes, maxMessageBytes: opts.maxMessageBytes }),
    });
    this.maxLineBytes = this.packer.maxLineBytes;
    const publishTimeoutMs = opts.publishTimeoutMs ?? 10_000;
    const security = nsqConnectionSecurity(opts, 'nsq');
    this.links = opts.nsqdTcpAddresses.map(
      (address) =>
        new NsqdLink({
          address,
          logger: this.log,
          clock: this.clock,
          reconnectMinMs: opts.reconnectMinMs,
          reconnectMaxMs: opts.reconnectMaxMs,
          publishTimeoutMs,
          onChange: () => this.pump(),
          security,
        }),
    );
    this.spool = new Spool({ ...opts.spool, logger: this.log.child({ part: 'spool' }), clock: this.clock });
    this.gauges = {
      inFlightBatches: () => this.inFlight,
      queuedBatches: () => this.sealed.length + this.spooling,
      spoolBytes: () => this.spool.bytes(),
      spoolOldestAgeSec: () => this.spool.status().oldestAgeSec,
      spoolOutageSec: () => this.spool.status().outageSec,
      nsqdReady: () => this.links.map((l) => ({ nsqd: l.address, ready: l.ready })),
    };
    this.metrics = opts.sharedMetrics ?? new PublishMetrics({ registry: opts.metrics, logger: this.log, clock: this.clock, gauges: this.gauges });
  }

  /** Opens the spool and connects; waits up to connectWaitMs for one nsqd (not an error if none). */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'starting';
    await this.spool.open();
    // nsqjs is loaded only by an agent that publishes to NSQ (it costs several MB of memory).
    const { Writer } = await import('nsqjs');
    if (this.state !== 'starting') return;
    for (const link of this.links) link.start(Writer);
    const waitMs = this.opts.connectWaitMs ?? 2000;
    await this.waitFor(() => this.links.some((l) => l.ready) || this.state !== 'starting', this.clock.now() + waitMs);
    // stop() may have come while we waited: it owns the state from then on.
    if (this.state !== 'starting') return;
    if (!this.links.some((l) => l.ready)) {
      this.log.warn({ nsqd: this.opts.nsqdTcpAddresses }, 'no nsqd reachable yet; batches go to the spool until one is');
    }
    this.state = 'running';
    this.scheduleExpiry();
    this.pump();
  }

  publish(namespace: string, lines: readonly string[]): Promise<void> {
    if (this.state !== 'running') {
      return Promise.reject(new Error(`NSQ publisher is ${this.state === 'new' || this.state === 'starting' ? 'not started' : 'stopped'}; lines not accepted`));
    }
    if (typeof namespace !== 'string' || namespace === '') return Promise.reject(new Error('publish: namespace must be a non-empty string'));
    if (lines.length === 0) return Promise.resolve();
    try {
      this.packer.info(namespace);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const ticket = new Ticket(lines.length);
    this.adders++;
    let next = 0;
    // Fast path: room for everything now, no await at all.
    while (next < lines.length && !this.congested()) next = this.packer.add(namespace, lines, next, ticket);
    if (next >= lines.length) {
      this.doneAdding(ticket);
      this.flushIfIdle();
    } else {
      void this.addRest(namespace, lines, next, ticket);
    }
    return ticket.promise;
  }

  status(): NsqPublisherStatus {
    return {
      mode: 'nsq',
      topicPrefix: this.opts.topicPrefix,
      nsqd: this.links.map((l) => l.status()),
      inFlightBatches: this.inFlight,
      queuedBatches: this.sealed.length + this.spooling,
      openLines: this.packer.openLines,
      spool: this.spool.status(),
      counters: this.metrics.snapshot(),
    };
  }

  /** Topic a namespace is published to (see src/topic-names.ts). */
  topicFor(namespace: string): string {
    return topicFor(namespace, this.opts.topicPrefix);
  }

  /** Resolves when nothing is pending, queued, in flight or unreplayed (tests, benches, tools). */
  async drained(): Promise<void> {
    while (!this.isDrained()) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Sends what is lingering now, waits (up to stopTimeoutMs) for batches in flight, spools
   * whatever nsqd has not acknowledged by then, and closes connections and spool. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    if (this.expireTimer) this.clock.clearTimeout(this.expireTimer);
    if (this.replayRetryTimer) this.clock.clearTimeout(this.replayRetryTimer);
    this.packer.sealAll();
    this.pump();
    const deadline = this.clock.now() + (this.opts.stopTimeoutMs ?? 10_000);
    await this.waitFor(() => this.liveIdle(), deadline);
    // What nsqd has not answered by now is spooled (link.stop() fails it: onFailed spools it).
    for (const link of this.links) link.stop();
    this.packer.sealAll();
    this.pump();
    await this.waitFor(() => this.liveIdle(), Number.POSITIVE_INFINITY);
    this.metrics.flushDropLog();
    await this.spool.close();
    this.state = 'stopped';
    this.wake();
  }

  // --- adding ------------------------------------------------------------------------------

  private async addRest(namespace: string, lines: readonly string[], from: number, ticket: Ticket): Promise<void> {
    let next = from;
    try {
      while (next < lines.length) {
        while (this.congested()) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
        next = this.packer.add(namespace, lines, next, ticket);
      }
    } catch (err) {
      // Not expected (the namespace was checked up front); the caller learns, nothing hangs.
      this.log.error({ err, namespace }, 'adding lines to a batch failed');
      ticket.drop(lines.length - next, `the publisher failed: ${(err as Error).message}`);
    }
    this.doneAdding(ticket);
    this.flushIfIdle();
  }

  /** Seals what lingers when nsqd (or the spool) has little or nothing to do. */
  private flushIfIdle(): void {
    if (this.flushing || this.packer.openBatches === 0 || this.sealed.length > 0) return;
    const busy = this.links.some((l) => l.ready) ? this.inFlight - this.replayInFlight : this.spooling;
    if (busy >= EARLY_FLUSH_BELOW_IN_FLIGHT) return;
    this.flushing = true;
    try {
      this.packer.sealAll();
    } finally {
      this.flushing = false;
    }
  }

  private doneAdding(ticket: Ticket): void {
    this.adders--;
    ticket.doneAdding();
    // While stopping nothing lingers: seal what this caller added.
    if (this.state === 'stopping') this.packer.sealAll();
    this.wake();
  }

  /**
   * Room for more lines? Two sealed batches waiting keep the pipe to nsqd full; more would only
   * hold memory. Spool appends may reach the in-flight cap, so they share group commits.
   */
  private congested(): boolean {
    return this.sealed.length >= MAX_SEALED_WAITING || this.spooling >= this.maxInFlight;
  }

  // --- sending -----------------------------------------------------------------------------

  private pump(): void {
    for (;;) {
      const link = this.pickLink();
      if (!link) break;
      if (this.inFlight >= this.maxInFlight) break;
      // Replay gets a slot whenever it has none, so live traffic cannot starve it.
      const replay =
        this.state === 'running' &&
        this.replayQueue.length > 0 &&
        this.replayInFlight < this.replayMax &&
        (this.replayInFlight === 0 || this.sealed.length === 0);
      if (replay) {
        this.sendReplay(this.replayQueue.shift() as ReplayBatch, link);
        continue;
      }
      const batch = this.sealed.shift();
      if (!batch) break;
      this.send(batch, link);
    }
    if (!this.links.some((l) => l.ready)) {
      // No nsqd takes anything: what waits goes to the spool.
      for (let batch = this.sealed.shift(); batch; batch = this.sealed.shift()) this.toSpool(batch);
    }
    this.fillReplay();
    this.flushIfIdle();
    this.wake();
  }

  private pickLink(): NsqdLink | undefined {
    let best: NsqdLink | undefined;
    for (const link of this.links) {
      if (link.ready && (!best || link.inFlightCount < best.inFlightCount)) best = link;
    }
    return best;
  }

  private send(batch: Batch, link: NsqdLink): void {
    this.inFlight++;
    batch.attempts++;
    link.publish(batch.topic, batch.messages).then(
      () => {
        this.inFlight--;
        this.metrics.published(batch.lines, batch.messages.length);
        batch.settle(false);
        this.pump();
      },
      (err: Error) => {
        this.inFlight--;
        this.onLiveFailed(batch, err);
        this.pump();
      },
    );
  }

  private onLiveFailed(batch: Batch, err: Error): void {
    if (POISON.test(err.message)) {
      this.metrics.dropped('refused_by_nsqd', batch.lines, { topic: batch.topic, error: err.message });
      batch.settle(true, `nsqd refused the batch: ${err.message}`);
      return;
    }
    if (!(err instanceof LinkDownError)) this.metrics.resent(batch.lines);
    const otherReady = this.links.some((l) => l.ready);
    if (this.state === 'running' && otherReady && batch.attempts < MAX_LIVE_ATTEMPTS) {
      this.sealed.unshift(batch);
    } else {
      this.toSpool(batch);
    }
  }

  private toSpool(batch: Batch): void {
    this.spooling++;
    this.spool.append({ namespace: batch.namespace, messages: batch.messages, lines: batch.lines, createdAtMs: batch.createdAtMs }).then(
      (result) => {
        this.spooling--;
        if (result === 'committed') {
          this.metrics.spooled(batch.lines);
          batch.settle(false);
        } else {
          this.metrics.dropped('spool_full', batch.lines, { maxBytes: this.opts.spool.maxBytes });
          batch.settle(true, 'the spool is full (nsq.spool.maxBytes)');
        }
        this.pump();
      },
      (err: Error) => {
        this.spooling--;
        this.metrics.dropped('spool_error', batch.lines, { error: err.message });
        batch.settle(true, `the spool could not store them: ${err.message}`);
        this.pump();
      },
    );
  }

  // --- replay ------------------------------------------------------------------------------

  /** Reads spooled records ahead, one at a time and in order, while an nsqd is ready. */
  private fillReplay(): void {
    if (this.state !== 'running' || this.replayReading) return;
    if (this.replayQueue.length + this.replayInFlight >= this.replayMax) return;
    if (!this.links.some((l) => l.ready) || !this.spool.hasUnread()) return;
    this.replayReading = true;
    this.spool.readNext().then(
      (entry) => {
        this.replayReading = false;
        if (entry) {
          const batch = new Batch(entry.namespace, topicFor(entry.namespace, this.opts.topicPrefix), entry.createdAtMs);
          batch.messages.push(...entry.messages);
          batch.lines = entry.lines;
          this.replayQueue.push({ batch, entry });
        }
        this.pump();
      },
      (err: Error) => {
        this.replayReading = false;
        this.log.error({ err }, 'cannot read the spool; retrying in a second');
        this.replayRetryTimer ??= this.clock.setTimeout(() => {
          this.replayRetryTimer = undefined;
          this.pump();
        }, 1000);
      },
    );
  }

  private sendReplay(item: ReplayBatch, link: NsqdLink): void {
    this.inFlight++;
    this.replayInFlight++;
    link.publish(item.batch.topic, item.batch.messages).then(
      () => {
        this.inFlight--;
        this.replayInFlight--;
        this.metrics.published(item.batch.lines, item.batch.messages.length);
        this.metrics.replayed(item.batch.lines);
        this.spool.ack(item.entry);
        this.pump();
      },
      (err: Error) => {
        this.inFlight--;
        this.replayInFlight--;
        if (POISON.test(err.message)) {
          this.metrics.dropped('refused_by_nsqd', item.batch.lines, { topic: item.batch.topic, error: err.message });
          this.spool.ack(item.entry);
        } else if (this.state === 'running') {
          if (!(err instanceof LinkDownError)) this.metrics.resent(item.batch.lines);
          // Still on disk: sent again first thing when an nsqd is ready.
          this.replayQueue.unshift(item);
        }
        this.pump();
      },
    );
  }

  // --- housekeeping ------------------------------------------------------------------------

  private scheduleExpiry(): void {
    const every = this.opts.expireIntervalMs ?? 60_000;
    this.expireTimer = this.clock.setTimeout(() => {
      this.expireTimer = undefined;
      // Only while nothing is being replayed: replay drops expired records itself.
      const idle = this.replayQueue.length === 0 && this.replayInFlight === 0 && !this.replayReading;
      const run = idle ? this.spool.expireOld() : Promise.resolve(0);
      run.then(
        (lines) => {
          if (lines > 0) this.metrics.dropped('expired', lines, { maxAgeSec: this.opts.spool.maxAgeSec });
        },
        (err: Error) => this.log.error({ err }, 'spool expiry failed'),
      ).finally(() => {
        if (this.state === 'running') this.scheduleExpiry();
      });
    }, every);
    this.expireTimer.unref?.();
  }

  private liveIdle(): boolean {
    return this.adders === 0 && this.packer.openBatches === 0 && this.sealed.length === 0 && this.spooling === 0 && this.inFlight - this.replayInFlight === 0;
  }

  private isDrained(): boolean {
    return this.liveIdle() && this.replayInFlight === 0 && this.replayQueue.length === 0 && !this.replayReading && this.spool.isEmpty();
  }

  private async waitFor(cond: () => boolean, deadlineMs: number): Promise<void> {
    while (!cond()) {
      const left = deadlineMs - this.clock.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(left) ? this.clock.setTimeout(resolve, left) : undefined;
        this.idleWaiters.push(() => {
          if (timer) this.clock.clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Lets waiting adders and stop/drain waiters re-check their condition. */
  private wake(): void {
    if (this.roomWaiters.length > 0 && !this.congested()) {
      const waiters = this.roomWaiters;
      this.roomWaiters = [];
      for (const w of waiters) w();
    }
    if (this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
