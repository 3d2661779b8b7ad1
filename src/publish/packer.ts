// Packs lines into NSQ messages and messages into MPUB batches, per namespace: a message is the
// "# ns=" header plus as many lines as fit in maxMessageBytes, a batch as many messages as fit
// in maxMpubBytes. A batch is sealed when full or when its linger timer fires. No I/O: sealed
// batches go to a callback. Callers are tracked per batch so each learns when its lines settle.
import type { Clock, TimerHandle } from '../clock.ts';
import { DroppedError } from './publisher.ts';
import { messageHeader } from './envelope.ts';
import { isValidTopic, topicFor } from '../topic-names.ts';

/** Room kept for the "# ns=<namespace>\n" header when telling callers the longest line. */
export const MAX_HEADER_BYTES = 1024;
/** MPUB body framing: a u32 message count, then a u32 length before each message. */
const MPUB_COUNT_BYTES = 4;
const MPUB_LENGTH_BYTES = 4;

/** One publish() call: settles when every batch holding its lines has settled. */
export class Ticket {
  readonly promise: Promise<void>;
  private parts = 0;
  private settled = 0;
  private dropped = 0;
  private dropReason = '';
  private adding = true;
  private resolve!: () => void;
  private reject!: (err: Error) => void;

  constructor(readonly lines: number) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  attach(): void {
    this.parts++;
  }

  /** Lines refused before they reached a batch (too long). */
  drop(lines: number, reason: string): void {
    this.dropped += lines;
    this.dropReason ||= reason;
  }

  /** One batch holding `lines` of ours settled; `dropped` of them were refused by a bound. */
  settle(dropped: number, reason = ''): void {
    this.settled++;
    if (dropped > 0) this.drop(dropped, reason);
    this.check();
  }

  /** Every line was handed to a batch (or dropped): the ticket may settle now. */
  doneAdding(): void {
    this.adding = false;
    this.check();
  }

  private check(): void {
    if (this.adding || this.settled < this.parts) return;
    if (this.dropped === 0) this.resolve();
    else this.reject(new DroppedError(`${this.dropped} of ${this.lines} lines dropped: ${this.dropReason}`, this.dropped));
  }
}

/** An MPUB's worth of messages for one topic, and the callers whose lines are in it. */
export class Batch {
  readonly messages: Buffer[] = [];
  lines = 0;
  /** MPUB body bytes so far. */
  bytes = MPUB_COUNT_BYTES;
  attempts = 0;
  readonly tickets: Ticket[] = [];
  /** Lines of tickets[i] in this batch. */
  readonly ticketLines: number[] = [];

  constructor(
    readonly namespace: string,
    readonly topic: string,
    readonly createdAtMs: number,
  ) {}

  /** Settles every caller; `dropped` says the whole batch was refused by a bound. */
  settle(dropped: boolean, reason = ''): void {
    for (let i = 0; i < this.tickets.length; i++) {
      (this.tickets[i] as Ticket).settle(dropped ? (this.ticketLines[i] as number) : 0, reason);
    }
  }
}

export interface PackerOptions {
  topicPrefix: string;
  maxMessageBytes: number;
  maxMpubBytes: number;
  lingerMs: number;
  clock: Clock;
  onSealed: (batch: Batch) => void;
  /** A line longer than a message can hold; it is not sent. */
  onOversize: (namespace: string, lineBytes: number) => void;
}

interface OpenBatch {
  batch: Batch;
  header: string;
  headerBytes: number;
  /**
   * The message being filled, UTF-8 encoded as lines arrive (measuring, joining and encoding
   * separately costs 3-5x more); it grows by 4x up to the message size, so lone points stay small.
   */
  buf: Buffer;
  /** Bytes used in buf; headerBytes when the message holds no line yet. */
  used: number;
  timer: TimerHandle | undefined;
  /** Sealed (or discarded) already: a second seal must not hand the batch over twice. */
  done: boolean;
}

interface NamespaceInfo {
  topic: string;
  header: string;
  headerBytes: number;
}

const NAMESPACE_CACHE_MAX = 10_000;
const INITIAL_MESSAGE_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);
const NEWLINE = 10;

export class Packer {
  private readonly opts: PackerOptions;
  private readonly maxMessage: number;
  private readonly maxHeader: number;
  private readonly open = new Map<string, OpenBatch>();
  private readonly names = new Map<string, NamespaceInfo>();
  private pendingLines = 0;

