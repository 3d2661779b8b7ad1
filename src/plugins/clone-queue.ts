// Brings git plugins' trees in and keeps them current: the cached clone when there is one (no
// network), else a clone, at most plugins.maxConcurrentClones at once, a failed clone tried again
// plugins.cloneRetrySec later (one timer for all); and the update a caller asks for. Each
// record's git state (ready, commit, problem, updateError, gitBusy) is set here only.
import type { Logger } from 'pino';
import { MAX_TIMER_MS, type Clock, type TimerHandle } from '../clock.ts';
import { Slots } from '../slots.ts';
import { PluginRepoError, type PluginRepoCache } from './git-cache.ts';
import type { PluginEntries, PluginRecord } from './plugin-entries.ts';
import type { PluginOpOutcome } from './types.ts';

export interface CloneQueueOptions {
  cache: PluginRepoCache;
  entries: PluginEntries;
  maxConcurrentClones: number;
  cloneRetrySec: number;
  clock: Clock;
  logger: Logger;
  /** Aborted when the agent stops: git operations give up, nothing more is cloned. */
  signal: AbortSignal;
  /** Resolves when the plugin has no run in progress: trees are swapped between runs. */
  waitIdle: (rec: PluginRecord) => Promise<void>;
}

export class CloneQueue {
  private readonly log: Logger;
  /** plugins.maxConcurrentClones; every plugin of a registry may wait for one. */
  private readonly slots: Slots;
  private retryTimer: TimerHandle | undefined;
  readonly counters = { clones: 0, cloneFailures: 0, updates: 0, updateFailures: 0 };

  constructor(private readonly opts: CloneQueueOptions) {
    this.log = opts.logger;
    this.slots = new Slots({ capacity: opts.maxConcurrentClones, what: 'clones', maxWaiting: Number.POSITIVE_INFINITY });
  }

  /** Brings in every git plugin not cloned yet (or cloned from another URL); resolves when each is in or failed. */
  async bringInAll(): Promise<void> {
    const work: Array<Promise<void>> = [];
    for (const rec of this.opts.entries.values()) {
      if (rec.repo !== null && (!rec.ready || rec.needsClone) && !rec.gitBusy && rec.problem === null) work.push(this.bringIn(rec));
    }
    await Promise.all(work);
  }

  /**
   * A caller's update: clones a plugin not cloned yet (its entry checked again first), else
   * fetches and checks out the entry's ref between runs; a failed update leaves the old tree.
   */
  async update(rec: PluginRecord): Promise<PluginOpOutcome> {
    const namespace = rec.namespace;
    if (rec.repo === null) return { ok: false, kind: 'bad-request', message: `${rec.name} is a built-in plugin: there is nothing to update` };
    if (rec.gitBusy) return { ok: false, kind: 'busy', message: `a clone or update of ${rec.name} in namespace ${namespace} is already in progress` };
    if (!rec.ready || rec.needsClone) {
      const problem = this.opts.entries.problemOf(rec);
      if (problem !== null) return { ok: false, kind: 'bad-request', message: problem };
      rec.problem = null;
      rec.cloneFailures = 0;
      await this.bringIn(rec);
      if (!rec.ready || rec.needsClone) return { ok: false, kind: 'git-failed', message: rec.problem ?? rec.updateError ?? 'clone failed' };
      return { ok: true, message: `cloned ${rec.repo} at ${shortSha(rec.commit)}` };
    }
    rec.gitBusy = true;
    try {
      const out = await this.opts.cache.update(namespace, rec.name, rec.repo, rec.entry.ref, {
        waitIdle: () => this.opts.waitIdle(rec),
        signal: this.opts.signal,
      });
      this.counters.updates++;
      rec.commit = out.to;
      rec.updateError = null;
      rec.problem = null;
      return { ok: true, message: out.changed ? `updated from ${shortSha(out.from)} to ${shortSha(out.to)}` : `already at ${shortSha(out.to)}` };
    } catch (err) {
      this.counters.updateFailures++;
      const message = err instanceof PluginRepoError ? err.message : `update failed: ${(err as Error).message}`;
      rec.updateError = message;
      this.log.warn({ namespace, plugin: rec.name, repo: rec.repo, err: message }, 'plugin update failed; the old tree stays');
      return { ok: false, kind: 'git-failed', message };
    } finally {
      rec.gitBusy = false;
    }
  }

  /** No clone is tried again (the agent is stopping). */
  stopRetries(): void {
    if (this.retryTimer) this.opts.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  /** Resolves when no clone is in progress or waiting (after a stop, the signal has aborted them). */
  idle(): Promise<void> {
    return this.slots.idle();
  }

  /** Uses the cached clone when there is one (no network), else clones, within maxConcurrentClones. */
  private async bringIn(rec: PluginRecord): Promise<void> {
    rec.gitBusy = true;
    try {
      if (!rec.ready) {
        const cached = await this.opts.cache.readCached(rec.namespace, rec.name);
        if (cached && (cached.url === null || cached.url === rec.repo)) {
          rec.ready = true;
          rec.commit = cached.commit;
          rec.problem = null;
          return;
        }
        if (cached) {
          // Cloned from another URL by an earlier registry: usable until the new clone is in.
          rec.ready = true;
          rec.commit = cached.commit;
          rec.needsClone = true;
        }
      }
      const release = await this.slots.acquire();
      try {
        if (this.opts.signal.aborted || !this.opts.entries.isCurrent(rec)) return;
        const clone = await this.opts.cache.clone(rec.namespace, rec.name, rec.repo as string, rec.entry.ref, {
          waitIdle: () => this.opts.waitIdle(rec),
          signal: this.opts.signal,
        });
        this.counters.clones++;
        rec.ready = true;
        rec.needsClone = false;
        rec.commit = clone.commit;
        rec.problem = null;
        rec.cloneFailures = 0;
      } catch (err) {
        if (this.opts.signal.aborted) return;
        this.counters.cloneFailures++;
        rec.cloneFailures++;
        const why = err instanceof PluginRepoError ? err.message : `clone failed: ${(err as Error).message}`;
        if (!rec.ready) rec.problem = why;
        else rec.updateError = why; // still running the clone from the old URL
        this.log.warn({ namespace: rec.namespace, plugin: rec.name, repo: rec.repo, err: why, retryInSec: this.opts.cloneRetrySec }, 'plugin clone failed');
        this.armCloneRetry();
      } finally {
        release();
      }
    } finally {
      rec.gitBusy = false;
    }
  }

  private armCloneRetry(): void {
    if (this.retryTimer || this.opts.signal.aborted) return;
    this.retryTimer = this.opts.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.opts.signal.aborted) return;
      for (const rec of this.opts.entries.values()) {
        const failed = rec.repo !== null && !rec.gitBusy && ((!rec.ready && rec.cloneFailures > 0) || rec.needsClone);
        if (failed) {
          rec.problem = null;
          this.bringIn(rec).catch((err: unknown) => this.log.error({ err }, 'plugin clone retry failed'));
        }
      }
    }, Math.min(this.opts.cloneRetrySec * 1000, MAX_TIMER_MS));
    this.retryTimer.unref?.();
  }
}

function shortSha(sha: string | null): string {
  return sha ? sha.slice(0, 12) : 'an unknown commit';
}
