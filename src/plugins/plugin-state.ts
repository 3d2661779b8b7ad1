// The enable/disable state of plugins, per namespace + repo (the URL, or a built-in plugin's
// name), kept in a JSON file under dataDir so it survives restarts. Written atomically (temp
// file, fsync, rename). A disabled plugin is enabled again by itself after autoEnableAfterSec;
// time comes from the injected clock.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';

export interface PluginStateStoreOptions {
  /** e.g. <dataDir>/plugins-state.json */
  file: string;
  autoEnableAfterSec: number;
  clock: Clock;
  logger: Logger;
}

export interface DisabledPlugin {
  namespace: string;
  repo: string;
  disabledAt: number;
  /** Epoch ms at which it is enabled again by itself. */
  until: number;
}

interface StateFile {
  version: 1;
  disabled: DisabledPlugin[];
}

export class PluginStateStore {
  private readonly file: string;
  private readonly autoEnableMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly disabled = new Map<string, DisabledPlugin>();
  /** Writes run one after another, each writing the state as it is then. */
  private writing: Promise<void> = Promise.resolve();

  constructor(opts: PluginStateStoreOptions) {
    if (!path.isAbsolute(opts.file)) throw new Error(`plugin state file must be absolute, got ${JSON.stringify(opts.file)}`);
    if (!(opts.autoEnableAfterSec > 0)) throw new Error(`autoEnableAfterSec must be positive, got ${opts.autoEnableAfterSec}`);
    this.file = opts.file;
    this.autoEnableMs = opts.autoEnableAfterSec * 1000;
    this.clock = opts.clock;
    this.log = opts.logger;
  }

  /** Reads the file; a missing file is an empty state, a corrupt one is logged and ignored. */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as Partial<StateFile>;
      this.disabled.clear();
      for (const d of Array.isArray(parsed.disabled) ? parsed.disabled : []) {
        if (typeof d?.namespace === 'string' && typeof d.repo === 'string' && Number.isFinite(d.until)) {
          this.disabled.set(keyOf(d.namespace, d.repo), {
            namespace: d.namespace,
            repo: d.repo,
            disabledAt: Number.isFinite(d.disabledAt) ? d.disabledAt : d.until - this.autoEnableMs,
            until: d.until,
          });
        }
      }
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, 'plugin state file unreadable; every plugin starts enabled');
    }
  }

  /** Null when enabled (or when the disable has expired). */
  disabledUntil(namespace: string, repo: string): number | null {
    const d = this.disabled.get(keyOf(namespace, repo));
    return d && d.until > this.clock.now() ? d.until : null;
  }

  isEnabled(namespace: string, repo: string): boolean {
    return this.disabledUntil(namespace, repo) === null;
  }

  /** Disables (or re-disables, restarting the day) and persists; returns when it ends. */
  async disable(namespace: string, repo: string): Promise<number> {
    const now = this.clock.now();
    const until = now + this.autoEnableMs;
    this.disabled.set(keyOf(namespace, repo), { namespace, repo, disabledAt: now, until });
    await this.persist();
    return until;
  }

  /** Enables and persists; false when it was not disabled. */
  async enable(namespace: string, repo: string): Promise<boolean> {
    const was = this.disabledUntil(namespace, repo) !== null;
    if (!this.disabled.delete(keyOf(namespace, repo))) return false;
    await this.persist();
    return was;
  }

  /** Drops and persists every disable whose day is over; returns them. */
  async expireDue(): Promise<DisabledPlugin[]> {
    const now = this.clock.now();
    const due = [...this.disabled.values()].filter((d) => d.until <= now);
    if (due.length === 0) return [];
    for (const d of due) this.disabled.delete(keyOf(d.namespace, d.repo));
    await this.persist();
    return due;
  }

  /** The earliest auto-enable time still ahead, or null. */
  nextExpiry(): number | null {
    let next: number | null = null;
    for (const d of this.disabled.values()) if (next === null || d.until < next) next = d.until;
    return next;
  }

  private persist(): Promise<void> {
    const write = this.writing.then(() => this.writeNow());
    // The chain goes on after a failed write; the caller of this write still sees the failure.
    this.writing = write.catch(() => {});
    return write;
  }

  private async writeNow(): Promise<void> {
    const body: StateFile = { version: 1, disabled: [...this.disabled.values()] };
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(body, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
  }
}

function keyOf(namespace: string, repo: string): string {
  return JSON.stringify([namespace, repo]);
}
