// The relay: consumes every namespace topic on one channel and hands each message's lines to
// the gateway sender, finishing the NSQ message only once the sender accepted all of it.
// Retryable failures requeue the message with backoff (NSQ is the buffer during an outage);
// while the sender says it cannot deliver, consumption pauses. A message it cannot read, or
// one past relay.maxAttempts, goes to the dead-letter file and is finished, never retried
// forever. Topics come and go without a restart (TopicSource, refreshed on a timer and on
// registry changes). Memory is bounded by relay.maxInFlightBytes across all topics: above it
// every reader is paused until enough messages were answered.
import { once } from 'node:events';
import type { Message, Reader } from 'nsqjs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { backoffMs } from '../backoff.ts';
import { settledWithin, systemClock, type Clock, type TimerHandle } from '../clock.ts';
import type { RelayConfig } from '../config/schema.ts';
import { readMessageHeader } from '../publish/envelope.ts';
import { nsqConnectionSecurity, type NsqConnectionSecurity, type NsqLinkSecurityConfig } from '../publish/nsq-tls.ts';
import { DeadLetterLog } from '../sender/dead-letter.ts';
import { LineBlock } from '../sender/line-block.ts';
import { RetryableWriteError, type GatewaySender } from '../sender/types.ts';
import { TopicSource, type NamespaceSource } from './topic-source.ts';

export const INVALID_MESSAGES_FILE = 'invalid-messages.jsonl';
/** On close: how long without a late message counts as quiet, and the longest wait for it. */
const LATE_MESSAGE_QUIET_MS = 50;
const LATE_MESSAGE_MAX_WAIT_MS = 500;

export interface RelayOptions {
  config: RelayConfig;
  /** nsqd TCP addresses to consume from (relay.nsqdTcpAddresses, else nsq.nsqdTcpAddresses). */
  nsqdTcpAddresses: readonly string[];
  /** nsq.topicPrefix: namespace → topic with topicFor(ns, prefix). */
  topicPrefix: string;
  sender: GatewaySender;
  /** The registry's namespaces; required unless relay.topicsFrom is "lookupd". */
  namespaces?: NamespaceSource;
  /** TLS, compression and AUTH towards nsqd (nsq-tls.ts); absent = plain TCP. */
  security?: NsqConnectionSecurity;
  /** Absolute; the invalid-messages file goes here (sender.deadLetterDir). */
  deadLetterDir: string;
  deadLetterMaxFileBytes: number;
  logger: Logger;
  clock?: Clock;
  metrics?: Registry;
}

interface InFlight {
  msg: Message;
  lastTouchAt: number;
  bytes: number;
}

interface TopicReader {
  topic: string;
  reader: Reader;
  inFlight: Set<InFlight>;
  /** Called when inFlight becomes empty (set while a close waits for the drain). */
  onDrained: (() => void) | undefined;
  /** nsqd addresses connected now (nsqjs also emits nsqd_closed for a dial that failed). */
  connected: Set<string>;
  errors: { loggedAt: number; suppressed: number };
  counts: { received: number; finished: number; requeued: number; deadLettered: number };
}

type MessageResult = 'finished' | 'requeued' | 'invalid' | 'gave_up';
/** The drain deadline had already requeued the message. */
type HandleResult = MessageResult | 'answered-before';

/** Pause reasons: any one of them keeps every reader at RDY 0. */
type PauseReason = 'sender-unavailable' | 'byte-budget' | 'stopping';

