// Start in order, stop in reverse: the composition root's one mechanism for long-lived parts.
// stop() is idempotent, runs every step even when one fails, and logs each failure once.
import type { Logger } from 'pino';

export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface NamedPart extends Lifecycle {
  name: string;
}

export class LifecycleGroup {
  private readonly parts: NamedPart[] = [];
  private started: NamedPart[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /** Sinks first, sources last: add in the order the parts must start. */
  add(name: string, part: Lifecycle): void {
    this.parts.push({ name, start: () => part.start(), stop: () => part.stop() });
  }

  async start(): Promise<void> {
    for (const part of this.parts) {
      try {
        await part.start();
      } catch (err) {
        this.log.error({ err, part: part.name }, 'start failed; stopping what had started');
        await this.stop();
        throw err;
      }
      this.started.push(part);
      this.log.debug({ part: part.name }, 'started');
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const part of [...this.started].reverse()) {
        try {
          await part.stop();
          this.log.debug({ part: part.name }, 'stopped');
        } catch (err) {
          this.log.error({ err, part: part.name }, 'stop failed; going on with the rest');
        }
      }
      this.started = [];
    })();
    return this.stopping;
  }
}
