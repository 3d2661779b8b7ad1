// The durable on-disk spool for batches no nsqd accepted: append-only segment files with
// group-committed fdatasync, read back in order, deleted once every record in them was acked.
// Bounded by bytes (appends beyond are refused) and by age (old records are dropped, counted).
// It knows nothing of NSQ: records are a namespace, its packed messages and a line count.
//
// Layout: <dir>/<16-digit seq>.seg, and <dir>/cursor ({"segment","offset"}: everything before
// it is acked). Record: u32 bodyLength, u32 crc32(body), body = f64 createdAtMs, u32 lines,
// u16 namespaceBytes, namespace, u32 messageCount, then per message u32 length + bytes.
import { mkdir, open, readdir, readFile, rename, stat, statfs, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';

export interface SpoolOptions {
  dir: string;
  /** Unacked bytes on disk; an append beyond is refused ("full") and counted by the caller. */
  maxBytes: number;
  /** Records older than this are dropped instead of replayed. */
  maxAgeSec: number;
  /** Appends within this window share one fdatasync. */
  commitIntervalMs: number;
  /** A segment is closed and a new one started beyond this size. */
  segmentBytes: number;
  /** Time constant of the offered-bytes rate behind outageSec; default 60 s. */
  rateWindowSec?: number;
  logger: Logger;
  clock: Clock;
}

export interface SpoolRecord {
  namespace: string;
  messages: readonly Buffer[];
  lines: number;
  createdAtMs: number;
}

/** A record read back, with its place so it can be acked. */
export interface SpoolEntry extends SpoolRecord {
  readonly segment: number;
  readonly offset: number;
  readonly end: number;
}

export type AppendResult = 'committed' | 'full';

export interface SpoolStatus {
  dir: string;
  /** Unacked bytes on disk (whole segments, less the acked head). */
  bytes: number;
  maxBytes: number;
  segments: number;
  /** Age of the oldest segment still holding unacked records; 0 when empty. */
  oldestAgeSec: number;
  appendedRecords: number;
  appendedLines: number;
  refusedLines: number;
  expiredLines: number;
  corruptSegments: number;
  /** Appends that failed on a write or fdatasync error (disk full, I/O error): lines not stored. */
  failedAppends: number;
  failedLines: number;
  /** Room left: maxBytes less what is held, or the file system's free space if that is less. */
  freeBytes: number;
  /**
   * Bytes per second offered to the publisher (packed batches, whether nsqd or the spool took
   * them): an exponentially decayed average over rateWindowSec.
   */
  offeredBytesPerSec: number;
  /** freeBytes ÷ offeredBytesPerSec: how long an nsqd outage starting now could be spooled; null with no traffic. */
  outageSec: number | null;
}

interface Segment {
  seq: number;
  file: string;
  /** Bytes written (appends complete). */
  size: number;
  /** Bytes known durable; readers stop here on the active segment. */
  committed: number;
  firstAtMs: number;
  lastAtMs: number;
}

interface Outstanding {
  segment: number;
  end: number;
  acked: boolean;
}

interface CommitWaiter {
  resolve(): void;
  reject(err: Error): void;
  end: number;
}

const HEADER_BYTES = 8;
const MIN_BODY_BYTES = 8 + 4 + 2 + 4;
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const SEGMENT_RE = /^(\d{16})\.seg$/;
/** The file system's free space is asked for at most this often (status is read per scrape). */
const STATFS_INTERVAL_MS = 1000;

export function encodeRecord(rec: SpoolRecord): Buffer[] {
  const ns = Buffer.from(rec.namespace, 'utf8');
  if (ns.length > 0xffff) throw new Error('spool: namespace longer than 65535 bytes');
  const head = Buffer.allocUnsafe(HEADER_BYTES + 8 + 4 + 2 + ns.length + 4);
  let o = HEADER_BYTES;
  o = head.writeDoubleLE(rec.createdAtMs, o);
  o = head.writeUInt32LE(rec.lines, o);
  o = head.writeUInt16LE(ns.length, o);
  o += ns.copy(head, o);
  head.writeUInt32LE(rec.messages.length, o);
  const parts: Buffer[] = [head];
  const lengths = Buffer.allocUnsafe(4 * rec.messages.length);
  let bodyBytes = head.length - HEADER_BYTES;
  rec.messages.forEach((m, i) => {
    lengths.writeUInt32LE(m.length, 4 * i);
    parts.push(lengths.subarray(4 * i, 4 * i + 4), m);
    bodyBytes += 4 + m.length;
  });
  let crc = crc32(head.subarray(HEADER_BYTES));
  for (let i = 1; i < parts.length; i++) crc = crc32(parts[i] as Buffer, crc);
  head.writeUInt32LE(bodyBytes, 0);
  head.writeUInt32LE(crc, 4);
  return parts;
}

/** Parses a record body (after the 8-byte header); throws on anything inconsistent. */
export function decodeBody(body: Buffer): SpoolRecord {
  let o = 0;
  const need = (n: number): void => {
    if (o + n > body.length) throw new Error('record body is truncated');
  };
  need(14);
  const createdAtMs = body.readDoubleLE(o);
  o += 8;
  const lines = body.readUInt32LE(o);
  o += 4;
  const nsLen = body.readUInt16LE(o);
  o += 2;
  need(nsLen + 4);
  const namespace = body.toString('utf8', o, o + nsLen);
  o += nsLen;
  const count = body.readUInt32LE(o);
  o += 4;
  const messages: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    need(4);
    const len = body.readUInt32LE(o);
    o += 4;
    need(len);
    messages.push(body.subarray(o, o + len));
    o += len;
  }
  if (o !== body.length) throw new Error('record body has trailing bytes');
  return { namespace, messages, lines, createdAtMs };
}