export class Relay {
  private readonly cfg: RelayConfig;
  private readonly opts: RelayOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly topicSource: TopicSource;
  private readonly deadLetter: DeadLetterLog;
  private readonly readers = new Map<string, TopicReader>();
  private readerClass: typeof Reader | undefined;
  /** Readers let go of, still draining their in-flight messages. */
  private readonly closing = new Set<TopicReader>();
  private readonly pauseReasons = new Set<PauseReason>();
  private readonly answered = new WeakSet<Message>();
  private readonly prom: RelayProm | undefined;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | undefined;
  private refreshTimer: TimerHandle | undefined;
  private touchTimer: TimerHandle | undefined;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private readonly refusedTopics = new Set<string>();
  /** Bytes of messages received and not yet answered, all topics (relay.maxInFlightBytes). */
  private heldBytes = 0;
  private readonly counts = {
    received: 0,
    finished: 0,
    requeued: 0,
    invalid: 0,
    gaveUp: 0,
    pointsWritten: 0,
    pointsDeadLettered: 0,
    refreshes: 0,
    refreshSkipped: 0,
    touched: 0,
    byteBudgetPauses: 0,
  };
  private lastRequeueError: string | undefined;

  constructor(opts: RelayOptions) {
    const { config } = opts;
    if (opts.nsqdTcpAddresses.length === 0 && config.lookupdHttpAddresses.length === 0) {
      throw new Error('relay: no nsqd to consume from: set relay.nsqdTcpAddresses (or nsq.nsqdTcpAddresses) or relay.lookupdHttpAddresses');
    }
    if (config.requeueMaxMs < config.requeueMinMs) throw new Error('relay.requeueMaxMs must be >= relay.requeueMinMs');
    this.cfg = config;
    this.opts = opts;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.topicSource = new TopicSource({
      topicsFrom: config.topicsFrom,
      topicPrefix: opts.topicPrefix,
      namespaces: opts.namespaces,
      lookupdHttpAddresses: config.lookupdHttpAddresses,
      timeoutMs: Math.min(10_000, Math.max(1000, config.topicRefreshMs)),
      logger: this.log,
    });
    this.deadLetter = new DeadLetterLog({
      dir: opts.deadLetterDir,
      fileName: INVALID_MESSAGES_FILE,
      maxFileBytes: opts.deadLetterMaxFileBytes,
      clock: this.clock,
      logger: this.log,
    });
    this.prom = opts.metrics ? new RelayProm(opts.metrics) : undefined;
  }

