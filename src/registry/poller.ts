// One registry poller (namespaces, checks or plugins): polls its source on its own interval
// and on demand, validates, keeps the last good answer in force (and on disk), and reports
// its last success, last error and next poll. Polls never overlap and timers never reject.
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Clock, TimerHandle } from '../clock.ts';
import { jobPhaseMs, nextAlignedRun } from '../job-timing.ts';
import type { RegistryCache } from './cache.ts';
import type { RegistrySource } from './source.ts';
import type { PollerStatus } from './types.ts';
import { validateAnswer, type AnswerValue, type PollerKind } from './validate.ts';

/** Problems quoted in one log line / status message; the rest are counted. */
const MAX_PROBLEMS_SHOWN = 10;

export class RegistryMetrics {
  readonly polls: Counter<'poller' | 'outcome'>;

  constructor(metrics?: Registry) {
    this.polls = new Counter({
      name: 'nsagent_registry_polls_total',
      help: 'Registry polls by poller and outcome (changed, unchanged, not_modified, refused, failed, skipped)',
      labelNames: ['poller', 'outcome'],
      registers: metrics ? [metrics] : [],
    });
  }
}

export interface RegistryPollerOptions<K extends PollerKind> {
  kind: K;
  source: RegistrySource;
  cache: RegistryCache;
  /** Seeds the poll phase, so a fleet does not poll the registry in the same second. */
  hostname: string;
  intervalSec: number;
  clock: Clock;
  logger: Logger;
  metrics: RegistryMetrics;
  /** Called after the answer in force changed (not on a 304 or an identical answer). */
  onChange: () => void;
}

export class RegistryPoller<K extends PollerKind> {
  readonly kind: K;
  private source: RegistrySource;
  private cache: RegistryCache;
  private intervalMs: number;
  private readonly hostname: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: RegistryMetrics;
  private readonly onChange: () => void;
  private answer: AnswerValue<K> | null = null;
  private etag: string | null = null;
  private savedEtag: string | null = null;
  private origin: PollerStatus['source'] = 'none';
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  private nextPollAt: number | null = null;
  private timer: TimerHandle | undefined;
  private inflight: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private state: 'idle' | 'running' | 'stopped' = 'idle';

  constructor(opts: RegistryPollerOptions<K>) {
    this.kind = opts.kind;
    this.source = opts.source;
    this.cache = opts.cache;
    this.hostname = opts.hostname;
    this.intervalMs = toIntervalMs(opts.intervalSec);
    this.clock = opts.clock;
    this.log = opts.logger;
    this.metrics = opts.metrics;
    this.onChange = opts.onChange;
  }

  /** The answer in force (registry or cache), or null when there never was one. */
  value(): AnswerValue<K> | null {
    return this.answer;
  }

  /** Puts the cached answer in force when nothing better is; true when it did. */
  async loadCache(): Promise<boolean> {
    const loaded = await this.cache.load(this.kind);
    if (loaded.status === 'unusable') {
      this.log.warn({ poller: this.kind, reason: loaded.reason }, 'registry cache not used');
      return false;
    }
    if (loaded.status === 'absent' || this.answer !== null) return false;
    this.answer = loaded.entry.value;
    this.etag = loaded.entry.etag;
    this.savedEtag = loaded.entry.etag;
    this.origin = 'cache';
    this.log.info({ poller: this.kind, savedAt: new Date(loaded.entry.savedAt).toISOString() }, 'registry cache loaded');
    return true;
  }