  constructor(opts: PackerOptions) {
    if (!(opts.maxMessageBytes >= 1024)) throw new Error('packer: maxMessageBytes must be at least 1024');
    if (!(opts.lingerMs >= 0)) throw new Error('packer: lingerMs must be >= 0');
    if (!isValidTopic(topicFor('x', opts.topicPrefix))) throw new Error(`packer: topic prefix ${JSON.stringify(opts.topicPrefix)} is not usable in NSQ topic names`);
    // One full message must fit an MPUB with its framing.
    this.maxMessage = Math.min(opts.maxMessageBytes, opts.maxMpubBytes - MPUB_COUNT_BYTES - MPUB_LENGTH_BYTES);
    if (this.maxMessage < 1024) throw new Error('packer: maxMpubBytes must be at least 1032 bytes');
    // Headers may take a quarter of a small message at most; longer namespaces are refused.
    this.maxHeader = Math.min(MAX_HEADER_BYTES, Math.floor(this.maxMessage / 4));
    this.opts = opts;
  }

  /** The longest line any namespace can send. */
  get maxLineBytes(): number {
    return this.maxMessage - this.maxHeader;
  }

  /** Lines waiting in open (unsealed) batches. */
  get openLines(): number {
    return this.pendingLines;
  }

  get openBatches(): number {
    return this.open.size;
  }

  /** Topic and header for a namespace; throws for one too long to carry in a header. */
  info(namespace: string): NamespaceInfo {
    let info = this.names.get(namespace);
    if (info) return info;
    const header = messageHeader(namespace);
    const headerBytes = Buffer.byteLength(header);
    if (headerBytes > this.maxHeader) throw new Error(`namespace is too long (${headerBytes} bytes encoded; at most ${this.maxHeader})`);
    info = { topic: topicFor(namespace, this.opts.topicPrefix), header, headerBytes };
    if (this.names.size >= NAMESPACE_CACHE_MAX) this.names.clear();
    this.names.set(namespace, info);
    return info;
  }

  /**
   * Adds lines[from…] to the namespace's open batch, stopping right after a batch is sealed so
   * the caller can apply backpressure. Returns the index of the first line not added.
   */
  add(namespace: string, lines: readonly string[], from: number, ticket: Ticket): number {
    const ob = this.open.get(namespace) ?? this.openBatch(namespace);
    const maxMessage = this.maxMessage;
    let i = from;
    while (i < lines.length) {
      // Fast path: the run of lines whose characters fit the room left goes in with one join,
      // one byte count and one write (a character is at least one byte, so the run can only
      // be too long when it holds multi-byte text; then the line-by-line path takes over).
      const sep = ob.used > ob.headerBytes ? 1 : 0;
      const room = maxMessage - ob.used - sep;
      let j = i;
      let chars = -1;
      while (j < lines.length && chars + 1 + (lines[j] as string).length <= room) chars += 1 + (lines[j++] as string).length;
      if (j - i >= 2) {
        const text = i === 0 && j === lines.length ? lines.join('\n') : lines.slice(i, j).join('\n');
        const bytes = Buffer.byteLength(text);
        if (bytes <= room) {
          if (ob.used + sep + bytes > ob.buf.length) this.grow(ob, ob.used + sep + bytes);
          if (sep === 1) ob.buf[ob.used++] = NEWLINE;
          ob.used += ob.buf.write(text, ob.used);
          this.counted(namespace, ob, ticket, j - i);
          i = j;
          continue;
        }
      }
      const line = lines[i] as string;
      // A UTF-16 unit is at most 3 UTF-8 bytes: when that fits, no measuring is needed.
      if (ob.used + sep + line.length * 3 > ob.buf.length) {
        const bytes = Buffer.byteLength(line);
        if (ob.headerBytes + bytes > maxMessage) {
          ticket.drop(1, 'a line is longer than nsq.maxMessageBytes allows');
          this.opts.onOversize(namespace, bytes);
          i++;
          continue;
        }
        if (sep === 1 && ob.used + 1 + bytes > maxMessage) {
          if (this.closeMessage(ob)) {
            this.seal(namespace, ob);
            // The line goes to a fresh batch: hand control back first.
            return i;
          }
          this.startMessage(ob, bytes);
        } else if (ob.used + sep + bytes > ob.buf.length) {
          this.grow(ob, ob.used + sep + bytes);
        }
      }
      if (ob.used > ob.headerBytes) ob.buf[ob.used++] = NEWLINE;
      ob.used += ob.buf.write(line, ob.used);
      this.counted(namespace, ob, ticket, 1);
      i++;
    }
    // A namespace whose every line was dropped leaves no empty batch behind.
    if (ob.batch.lines === 0) this.discard(namespace, ob);
    return lines.length;
  }