export class Spool {
  private readonly opts: SpoolOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private segments: Segment[] = [];
  private active: { seg: Segment; fh: FileHandle; failed: boolean } | undefined;
  private nextSeq = 1;
  /** Everything before this is acked. */
  private cursor = { segment: 0, offset: 0 };
  /** Next record to read. */
  private readPos = { segment: 0, offset: 0 };
  private reader: { seq: number; fh: FileHandle } | undefined;
  private reading = false;
  private readonly outstanding: Outstanding[] = [];
  private writeChain: Promise<void> = Promise.resolve();
  /** Bytes of appends queued but not yet written, so the cap holds under concurrency. */
  private reservedBytes = 0;
  private waiters: CommitWaiter[] = [];
  private commitTimer: TimerHandle | undefined;
  private committing: Promise<void> | undefined;
  private cursorWrite: Promise<void> | undefined;
  private cursorDirty = false;
  private opened = false;
  /** Set when close() begins: appends are refused from then on. */
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private closed = false;
  private readonly counts = { appendedRecords: 0, appendedLines: 0, refusedLines: 0, expiredLines: 0, corruptSegments: 0, failedAppends: 0, failedLines: 0 };
  private readonly rateWindowMs: number;
  /** Decayed offered-bytes rate as of rateAtMs (see noteOffered). */
  private rate = 0;
  private rateAtMs = 0;
  private fsFree: { bytes: number; atMs: number; asking: boolean } = { bytes: Number.POSITIVE_INFINITY, atMs: Number.NEGATIVE_INFINITY, asking: false };

  constructor(opts: SpoolOptions) {
    if (!opts.dir) throw new Error('spool: dir is required (nsq.spool.dir)');
    if (!(opts.maxBytes > 0)) throw new Error('spool: maxBytes must be positive (nsq.spool.maxBytes)');
    if (!(opts.maxAgeSec > 0)) throw new Error('spool: maxAgeSec must be positive (nsq.spool.maxAgeSec)');
    if (!(opts.commitIntervalMs >= 0)) throw new Error('spool: commitIntervalMs must be >= 0 (nsq.spool.commitIntervalMs)');
    if (!(opts.segmentBytes > 0)) throw new Error('spool: segmentBytes must be positive (nsq.spool.segmentBytes)');
    if (opts.rateWindowSec !== undefined && !(opts.rateWindowSec > 0)) throw new Error('spool: rateWindowSec must be positive');
    this.opts = opts;
    this.log = opts.logger;
    this.clock = opts.clock;
    this.rateWindowMs = (opts.rateWindowSec ?? 60) * 1000;
  }