  /** Subscribes to the current topics (awaited once), then keeps them in sync. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    // nsqjs is loaded only where a relay runs (it costs several MB of memory).
    this.readerClass = (await import('nsqjs')).Reader;
    this.opts.namespaces?.onChange(() => this.requestRefresh());
    this.opts.sender.onAvailabilityChange?.((available) => this.setPaused('sender-unavailable', !available));
    await this.refresh();
    if (this.state !== 'running') return;
    this.scheduleRefresh();
    this.scheduleTouch();
    this.log.info(
      {
        channel: this.cfg.channel,
        topicsFrom: this.cfg.topicsFrom,
        topics: [...this.readers.keys()],
        nsqd: this.opts.nsqdTcpAddresses,
        lookupd: this.cfg.lookupdHttpAddresses,
      },
      'relay started',
    );
  }

  /**
   * Stops taking messages, lets those in flight finish (up to relay.drainTimeoutMs), requeues
   * what is left, then closes the connections. Stop the relay before the sender.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const wasRunning = this.state === 'running';
      this.state = 'stopping';
      if (this.refreshTimer) this.clock.clearTimeout(this.refreshTimer);
      if (wasRunning) {
        this.setPaused('stopping', true);
        await this.refreshing;
        // Messages draining are still touched; the touch timer stops after.
        await Promise.allSettled([...this.readers.values()].map((tr) => this.closeReader(tr, this.cfg.drainTimeoutMs)));
        this.readers.clear();
      }
      if (this.touchTimer) this.clock.clearTimeout(this.touchTimer);
      await this.deadLetter.flush();
      this.state = 'stopped';
      this.log.info({ ...this.counts }, 'relay stopped');
    })();
    return this.stopping;
  }

  status(): Record<string, unknown> {
    const topics: Record<string, unknown> = {};
    for (const tr of this.readers.values()) {
      topics[tr.topic] = { connections: tr.connected.size, inFlight: tr.inFlight.size, ...tr.counts };
    }
    return {
      state: this.state,
      channel: this.cfg.channel,
      topicsFrom: this.cfg.topicsFrom,
      paused: [...this.pauseReasons],
      inFlight: this.inFlightCount(),
      inFlightBytes: this.heldBytes,
      maxInFlightBytes: this.cfg.maxInFlightBytes,
      ...this.counts,
      refusedTopics: [...this.refusedTopics],
      error: this.refusedTopics.size > 0 ? this.topicCapError() : null,
      lastRequeueError: this.lastRequeueError ?? null,
      lookupd: this.topicSource.stats,
      topics,
      deadLetter: this.deadLetter.status(),
    };
  }

  // --- topics -----------------------------------------------------------------------------------

  private requestRefresh(): void {
    if (this.state !== 'running') return;
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    void this.refresh();
  }

  private scheduleRefresh(): void {
    if (this.state !== 'running') return;
    this.refreshTimer = this.clock.setTimeout(() => {
      if (this.refreshing) this.counts.refreshSkipped++;
      else void this.refresh();
      this.scheduleRefresh();
    }, this.cfg.topicRefreshMs);
  }

  /** Never rejects; runs never overlap (a request during a run runs once more after it). */
  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        do {
          this.refreshAgain = false;
          this.counts.refreshes++;
          await this.applyTopics(await this.topicSource.topics());
        } while (this.refreshAgain && this.state === 'running');
      } catch (err) {
        this.log.error({ err }, 'relay topic refresh failed; keeping the current topics');
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private async applyTopics(wanted: readonly string[]): Promise<void> {
    if (this.state !== 'running') return;
    const want = new Set(wanted);
    const removed = [...this.readers.values()].filter((tr) => !want.has(tr.topic));
    const newlyRefused: string[] = [];
    for (const topic of wanted) {
      if (this.readers.has(topic)) continue;
      if (this.readers.size >= this.cfg.maxTopics) {
        if (!this.refusedTopics.has(topic)) {
          this.refusedTopics.add(topic);
          newlyRefused.push(topic);
        }
        continue;
      }
      this.refusedTopics.delete(topic);
      this.readers.set(topic, this.openReader(topic));
      this.log.info({ topic, channel: this.cfg.channel }, 'consuming topic');
    }
    for (const tr of removed) {
      this.readers.delete(tr.topic);
      this.log.info({ topic: tr.topic }, 'topic no longer listed; closing its reader (unread messages stay in nsqd)');
    }
    for (const topic of this.refusedTopics) if (!want.has(topic)) this.refusedTopics.delete(topic);
    if (newlyRefused.length > 0) {
      this.prom?.refusedTopics.inc(newlyRefused.length);
      // One line per refresh that refuses more, not one per topic nor one per poll.
      this.log.error(
        { newlyRefused: newlyRefused.length, refusedTopics: this.refusedTopics.size, maxTopics: this.cfg.maxTopics, examples: newlyRefused.slice(0, 10) },
        this.topicCapError(),
      );
    }
    this.prom?.refusedTopicsNow.set(this.refusedTopics.size);
    this.prom?.topics.set(this.readers.size);
    await Promise.allSettled(removed.map((tr) => this.closeReader(tr, this.cfg.drainTimeoutMs)));
  }

  private topicCapError(): string {
    return `${this.refusedTopics.size} topics not consumed (their messages stay in nsqd): relay.maxTopics (${this.cfg.maxTopics}) reached; raise relay.maxTopics`;
  }

  private openReader(topic: string): TopicReader {
    const reader = new (this.readerClass as typeof Reader)(topic, this.cfg.channel, {
      nsqdTCPAddresses: [...this.opts.nsqdTcpAddresses],
      lookupdHTTPAddresses: [...this.cfg.lookupdHttpAddresses],
      maxInFlight: this.cfg.maxInFlight,
      // 0: nsqjs would auto-finish (lose) a message past maxAttempts; we dead-letter it instead.
      maxAttempts: 0,
      lookupdPollInterval: this.cfg.lookupdPollIntervalSec,
      messageTimeout: this.cfg.messageTimeoutMs,
      requeueDelay: this.cfg.requeueMinMs,
      // What nsqd buffers for us is lost if it is SIGKILLed: ask for the shortest buffer.
      outputBufferTimeout: this.cfg.outputBufferTimeoutMs,
      ...this.opts.security?.options,
    });
    this.opts.security?.prepareReader(reader);
    const tr: TopicReader = {
      topic,
      reader,
      inFlight: new Set(),
      onDrained: undefined,
      connected: new Set(),
      errors: { loggedAt: -Infinity, suppressed: 0 },
      counts: { received: 0, finished: 0, requeued: 0, deadLettered: 0 },
    };
    // nsqjs: an 'error' with no listener crashes the process. It repeats at every re-dial while
    // an nsqd is away, for every topic: log the first, then one line a minute with a count.
    reader.on('error', (err) => {
      const now = this.clock.now();
      if (now - tr.errors.loggedAt < ERROR_LOG_EVERY_MS) {
        tr.errors.suppressed++;
        return;
      }
      this.log.warn({ topic, error: err.message, suppressedSinceLast: tr.errors.suppressed }, 'nsq reader error');
      tr.errors.loggedAt = now;
      tr.errors.suppressed = 0;
    });
    reader.on('nsqd_connected', (host, port) => {
      tr.connected.add(`${host}:${port}`);
      // nsqjs forgets a pause when its last connection closes (its RDY state machine goes back
      // to ZERO, then to MAX on the next connection): pause again before this one subscribes.
      if (this.pauseReasons.size > 0 && !reader.isPaused()) reader.pause();
      this.log.info({ topic, nsqd: `${host}:${port}` }, 'connected to nsqd');
    });
    reader.on('nsqd_closed', (host, port) => {
      const address = `${host}:${port}`;
      if (!tr.connected.delete(address)) return;
      if (this.state === 'running') this.log.warn({ topic, nsqd: address }, 'nsqd connection closed; nsqjs re-dials it');
    });
    reader.on('message', (msg: Message) => this.onMessage(tr, msg));
    if (this.pauseReasons.size > 0) reader.pause();
    reader.connect();
    return tr;
  }

  /** Pauses the reader, waits for its in-flight messages (bounded), requeues the rest, closes. */
  private async closeReader(tr: TopicReader, drainMs: number): Promise<void> {
    this.closing.add(tr);
    try {
      await this.drainAndClose(tr, drainMs);
    } finally {
      this.closing.delete(tr);
    }
  }

  private async drainAndClose(tr: TopicReader, drainMs: number): Promise<void> {
    tr.reader.pause();
    // nsqd may still send what it had taken before it saw RDY 0. A message that reaches a closed
    // connection stays in flight at nsqd for the whole message timeout, so give late arrivals
    // one quiet moment to come in (onMessage hands them straight back) before closing.
    await this.waitQuiet(tr, LATE_MESSAGE_QUIET_MS, LATE_MESSAGE_MAX_WAIT_MS);
    if (tr.inFlight.size > 0) await this.waitDrained(tr, drainMs);
    for (const entry of tr.inFlight) {
      if (this.respond(entry.msg, 'requeue', 0) === 'requeued') {
        tr.counts.requeued++;
        this.count('requeued');
      }
    }
    // nsqjs writes FIN/REQ on the next tick: let them out before the connection closes.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const closed = tr.connected.size > 0 ? once(tr.reader, 'not_ready') : Promise.resolve();
    tr.reader.close();
    await settledWithin(this.clock, closed, 2000);
  }

  /** Resolves once no message reached `tr` for `quietMs`, or after `maxMs` at the most. */
  private waitQuiet(tr: TopicReader, quietMs: number, maxMs: number): Promise<void> {
    if (tr.connected.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const clock = this.clock;
      const deadline = clock.now() + maxMs;
      let seen = tr.counts.received;
      clock.setTimeout(check, quietMs);
      function check(): void {
        if (tr.counts.received === seen || clock.now() >= deadline) return resolve();
        seen = tr.counts.received;
        clock.setTimeout(check, quietMs);
      }
    });
  }

  private waitDrained(tr: TopicReader, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(finish, ms);
      tr.onDrained = finish;
      const clock = this.clock;
      function finish(): void {
        clock.clearTimeout(timer);
        tr.onDrained = undefined;
        resolve();
      }
    });
  }

  // --- messages ---------------------------------------------------------------------------------

  private onMessage(tr: TopicReader, msg: Message): void {
    if (this.state !== 'running' || this.closing.has(tr)) {
      // Sent by nsqd before it saw our pause: hand it straight back rather than start a write
      // whose FIN could miss the closing connection (nsqd would then hold it for msg-timeout).
      tr.counts.received++;
      this.counts.received++;
      if (this.respond(msg, 'requeue', 0) === 'requeued') {
        tr.counts.requeued++;
        this.count('requeued');
      }
      return;
    }
    const entry: InFlight = { msg, lastTouchAt: this.clock.now(), bytes: msg.body.length };
    tr.inFlight.add(entry);
    tr.counts.received++;
    this.counts.received++;
    this.prom?.inFlight.inc();
    this.holdBytes(entry.bytes);
    void this.handle(tr, msg)
      .then(
        (result) => {
          if (result === 'answered-before') return;
          if (result === 'requeued') tr.counts.requeued++;
          else if (result === 'finished') tr.counts.finished++;
          else tr.counts.deadLettered++;
          this.count(result);
        },
        (err: unknown) => {
          // handle() responds on every path; this guards against a bug leaving a message hanging.
          this.log.error({ err, topic: tr.topic }, 'message handling failed unexpectedly; requeueing');
          this.respond(msg, 'requeue', this.requeueDelayMs(msg.attempts));
        },
      )
      .finally(() => {
        tr.inFlight.delete(entry);
        this.prom?.inFlight.dec();
        this.holdBytes(-entry.bytes);
        if (tr.inFlight.size === 0) tr.onDrained?.();
      });
  }

  private async handle(tr: TopicReader, msg: Message): Promise<HandleResult> {
    const payload = msg.body;
    let namespace: string;
    let bodyStart: number;
    try {
      ({ namespace, bodyStart } = readMessageHeader(payload));
    } catch (err) {
      return this.deadLetterMessage(tr, msg, (err as Error).message, 'invalid');
    }
    if (this.cfg.maxAttempts > 0 && msg.attempts > this.cfg.maxAttempts) {
      return this.deadLetterMessage(tr, msg, `gave up after ${msg.attempts - 1} attempts (relay.maxAttempts ${this.cfg.maxAttempts})`, 'gave_up', namespace);
    }
    try {
      // The lines stay in the message's bytes until the sender accepted them: no copy as strings.
      const outcome = await this.opts.sender.write(namespace, LineBlock.fromBody(payload, bodyStart));
      this.counts.pointsWritten += outcome.written;
      this.counts.pointsDeadLettered += outcome.deadLettered;
      return this.respond(msg, 'finish');
    } catch (err) {
      const hint = err instanceof RetryableWriteError ? err.retryAfterMs : undefined;
      const delay = Math.max(this.requeueDelayMs(msg.attempts), Math.min(hint ?? 0, MAX_REQUEUE_MS));
      this.lastRequeueError = (err as Error).message;
      this.log.debug({ topic: tr.topic, namespace, attempts: msg.attempts, delayMs: delay, error: (err as Error).message }, 'write failed; message requeued');
      return this.respond(msg, 'requeue', delay);
    }
  }

  private async deadLetterMessage(
    tr: TopicReader,
    msg: Message,
    reason: string,
    result: 'invalid' | 'gave_up',
    namespace?: string,
  ): Promise<HandleResult> {
    const line = msg.body.toString('utf8');
    try {
      await this.deadLetter.append([{ topic: tr.topic, ...(namespace === undefined ? {} : { namespace }), reason, line }]);
    } catch {
      // Kept nowhere: leave it in NSQ (DeadLetterLog logged why).
      return this.respond(msg, 'requeue', this.requeueDelayMs(msg.attempts));
    }
    this.log.warn({ topic: tr.topic, reason, attempts: msg.attempts, bytes: msg.body.length, file: this.deadLetter.file }, 'message dead-lettered');
    return this.respond(msg, 'finish') === 'answered-before' ? 'answered-before' : result;
  }

  /** A message requeued by the drain deadline may still come back from the sender: answer once. */
  private respond(msg: Message, how: 'finish' | 'requeue', delayMs = 0): 'finished' | 'requeued' | 'answered-before' {
    // nsqjs sets hasResponded a tick later; our own mark closes that window.
    if (msg.hasResponded || this.answered.has(msg)) return 'answered-before';
    this.answered.add(msg);
    if (how === 'finish') msg.finish();
    // backoff=false: nsqjs's own backoff would stall the reader; pausing is ours to decide.
    else msg.requeue(delayMs, false);
    return how === 'finish' ? 'finished' : 'requeued';
  }

  private requeueDelayMs(attempts: number): number {
    const { requeueMinMs, requeueMaxMs } = this.cfg;
    return backoffMs(attempts - 1, requeueMinMs, requeueMaxMs);
  }

  private count(result: MessageResult): void {
    if (result === 'finished') this.counts.finished++;
    else if (result === 'requeued') this.counts.requeued++;
    else if (result === 'invalid') this.counts.invalid++;
    else this.counts.gaveUp++;
    this.prom?.messages.labels(result).inc();
  }

  private inFlightCount(): number {
    let n = 0;
    for (const tr of [...this.readers.values(), ...this.closing]) n += tr.inFlight.size;
    return n;
  }

  // --- pause and touch --------------------------------------------------------------------------

  /**
   * Past the byte budget every reader goes to RDY 0; nsqd may still deliver what it had sent
   * before it saw that, so the overshoot is at most what was already on its way.
   */
  private holdBytes(delta: number): void {
    this.heldBytes += delta;
    this.prom?.inFlightBytes.set(this.heldBytes);
    const over = this.heldBytes > this.cfg.maxInFlightBytes;
    if (over === this.pauseReasons.has('byte-budget')) return;
    if (over) this.counts.byteBudgetPauses++;
    this.setPaused('byte-budget', over);
  }

  private setPaused(reason: PauseReason, on: boolean): void {
    const before = this.pauseReasons.size > 0;
    if (on) this.pauseReasons.add(reason);
    else this.pauseReasons.delete(reason);
    const after = this.pauseReasons.size > 0;
    this.prom?.paused.set(after ? 1 : 0);
    if (before === after) return;
    for (const tr of this.readers.values()) {
      if (after) tr.reader.pause();
      else tr.reader.unpause();
    }
    // Byte-budget pauses come and go many times a second at full speed: counted, not logged.
    if (reason === 'sender-unavailable') this.log.warn({ reason }, after ? 'relay paused: the sender cannot deliver now' : 'relay resumed');
  }

  /** Touches messages waiting on a write before nsqd's message timeout would redeliver them. */
  private scheduleTouch(): void {
    const every = Math.max(250, Math.min(5000, Math.floor(this.cfg.messageTimeoutMs / 4)));
    this.touchTimer = this.clock.setTimeout(() => {
      const now = this.clock.now();
      for (const tr of [...this.readers.values(), ...this.closing]) {
        for (const entry of tr.inFlight) {
          if (!this.answered.has(entry.msg) && now - entry.lastTouchAt >= this.cfg.messageTimeoutMs / 2) {
            entry.msg.touch();
            entry.lastTouchAt = now;
            this.counts.touched++;
          }
        }
      }
      if (this.state === 'running' || this.state === 'stopping') this.scheduleTouch();
    }, every);
  }
}

