// One nsqd address: an nsqjs Writer that is replaced after every close, with exponential backoff,
// because nsqjs never reconnects a Writer (nsqjs#69). Publishes are promises that always settle:
// OK, a failed connection, or a publish that nsqd left unanswered for publishTimeoutMs.
import type { Writer } from 'nsqjs';
import type { Logger } from 'pino';
import { backoffMs, withJitter } from '../backoff.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { NsqConnectionSecurity } from './nsq-tls.ts';

export type LinkState = 'idle' | 'connecting' | 'ready' | 'down' | 'stopped';

export interface NsqdLinkOptions {
  /** "host:port" of nsqd's TCP listener. */
  address: string;
  logger: Logger;
  clock: Clock;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** A publish nsqd has not answered after this long kills the connection (its batches are resent). */
  publishTimeoutMs: number;
  /** Called when the link becomes ready to publish, and when it goes down. */
  onChange: (link: NsqdLink) => void;
  /** TLS, compression and AUTH towards nsqd (nsq-tls.ts); absent = plain TCP. */
  security?: NsqConnectionSecurity;
}

export interface LinkStatus {
  address: string;
  state: LinkState;
  inFlight: number;
  connects: number;
  /** Connections that ended (restart, error, timeout) since start. */
  disconnects: number;
  lastError?: string;
  readySince?: string;
}

/** Raised instead of a publish when the link has no ready connection. */
export class LinkDownError extends Error {
  constructor(address: string) {
    super(`nsqd ${address} is not connected`);
    this.name = 'LinkDownError';
  }
}

interface InFlight {
  startedAtMs: number;
  settled: boolean;
  reject(err: Error): void;
}

export class NsqdLink {
  readonly address: string;
  private readonly host: string;
  private readonly port: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly opts: NsqdLinkOptions;
  private writer: Writer | undefined;
  private writerClass: typeof Writer | undefined;
  private stateValue: LinkState = 'idle';
  private readonly inFlight: InFlight[] = [];
  private attempt = 0;
  private reconnectTimer: TimerHandle | undefined;
  private watchdog: TimerHandle | undefined;
  private connects = 0;
  private disconnects = 0;
  private lastError: string | undefined;
  private readySinceMs: number | undefined;
  /** Errors are logged once per connection attempt, not once per event of a flapping nsqd. */
  private loggedThisAttempt = false;

  constructor(opts: NsqdLinkOptions) {
    const m = /^(.*):(\d{1,5})$/.exec(opts.address);
    const port = Number(m?.[2]);
    if (!m || !m[1] || !(port > 0 && port < 65536)) {
      throw new Error(`nsqd address ${JSON.stringify(opts.address)}: expected "host:port"`);
    }
    if (!(opts.reconnectMinMs > 0 && opts.reconnectMaxMs >= opts.reconnectMinMs)) {
      throw new Error('nsqd link: need 0 < reconnectMinMs <= reconnectMaxMs');
    }
    if (!(opts.publishTimeoutMs > 0)) throw new Error('nsqd link: publishTimeoutMs must be positive');
    this.address = opts.address;
    this.host = m[1].replace(/^\[(.*)\]$/, '$1');
    this.port = port;
    this.log = opts.logger.child({ nsqd: opts.address });
    this.clock = opts.clock;
    this.opts = opts;
  }

  get state(): LinkState {
    return this.stateValue;
  }

  get ready(): boolean {
    return this.stateValue === 'ready';
  }

  get inFlightCount(): number {
    return this.inFlight.length;
  }

  /** `writerClass`: nsqjs's Writer, imported by the caller when NSQ is configured. */
  start(writerClass: typeof Writer): void {
    if (this.stateValue !== 'idle') return;
    this.writerClass = writerClass;
    this.connect();
  }

  /** Closes the connection; publishes still in flight fail (the caller resends or spools them). */
  stop(): void {
    if (this.stateValue === 'stopped') return;
    this.stateValue = 'stopped';
    if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
    if (this.watchdog) this.clock.clearTimeout(this.watchdog);
    this.reconnectTimer = this.watchdog = undefined;
    this.failInFlight(new Error(`nsqd ${this.address}: publisher stopping`));
    this.closeWriter();
  }

  /** Publishes one MPUB (or PUB for a single message); settles exactly once. */
  publish(topic: string, messages: Buffer[]): Promise<void> {
    const writer = this.writer;
    if (this.stateValue !== 'ready' || !writer) return Promise.reject(new LinkDownError(this.address));
    return new Promise<void>((resolve, reject) => {
      const entry: InFlight = {
        startedAtMs: this.clock.now(),
        settled: false,
        reject: (err) => {
          if (entry.settled) return;
          entry.settled = true;
          this.remove(entry);
          reject(err);
        },
      };
      this.inFlight.push(entry);
      this.armWatchdog();
      const done = (err?: Error | null): void => {
        if (entry.settled) return;
        entry.settled = true;
        this.remove(entry);
        if (err) reject(err);
        else resolve();
      };
      try {
        // Only ever called when ready: nsqjs queues a publish made before 'ready' AND sends it
        // at once, which would publish it twice.
        writer.publish(topic, messages, done);
      } catch (err) {
        done(err as Error);
      }
    });
  }