  /** Polls once (resolves when applied or refused), then keeps polling on the interval. */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    await this.runPoll();
    this.arm();
  }

  stop(): void {
    this.state = 'stopped';
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.nextPollAt = null;
  }

  /**
   * Polls now. A poll already going may have started before the change the caller wants to
   * see, so this waits for it and then polls again; concurrent callers share that one poll.
   */
  async pollNow(): Promise<PollerStatus> {
    if (this.state === 'stopped') return this.status();
    if (this.queued === null) {
      const prior = this.inflight ?? Promise.resolve();
      this.queued = prior.then(() => {
        this.queued = null;
        return this.runPoll();
      });
    }
    await this.queued;
    return this.status();
  }

  /** New source or interval (config reload): the answer in force stays until the next poll. */
  reconfigure(opts: { source?: RegistrySource; cache?: RegistryCache; intervalSec?: number }): void {
    if (opts.source && opts.source !== this.source) {
      this.source = opts.source;
      this.etag = null; // an ETag means nothing to another registry
    }
    if (opts.cache) this.cache = opts.cache;
    if (opts.intervalSec !== undefined) {
      const ms = toIntervalMs(opts.intervalSec);
      if (ms !== this.intervalMs) {
        this.intervalMs = ms;
        if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
        this.timer = undefined;
        this.arm();
      }
    }
  }

  status(): PollerStatus {
    return {
      name: this.kind,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      nextPollAt: this.nextPollAt,
      source: this.origin,
      location: this.source.location,
    };
  }

  private arm(): void {
    if (this.state !== 'running' || this.timer !== undefined) return;
    const now = this.clock.now();
    const at = nextAlignedRun(now, this.intervalMs, jobPhaseMs(this.hostname, `registry:${this.kind}`, this.intervalMs));
    this.nextPollAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.onTimer();
    }, at - now);
  }

  private async onTimer(): Promise<void> {
    try {
      if (this.inflight !== null) {
        this.metrics.polls.inc({ poller: this.kind, outcome: 'skipped' });
        this.log.debug({ poller: this.kind }, 'registry poll skipped: the previous one is still going');
      } else {
        await this.runPoll();
      }
    } catch (err) {
      this.log.error({ err, poller: this.kind }, 'registry poll timer failed');
    } finally {
      this.arm();
    }
  }

  private runPoll(): Promise<void> {
    const p = this.poll().finally(() => {
      if (this.inflight === p) this.inflight = null;
    });
    this.inflight = p;
    return p;
  }

  /** Never rejects: every failure becomes lastError. */
  private async poll(): Promise<void> {
    let outcome: string;
    try {
      const ans = await this.source.fetch(this.kind, this.etag);
      if (ans.status === 'not-modified') {
        // The answer in force is the registry's current one, even when it was loaded from cache.
        if (this.answer !== null) this.origin = 'registry';
        outcome = 'not_modified';
        this.succeeded();
      } else {
        const v = validateAnswer(this.kind, ans.body, { at: ans.at, keyRequired: ans.keyRequired });
        if (!v.ok) {
          const shown = v.problems.slice(0, MAX_PROBLEMS_SHOWN).join('; ');
          const more = v.problems.length > MAX_PROBLEMS_SHOWN ? ` (and ${v.problems.length - MAX_PROBLEMS_SHOWN} more)` : '';
          this.metrics.polls.inc({ poller: this.kind, outcome: 'refused' });
          this.failed(`answer refused, the previous one stays in force: ${shown}${more}`);
          return;
        }
        const changed = this.answer === null || JSON.stringify(v.value) !== JSON.stringify(this.answer);
        this.answer = v.value;
        this.etag = ans.etag;
        this.origin = 'registry';
        outcome = changed ? 'changed' : 'unchanged';
        this.succeeded();
        if (changed || ans.etag !== this.savedEtag) await this.saveCache();
        if (changed) {
          this.log.info({ poller: this.kind, from: this.source.location }, 'registry answer changed');
          this.onChange();
        }
      }
      this.metrics.polls.inc({ poller: this.kind, outcome });
    } catch (err) {
      this.metrics.polls.inc({ poller: this.kind, outcome: 'failed' });
      this.failed((err as Error).message ?? String(err));
    }
  }

  private async saveCache(): Promise<void> {
    if (this.answer === null) return;
    try {
      await this.cache.save(this.kind, this.answer, this.etag, this.clock.now());
      this.savedEtag = this.etag;
    } catch (err) {
      this.log.warn({ err, poller: this.kind, file: this.cache.fileFor(this.kind) }, 'registry cache not written; the answer is in force but would not survive a restart');
    }
  }

  private succeeded(): void {
    if (this.lastError !== null) this.log.info({ poller: this.kind }, 'registry poll succeeds again');
    this.lastSuccessAt = this.clock.now();
    this.lastError = null;
  }

  /** Logged when a burst of failures starts or its reason changes, not on every poll. */
  private failed(message: string): void {
    const repeat = this.lastError === message;
    this.lastError = message;
    this.lastErrorAt = this.clock.now();
    const fields = { poller: this.kind, error: message, answerInForce: this.origin };
    if (repeat) this.log.debug(fields, 'registry poll failed again');
    else this.log.warn(fields, 'registry poll failed');
  }
}

function toIntervalMs(sec: number): number {
  const ms = Math.round(sec * 1000);
  if (!(Number.isFinite(ms) && ms >= 1)) throw new RangeError(`registry poll interval must be positive, found ${sec}`);
  return ms;
}
