// Enables a disabled plugin again by itself once plugins.autoEnableAfterSec has passed: one
// timer, for the earliest expiry in the enable/disable state, armed again after each change of
// that state and after each expiry. The timer never rejects; a failed save is logged.
import type { Logger } from 'pino';
import { MAX_TIMER_MS, type Clock, type TimerHandle } from '../clock.ts';
import type { PluginStateStore } from './plugin-state.ts';

export interface AutoEnableOptions {
  state: PluginStateStore;
  clock: Clock;
  logger: Logger;
  /** Aborted when the agent stops: the timer is not armed again. */
  signal: AbortSignal;
  /** Called after plugins were enabled again (their jobs come back). */
  onEnabled: () => void;
}

export class AutoEnable {
  private readonly log: Logger;
  private timer: TimerHandle | undefined;
  /** Plugins enabled again by the timer. */
  autoEnabled = 0;

  constructor(private readonly opts: AutoEnableOptions) {
    this.log = opts.logger;
  }

  /** (Re)arms the one timer for the earliest auto-enable; it re-arms itself. */
  arm(): void {
    this.stop();
    if (this.opts.signal.aborted) return;
    const next = this.opts.state.nextExpiry();
    if (next === null) return;
    const delay = Math.max(0, Math.min(next - this.opts.clock.now(), MAX_TIMER_MS));
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      // Long waits are cut into hours (timers cannot wait a day reliably); not due yet: re-arm.
      const due = this.opts.state.nextExpiry();
      if (due === null || due > this.opts.clock.now()) {
        this.arm();
        return;
      }
      this.opts.state
        .expireDue()
        .then((due) => {
          for (const d of due) {
            this.autoEnabled++;
            this.log.info({ namespace: d.namespace, repo: d.repo, disabledAt: new Date(d.disabledAt).toISOString() }, 'plugin enabled again by itself');
          }
          if (due.length > 0) this.opts.onEnabled();
        })
        .catch((err: unknown) => this.log.error({ err }, 'cannot save the plugin state after auto-enable'))
        .finally(() => this.arm());
    }, delay);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