const ERROR_LOG_EVERY_MS = 60_000;

/** nsqd's default --max-req-timeout is 1 h; a longer requeue is refused. */
const MAX_REQUEUE_MS = 3_600_000;

class RelayProm {
  readonly messages: Counter<'result'>;
  readonly inFlight: Gauge;
  readonly topics: Gauge;
  readonly paused: Gauge;
  readonly refusedTopics: Counter;
  readonly refusedTopicsNow: Gauge;
  readonly inFlightBytes: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.messages = new Counter({
      name: 'nsagent_relay_messages_total',
      help: 'NSQ messages handled, by result: finished, requeued, invalid (dead-lettered), gave_up (maxAttempts, dead-lettered).',
      labelNames: ['result'],
      registers,
    });
    this.inFlight = new Gauge({ name: 'nsagent_relay_in_flight_messages', help: 'Messages received and not yet finished or requeued.', registers });
    this.topics = new Gauge({ name: 'nsagent_relay_topics', help: 'Topics consumed.', registers });
    this.paused = new Gauge({ name: 'nsagent_relay_paused', help: '1 while consumption is paused (sender unavailable, byte budget reached, or stopping).', registers });
    this.refusedTopics = new Counter({ name: 'nsagent_relay_refused_topics_total', help: 'Topics not consumed because relay.maxTopics was reached.', registers });
    this.refusedTopicsNow = new Gauge({
      name: 'nsagent_relay_refused_topics',
      help: 'Topics wanted but not consumed now because relay.maxTopics is reached (an error: their messages stay in nsqd).',
      registers,
    });
    this.inFlightBytes = new Gauge({
      name: 'nsagent_relay_in_flight_bytes',
      help: 'Bytes of messages received and not yet finished or requeued (bounded by relay.maxInFlightBytes).',
      registers,
    });
  }
}