  /**
   * Counts bytes offered to the publisher, spooled or not, for outageSec. The rate decays
   * exponentially with time constant rateWindowSec: r ← r·e^(−Δt/τ) + bytes/τ, so a steady
   * flow of B bytes/s reads B, and a stopped one fades out over a few windows.
   */
  noteOffered(bytes: number): void {
    this.rate = this.rateNow() + bytes / (this.rateWindowMs / 1000);
    this.rateAtMs = this.clock.now();
  }

  private rateNow(): number {
    const dt = Math.max(0, this.clock.now() - this.rateAtMs);
    return this.rate * Math.exp(-dt / this.rateWindowMs);
  }

  /** The file system's free bytes, refreshed in the background (status() is synchronous). */
  private fsFreeBytes(): number {
    const now = this.clock.now();
    if (this.opened && !this.fsFree.asking && now - this.fsFree.atMs >= STATFS_INTERVAL_MS) {
      this.fsFree.asking = true;
      statfs(this.opts.dir)
        .then((st) => {
          this.fsFree.bytes = Number(st.bavail) * Number(st.bsize);
        })
        .catch(() => {
          // Unknown: the byte cap alone bounds the figure.
          this.fsFree.bytes = Number.POSITIVE_INFINITY;
        })
        .finally(() => {
          this.fsFree.atMs = this.clock.now();
          this.fsFree.asking = false;
        });
    }
    return this.fsFree.bytes;
  }