  status(): LinkStatus {
    return {
      address: this.address,
      state: this.stateValue,
      inFlight: this.inFlight.length,
      connects: this.connects,
      disconnects: this.disconnects,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      ...(this.readySinceMs === undefined ? {} : { readySince: new Date(this.readySinceMs).toISOString() }),
    };
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    if (this.stateValue === 'stopped' || !this.writerClass) return;
    this.stateValue = 'connecting';
    this.loggedThisAttempt = false;
    const writer = new this.writerClass(this.host, this.port, { clientId: 'ns-agent', ...this.opts.security?.options });
    this.writer = writer;
    // Every event is checked against the current writer: an old one can still emit after it was
    // replaced, and an 'error' without a listener would crash the process.
    writer.on('error', (err: Error) => this.onError(writer, err));
    writer.on('ready', () => this.onReady(writer));
    writer.on('closed', () => this.onClosed(writer));
    writer.connect();
    this.opts.security?.prepareWriter(writer);
  }

  private onReady(writer: Writer): void {
    if (writer !== this.writer || this.stateValue === 'stopped') return;
    this.stateValue = 'ready';
    this.attempt = 0;
    this.connects++;
    this.readySinceMs = this.clock.now();
    this.log.info('connected to nsqd');
    this.opts.onChange(this);
  }

  private onError(writer: Writer, err: Error): void {
    if (writer !== this.writer) return;
    this.lastError = err.message;
    if (this.stateValue === 'stopped' || this.loggedThisAttempt) return;
    this.loggedThisAttempt = true;
    // Refused connections repeat on every retry while nsqd is down: debug after the first.
    const level = this.attempt > 1 ? 'debug' : 'warn';
    this.log[level]({ error: err.message, attempt: this.attempt }, 'nsqd connection error');
  }

  private onClosed(writer: Writer): void {
    if (writer !== this.writer) return;
    this.writer = undefined;
    const wasReady = this.stateValue === 'ready';
    this.failInFlight(new Error(`nsqd ${this.address}: connection closed`));
    if (this.stateValue === 'stopped') return;
    this.stateValue = 'down';
    this.readySinceMs = undefined;
    if (wasReady) {
      this.disconnects++;
      this.log.warn('nsqd connection closed; reconnecting');
    }
    this.scheduleReconnect();
    if (wasReady) this.opts.onChange(this);
  }

  private scheduleReconnect(): void {
    // Jittered so a fleet does not reconnect in lockstep after an nsqd restart.
    const delayMs = withJitter(backoffMs(this.attempt, this.opts.reconnectMinMs, this.opts.reconnectMaxMs));
    this.attempt++;
    this.reconnectTimer = this.clock.setTimeout(() => this.connect(), delayMs);
  }

  private closeWriter(): void {
    const writer = this.writer;
    this.writer = undefined;
    if (!writer) return;
    try {
      writer.close();
    } catch {
      // nsqjs throws when closing a socket that is not open yet; there is nothing to close then.
    }
  }

  private remove(entry: InFlight): void {
    const i = this.inFlight.indexOf(entry);
    if (i >= 0) this.inFlight.splice(i, 1);
    if (this.inFlight.length === 0 && this.watchdog) {
      this.clock.clearTimeout(this.watchdog);
      this.watchdog = undefined;
    }
  }

  private failInFlight(err: Error): void {
    for (const entry of [...this.inFlight]) entry.reject(err);
  }

  /** One timer for the oldest publish: nsqd answers in order, so it is the one to time out. */
  private armWatchdog(): void {
    if (this.watchdog || this.inFlight.length === 0) return;
    const oldest = this.inFlight[0] as InFlight;
    const wait = Math.max(0, oldest.startedAtMs + this.opts.publishTimeoutMs - this.clock.now());
    this.watchdog = this.clock.setTimeout(() => {
      this.watchdog = undefined;
      const head = this.inFlight[0];
      if (!head) return;
      if (this.clock.now() - head.startedAtMs >= this.opts.publishTimeoutMs) {
        this.lastError = `no answer to a publish for ${this.opts.publishTimeoutMs} ms`;
        this.log.warn({ timeoutMs: this.opts.publishTimeoutMs }, 'nsqd did not answer a publish; reconnecting');
        const writer = this.writer;
        this.failInFlight(new Error(`nsqd ${this.address}: ${this.lastError}`));
        // Closing emits 'closed', which schedules the reconnect.
        if (writer) {
          try {
            writer.close();
          } catch {
            this.onClosed(writer);
          }
        }
        return;
      }
      this.armWatchdog();
    }, wait);
  }
}