  /** Books `n` lines of the ticket's into the open batch, and starts its linger timer. */
  private counted(namespace: string, ob: OpenBatch, ticket: Ticket, n: number): void {
    const batch = ob.batch;
    const last = batch.tickets.length - 1;
    if (batch.tickets[last] === ticket) {
      batch.ticketLines[last] = (batch.ticketLines[last] as number) + n;
    } else {
      batch.tickets.push(ticket);
      batch.ticketLines.push(n);
      ticket.attach();
    }
    batch.lines += n;
    this.pendingLines += n;
    if (ob.timer === undefined) {
      ob.timer = this.opts.clock.setTimeout(() => this.lingerExpired(namespace, ob), this.opts.lingerMs);
    }
  }

  /** Seals every open batch (stop, or an early flush while nsqd is idle). */
  sealAll(): void {
    for (const [namespace, ob] of [...this.open]) {
      if (ob.done) continue;
      this.closeMessage(ob);
      this.seal(namespace, ob);
    }
  }

  private openBatch(namespace: string): OpenBatch {
    const info = this.info(namespace);
    const ob: OpenBatch = {
      batch: new Batch(namespace, info.topic, this.opts.clock.now()),
      header: info.header,
      headerBytes: info.headerBytes,
      buf: Buffer.alloc(0),
      used: 0,
      timer: undefined,
      done: false,
    };
    this.startMessage(ob, 0);
    this.open.set(namespace, ob);
    return ob;
  }

  /** A fresh message buffer holding the header, with room for at least `lineBytes` more. */
  private startMessage(ob: OpenBatch, lineBytes: number): void {
    const size = Math.min(this.maxMessage, Math.max(INITIAL_MESSAGE_BYTES, ob.headerBytes + lineBytes));
    ob.buf = Buffer.allocUnsafe(size);
    ob.used = ob.buf.write(ob.header, 0);
  }

  private grow(ob: OpenBatch, atLeast: number): void {
    let size = Math.max(ob.buf.length, INITIAL_MESSAGE_BYTES);
    while (size < atLeast) size *= 4;
    const next = Buffer.allocUnsafe(Math.min(this.maxMessage, size));
    ob.buf.copy(next, 0, 0, ob.used);
    ob.buf = next;
  }

  /** Moves the message being filled into the batch; true when the batch has no room for another. */
  private closeMessage(ob: OpenBatch): boolean {
    if (ob.used > ob.headerBytes) {
      // A mostly empty buffer is copied out, so a lone point does not pin a large allocation.
      const msg = ob.buf.length - ob.used > 4096 ? Buffer.from(ob.buf.subarray(0, ob.used)) : ob.buf.subarray(0, ob.used);
      ob.batch.messages.push(msg);
      ob.batch.bytes += MPUB_LENGTH_BYTES + msg.length;
      ob.buf = EMPTY;
      ob.used = 0;
    }
    return ob.batch.bytes + MPUB_LENGTH_BYTES + this.maxMessage > this.opts.maxMpubBytes;
  }

  private seal(namespace: string, ob: OpenBatch): void {
    if (ob.done) return;
    this.discard(namespace, ob);
    if (ob.batch.messages.length === 0) return;
    this.pendingLines -= ob.batch.lines;
    this.opts.onSealed(ob.batch);
  }

  private discard(namespace: string, ob: OpenBatch): void {
    ob.done = true;
    if (ob.timer !== undefined) this.opts.clock.clearTimeout(ob.timer);
    ob.timer = undefined;
    if (this.open.get(namespace) === ob) this.open.delete(namespace);
  }

  private lingerExpired(namespace: string, ob: OpenBatch): void {
    ob.timer = undefined;
    if (this.open.get(namespace) !== ob) return;
    this.closeMessage(ob);
    this.seal(namespace, ob);
  }
}