export interface CreateRelayDeps {
  sender: GatewaySender;
  /** The registry's namespaces; required unless relay.topicsFrom is "lookupd". */
  namespaces?: NamespaceSource;
  logger: Logger;
  clock?: Clock;
  metrics?: Registry;
}

/**
 * The factory the composition root uses. nsqd addresses: relay.nsqdTcpAddresses, else
 * nsq.nsqdTcpAddresses; topic prefix: nsq.topicPrefix (default "ns."); dead letters beside the
 * sender's, in sender.deadLetterDir.
 */
export function createRelay(config: RelayConfigSource, deps: CreateRelayDeps): Relay {
  const nsqdTcpAddresses = config.relay.nsqdTcpAddresses.length > 0 ? config.relay.nsqdTcpAddresses : (config.nsq?.nsqdTcpAddresses ?? []);
  return new Relay({
    config: config.relay,
    nsqdTcpAddresses,
    topicPrefix: config.nsq?.topicPrefix ?? 'ns.',
    sender: deps.sender,
    namespaces: deps.namespaces,
    security: relayLinkSecurity(config),
    deadLetterDir: config.sender.deadLetterDir,
    deadLetterMaxFileBytes: config.sender.deadLetterMaxFileBytes,
    logger: deps.logger,
    clock: deps.clock,
    metrics: deps.metrics,
  });
}

/** The parts of ResolvedConfig the relay reads. */
export interface RelayConfigSource {
  relay: RelayConfig;
  nsq?: ({ nsqdTcpAddresses: string[]; topicPrefix: string } & NsqLinkSecurityConfig) | undefined;
  sender: { deadLetterDir: string; deadLetterMaxFileBytes: number };
}

/** relay.tls / compression / authSecret, each falling back to the nsq section's. */
function relayLinkSecurity(config: RelayConfigSource): NsqConnectionSecurity {
  const { relay, nsq } = config;
  return nsqConnectionSecurity(
    {
      tls: relay.tls ?? nsq?.tls,
      compression: relay.compression ?? nsq?.compression,
      authSecret: relay.authSecret ?? nsq?.authSecret,
    },
    relay.tls ? 'relay' : 'nsq',
  );
}