  /** Finds the segments a previous run left, and where its replay had got to. */
  async open(): Promise<void> {
    if (this.opened) return;
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const names = (await readdir(this.opts.dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    this.cursor = await this.readCursor();
    for (const name of names) {
      const seq = Number(name.slice(0, 16));
      const file = path.join(this.opts.dir, name);
      if (seq < this.cursor.segment) {
        await unlink(file).catch(() => undefined);
        continue;
      }
      const st = await stat(file);
      const firstAtMs = (await this.firstRecordTime(file)) ?? st.mtimeMs;
      this.segments.push({ seq, file, size: st.size, committed: st.size, firstAtMs, lastAtMs: st.mtimeMs });
    }
    const first = this.segments[0];
    if (first && first.seq !== this.cursor.segment) this.cursor = { segment: first.seq, offset: 0 };
    this.readPos = { ...this.cursor };
    this.nextSeq = Math.max(this.cursor.segment, ...this.segments.map((s) => s.seq)) + 1;
    this.opened = true;
    this.dropIfDelivered();
    if (this.segments.length > 0) {
      this.log.info({ dir: this.opts.dir, bytes: this.bytes(), segments: this.segments.length }, 'spool holds batches from an earlier run');
    }
  }

  /** Durably appends a record; resolves "full" (nothing written) when the byte cap refuses it. */
  append(rec: SpoolRecord): Promise<AppendResult> {
    if (!this.opened || this.closing) return Promise.reject(new Error('spool is not open'));
    const parts = encodeRecord(rec);
    let size = 0;
    for (const p of parts) size += p.length;
    if (this.bytes() + this.reservedBytes + size > this.opts.maxBytes) {
      this.counts.refusedLines += rec.lines;
      return Promise.resolve('full');
    }
    this.reservedBytes += size;
    return new Promise<AppendResult>((resolve, reject) => {
      this.enqueue(async () => {
        const failed = (err: Error): void => {
          this.counts.failedAppends++;
          this.counts.failedLines += rec.lines;
          reject(err);
        };
        try {
          await this.write(parts, size, rec, { resolve: () => resolve('committed'), reject: failed, end: 0 });
        } catch (err) {
          failed(err as Error);
        } finally {
          this.reservedBytes -= size;
        }
      });
    });
  }

  /** True when no unacked record is on disk or being written. */
  isEmpty(): boolean {
    return this.bytes() === 0 && this.reservedBytes === 0;
  }

  /** True when there may be a committed record not yet handed out by readNext(). */
  hasUnread(): boolean {
    for (const seg of this.segments) {
      if (seg.seq < this.readPos.segment) continue;
      const limit = this.active?.seg === seg ? seg.committed : seg.size;
      if (seg.seq > this.readPos.segment ? limit > 0 : this.readPos.offset < limit) return true;
    }
    return false;
  }

  /**
   * The next committed record in append order, or undefined when there is none yet. Records past
   * maxAgeSec are dropped (counted) on the way; an unreadable tail of a segment (a record torn
   * by a crash) is skipped and counted. One call at a time.
   */
  async readNext(): Promise<SpoolEntry | undefined> {
    if (this.reading) throw new Error('spool: readNext() is already running');
    if (!this.opened || this.closed) return undefined;
    this.reading = true;
    try {
      for (;;) {
        const seg = this.segments.find((s) => s.seq >= this.readPos.segment);
        if (!seg) return undefined;
        if (seg.seq !== this.readPos.segment) this.readPos = { segment: seg.seq, offset: 0 };
        const isActive = this.active?.seg === seg;
        const limit = isActive ? seg.committed : seg.size;
        const offset = this.readPos.offset;
        if (offset >= limit) {
          if (isActive) return undefined;
          this.readPos = { segment: seg.seq + 1, offset: 0 };
          continue;
        }
        const entry = await this.readAt(seg, offset, limit);
        if (this.closed) return undefined;
        if (entry === undefined) {
          // Corrupt or torn: skip the rest of the segment, acked so it is deleted.
          this.counts.corruptSegments++;
          this.outstanding.push({ segment: seg.seq, end: limit, acked: true });
          this.readPos = isActive ? { segment: seg.seq, offset: limit } : { segment: seg.seq + 1, offset: 0 };
          if (isActive && this.active) this.active.failed = true;
          this.advance();
          continue;
        }
        this.readPos = { segment: seg.seq, offset: entry.end };
        const mark: Outstanding = { segment: seg.seq, end: entry.end, acked: false };
        this.outstanding.push(mark);
        if (entry.createdAtMs < this.clock.now() - this.opts.maxAgeSec * 1000) {
          this.counts.expiredLines += entry.lines;
          mark.acked = true;
          this.advance();
          continue;
        }
        return entry;
      }
    } finally {
      this.reading = false;
    }
  }

  /** Marks a record as delivered; segments wholly delivered are deleted. */
  ack(entry: SpoolEntry): void {
    const mark = this.outstanding.find((o) => o.segment === entry.segment && o.end === entry.end);
    if (!mark) return;
    mark.acked = true;
    this.advance();
  }

  /**
   * Drops whole segments older than maxAgeSec while nsqd is away, so the age bound frees disk
   * even when nothing is replayed. Returns the lines dropped. Only when nothing is outstanding.
   */
  async expireOld(): Promise<number> {
    if (!this.opened || this.closed || this.outstanding.length > 0 || this.reading) return 0;
    const horizon = this.clock.now() - this.opts.maxAgeSec * 1000;
    let dropped = 0;
    await this.enqueueAndWait(async () => {
      if (this.active && this.active.seg.lastAtMs < horizon) await this.roll();
      while (this.outstanding.length === 0 && !this.reading) {
        const seg = this.segments[0];
        if (!seg || seg === this.active?.seg || seg.lastAtMs >= horizon) break;
        const from = this.cursor.segment === seg.seq ? this.cursor.offset : 0;
        const lines = await this.countLines(seg, from);
        dropped += lines;
        this.counts.expiredLines += lines;
        this.segments.shift();
        await unlink(seg.file).catch(() => undefined);
        this.cursor = { segment: seg.seq + 1, offset: 0 };
        if (this.readPos.segment <= seg.seq) this.readPos = { ...this.cursor };
        this.writeCursor();
      }
    });
    if (dropped > 0) this.log.warn({ lines: dropped, maxAgeSec: this.opts.maxAgeSec }, 'spooled batches expired unsent');
    return dropped;
  }

  bytes(): number {
    let total = 0;
    for (const seg of this.segments) total += seg.size;
    const head = this.segments[0];
    if (head && head.seq === this.cursor.segment) total -= Math.min(head.size, this.cursor.offset);
    return total;
  }

  status(): SpoolStatus {
    const head = this.segments.find((s) => s.size > (s.seq === this.cursor.segment ? this.cursor.offset : 0));
    const freeBytes = Math.max(0, Math.min(this.opts.maxBytes - this.bytes() - this.reservedBytes, this.fsFreeBytes()));
    const rate = this.rateNow();
    // Below a byte a minute is no traffic: the quotient would only say "forever".
    const offeredBytesPerSec = rate < 1 / 60 ? 0 : Math.round(rate * 10) / 10;
    return {
      dir: this.opts.dir,
      bytes: this.bytes(),
      maxBytes: this.opts.maxBytes,
      segments: this.segments.length,
      oldestAgeSec: head ? Math.max(0, Math.round((this.clock.now() - head.firstAtMs) / 1000)) : 0,
      ...this.counts,
      freeBytes,
      offeredBytesPerSec,
      outageSec: offeredBytesPerSec > 0 ? Math.round(freeBytes / rate) : null,
    };
  }

  /** Commits what was written, saves the cursor and closes; idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    await this.writeChain;
    await this.commitNow();
    this.closed = true;
    if (this.commitTimer) this.clock.clearTimeout(this.commitTimer);
    const active = this.active;
    this.active = undefined;
    if (active) {
      await active.fh.close().catch(() => undefined);
      if (active.seg.committed === 0) await this.discardEmpty(active.seg);
    }
    await this.reader?.fh.close().catch(() => undefined);
    this.reader = undefined;
    await this.cursorWrite;
    if (this.cursorDirty) await this.saveCursor();
  }

  // --- writing ---------------------------------------------------------------------------

  private enqueue(step: () => Promise<void>): void {
    this.writeChain = this.writeChain.then(step, step);
  }

  private enqueueAndWait(step: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => this.enqueue(() => step().then(resolve, reject)));
  }

  private async write(parts: Buffer[], size: number, rec: SpoolRecord, waiter: CommitWaiter): Promise<void> {
    if (this.active && (this.active.failed || (this.active.seg.size > 0 && this.active.seg.size + size > this.opts.segmentBytes))) {
      await this.roll();
    }
    if (!this.active) await this.startSegment(rec.createdAtMs);
    const active = this.active as NonNullable<Spool['active']>;
    const seg = active.seg;
    try {
      let written = 0;
      while (written < size) {
        // writev may write less than asked (signals, full disks): continue where it stopped.
        const rest = written === 0 ? parts : sliceParts(parts, written);
        const { bytesWritten } = await active.fh.writev(rest, seg.size + written);
        if (bytesWritten === 0) throw new Error('spool: write made no progress');
        written += bytesWritten;
      }
    } catch (err) {
      // A partly written record would hide every later one from readers: start a new segment.
      active.failed = true;
      this.log.error({ err, file: seg.file }, 'spool write failed');
      // A segment holding nothing is not kept (a full disk would leave one per failed append).
      if (seg.size === 0 && this.waiters.length === 0) await this.roll();
      throw err;
    }
    seg.size += size;
    seg.lastAtMs = this.clock.now();
    this.counts.appendedRecords++;
    this.counts.appendedLines += rec.lines;
    waiter.end = seg.size;
    this.waiters.push(waiter);
    this.scheduleCommit();
  }

  private async startSegment(firstAtMs: number): Promise<void> {
    const seq = this.nextSeq++;
    const file = path.join(this.opts.dir, `${String(seq).padStart(16, '0')}.seg`);
    const fh = await open(file, 'wx');
    // The new directory entry must survive a crash too, or the fsynced data has no name.
    await syncDir(this.opts.dir);
    const now = this.clock.now();
    const seg: Segment = { seq, file, size: 0, committed: 0, firstAtMs: Math.min(firstAtMs, now), lastAtMs: now };
    this.segments.push(seg);
    this.active = { seg, fh, failed: false };
  }

  /** Commits and closes the active segment; the next append starts a new one. */
  private async roll(): Promise<void> {
    const active = this.active;
    if (!active) return;
    await this.commitNow();
    this.active = undefined;
    await active.fh.close().catch(() => undefined);
    // A torn tail is not readable: the segment ends where the last whole record ended.
    if (active.failed) active.seg.size = active.seg.committed;
    if (active.seg.size === 0) await this.discardEmpty(active.seg);
    this.dropIfDelivered();
  }

  /** Removes a closed segment that holds no record: nothing to read, ack or keep. */
  private async discardEmpty(seg: Segment): Promise<void> {
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    if (this.reader?.seq === seg.seq) {
      const fh = this.reader.fh;
      this.reader = undefined;
      await fh.close().catch(() => undefined);
    }
    await unlink(seg.file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') this.log.warn({ err, file: seg.file }, 'cannot delete an empty spool segment');
    });
  }

  private scheduleCommit(): void {
    if (this.commitTimer || this.committing || this.waiters.length === 0) return;
    this.commitTimer = this.clock.setTimeout(() => {
      this.commitTimer = undefined;
      void this.commitNow();
    }, this.opts.commitIntervalMs);
  }

  /** One fdatasync for every append written so far; later appends wait for the next one. */
  private async commitNow(): Promise<void> {
    while (this.committing) await this.committing;
    if (this.commitTimer) {
      this.clock.clearTimeout(this.commitTimer);
      this.commitTimer = undefined;
    }
    const waiters = this.waiters;
    if (waiters.length === 0 || !this.active) return;
    this.waiters = [];
    const active = this.active;
    this.committing = (async () => {
      try {
        await active.fh.datasync();
        let end = active.seg.committed;
        for (const w of waiters) end = Math.max(end, w.end);
        active.seg.committed = end;
        for (const w of waiters) w.resolve();
      } catch (err) {
        active.failed = true;
        this.log.error({ err, file: active.seg.file }, 'spool fdatasync failed');
        for (const w of waiters) w.reject(err as Error);
      }
    })();
    try {
      await this.committing;
    } finally {
      this.committing = undefined;
      this.scheduleCommit();
    }
  }

  // --- reading and acking ----------------------------------------------------------------

  private async readAt(seg: Segment, offset: number, limit: number): Promise<SpoolEntry | undefined> {
    const fh = await this.readHandle(seg);
    if (limit - offset < HEADER_BYTES) return this.corrupt(seg, offset, 'a record header is cut short');
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    await readFully(fh, header, offset);
    const bodyLen = header.readUInt32LE(0);
    const crc = header.readUInt32LE(4);
    if (bodyLen < MIN_BODY_BYTES || bodyLen > MAX_BODY_BYTES || offset + HEADER_BYTES + bodyLen > limit) {
      return this.corrupt(seg, offset, 'a record length runs past the end');
    }
    const body = Buffer.allocUnsafe(bodyLen);
    await readFully(fh, body, offset + HEADER_BYTES);
    if (crc32(body) !== crc) return this.corrupt(seg, offset, 'a record checksum does not match');
    let rec: SpoolRecord;
    try {
      rec = decodeBody(body);
    } catch (err) {
      return this.corrupt(seg, offset, (err as Error).message);
    }
    return { ...rec, segment: seg.seq, offset, end: offset + HEADER_BYTES + bodyLen };
  }

  private corrupt(seg: Segment, offset: number, why: string): undefined {
    this.log.warn({ file: seg.file, offset, why }, 'spool segment unreadable from here (torn by a crash?); skipping its rest');
    return undefined;
  }

  private async readHandle(seg: Segment): Promise<FileHandle> {
    if (this.reader?.seq === seg.seq) return this.reader.fh;
    await this.reader?.fh.close().catch(() => undefined);
    this.reader = undefined;
    const fh = await open(seg.file, 'r');
    this.reader = { seq: seg.seq, fh };
    return fh;
  }

  /** Moves the cursor over the acked prefix and deletes segments left wholly behind it. */
  private advance(): void {
    let moved = false;
    while (this.outstanding[0]?.acked) {
      const o = this.outstanding.shift() as Outstanding;
      this.cursor = { segment: o.segment, offset: o.end };
      moved = true;
    }
    if (!moved) return;
    this.dropIfDelivered();
    this.writeCursor();
  }

  private dropIfDelivered(): void {
    for (;;) {
      const head = this.segments[0];
      if (!head || head.seq > this.cursor.segment) return;
      const done = head.seq < this.cursor.segment || this.cursor.offset >= head.size;
      if (!done) return;
      if (head === this.active?.seg) {
        // The active segment is wholly delivered: roll it (inside the write chain, so no append
        // is lost between the check and the delete) and delete it there.
        if (this.waiters.length === 0) this.enqueue(async () => this.retireActiveIfDelivered());
        return;
      }
      this.segments.shift();
      if (this.reader?.seq === head.seq) {
        const fh = this.reader.fh;
        this.reader = undefined;
        void fh.close().catch(() => undefined);
      }
      void unlink(head.file).catch((err: Error) => this.log.warn({ err, file: head.file }, 'cannot delete a delivered spool segment'));
    }
  }

  private async retireActiveIfDelivered(): Promise<void> {
    const active = this.active;
    if (!active || this.closed) return;
    const seg = active.seg;
    if (this.cursor.segment !== seg.seq || this.cursor.offset < seg.size || this.waiters.length > 0) return;
    await this.roll();
  }

  private writeCursor(): void {
    this.cursorDirty = true;
    if (this.cursorWrite || this.closed) return;
    this.cursorWrite = (async () => {
      while (this.cursorDirty) {
        this.cursorDirty = false;
        await this.saveCursor();
      }
    })().finally(() => {
      this.cursorWrite = undefined;
    });
  }

  /** Not fsynced: a lost cursor only means some delivered records are sent again (duplicates). */
  private async saveCursor(): Promise<void> {
    const file = path.join(this.opts.dir, 'cursor');
    try {
      await writeFile(`${file}.tmp`, JSON.stringify(this.cursor));
      await rename(`${file}.tmp`, file);
    } catch (err) {
      this.log.warn({ err }, 'cannot save the spool cursor; delivered batches may be sent again after a restart');
    }
  }

  private async readCursor(): Promise<{ segment: number; offset: number }> {
    try {
      const c = JSON.parse(await readFile(path.join(this.opts.dir, 'cursor'), 'utf8')) as { segment?: unknown; offset?: unknown };
      if (Number.isSafeInteger(c.segment) && Number.isSafeInteger(c.offset)) {
        return { segment: c.segment as number, offset: c.offset as number };
      }
    } catch {
      // No cursor (fresh spool) or an unreadable one: replay from the first segment.
    }
    return { segment: 0, offset: 0 };
  }

  private async firstRecordTime(file: string): Promise<number | undefined> {
    const fh = await open(file, 'r');
    try {
      const b = Buffer.alloc(HEADER_BYTES + 8);
      const { bytesRead } = await fh.read(b, 0, b.length, 0);
      if (bytesRead < b.length) return undefined;
      const t = b.readDoubleLE(HEADER_BYTES);
      return Number.isFinite(t) ? t : undefined;
    } finally {
      await fh.close();
    }
  }

  /** Lines in a segment from `from` on, for counting what expiry drops. */
  private async countLines(seg: Segment, from: number): Promise<number> {
    const data = await readFile(seg.file).catch(() => Buffer.alloc(0));
    let lines = 0;
    let o = from;
    while (o + HEADER_BYTES + MIN_BODY_BYTES <= data.length) {
      const len = data.readUInt32LE(o);
      if (len < MIN_BODY_BYTES || o + HEADER_BYTES + len > data.length) break;
      lines += data.readUInt32LE(o + HEADER_BYTES + 8);
      o += HEADER_BYTES + len;
    }
    return lines;
  }
}

function sliceParts(parts: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (skip >= p.length) {
      skip -= p.length;
      continue;
    }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error('spool: unexpected end of file');
    done += bytesRead;
  }
}

async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the data itself is still synced.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
