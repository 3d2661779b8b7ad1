// The sender used when no backend is configured: line protocol appended to one file per
// namespace under sender.fileSink.dir, rotated by size (<name>.lp, <name>.lp.1, …). The file
// name is derived from the namespace by the same collision-free mapping as NSQ topics, so no
// namespace can name a path outside the folder. Not fsynced: it is a convenience sink.
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { topicFor } from '../topic-names.ts';
import { LineBlock } from './line-block.ts';
import type { GatewaySender, WriteOutcome } from './types.ts';

export interface FileSinkOptions {
  dir: string;
  /** A file is rotated before it would grow past this. */
  maxFileBytes: number;
  /** Files kept per namespace, the live one included. */
  maxFiles: number;
  logger: Logger;
  /** Files kept open at once; the least recently written is closed beyond (default 64). */
  maxOpenFiles?: number;
}

interface OpenFile {
  fh: FileHandle;
  size: number;
}

interface NamespaceFile {
  base: string;
  open: OpenFile | undefined;
  /** Writes to one file run one at a time, in order. */
  chain: Promise<unknown>;
  /** A write is using the descriptor: it must not be closed to make room. */
  busy: boolean;
}

/** The file name (without ".lp") for a namespace: [.A-Za-z0-9_-], at most 64 characters. */
export function fileBaseFor(namespace: string): string {
  return topicFor(namespace, '');
}

export class FileSink implements GatewaySender {
  private readonly opts: FileSinkOptions;
  private readonly log: Logger;
  private readonly dir: string;
  private readonly maxOpen: number;
  private readonly files = new Map<string, NamespaceFile>();
  private state: 'new' | 'running' | 'stopped' = 'new';
  private stopPromise: Promise<void> | undefined;
  private readonly counts = { linesWritten: 0, bytesWritten: 0, rotations: 0, writeErrors: 0 };

  constructor(opts: FileSinkOptions) {
    if (!opts.dir) throw new Error('FileSink: dir is required (sender.fileSink.dir)');
    if (!(opts.maxFileBytes >= 1024)) throw new Error('FileSink: maxFileBytes must be at least 1024 (sender.fileSink.maxFileBytes)');
    if (!(Number.isInteger(opts.maxFiles) && opts.maxFiles >= 1)) throw new Error('FileSink: maxFiles must be a whole number >= 1 (sender.fileSink.maxFiles)');
    this.opts = opts;
    this.log = opts.logger;
    this.dir = path.resolve(opts.dir);
    this.maxOpen = opts.maxOpenFiles ?? 64;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.state = 'running';
  }

  /** Appends the lines (one per line) to the namespace's file; resolves once written. */
  write(namespace: string, lines: readonly string[] | LineBlock): Promise<WriteOutcome> {
    if (this.state !== 'running') return Promise.reject(new Error('file sink is not running'));
    if (typeof namespace !== 'string' || namespace === '') return Promise.reject(new Error('write: namespace must be a non-empty string'));
    if (lines.length === 0) return Promise.resolve({ written: 0, deadLettered: 0 });
    const file = this.fileFor(namespace);
    const data =
      lines instanceof LineBlock ? Buffer.concat([...lines.body(), Buffer.from('\n')]) : Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    const run = file.chain.then(() => this.append(file, data, lines.length));
    file.chain = run.catch(() => undefined);
    return run;
  }

  status(): Record<string, unknown> {
    return { mode: 'file', dir: this.dir, namespaces: this.files.size, ...this.counts };
  }

  /** Waits for writes in progress and closes the files; idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.state = 'stopped';
      for (const file of this.files.values()) {
        await file.chain;
        await this.closeFile(file);
      }
    })();
    return this.stopPromise;
  }

  private fileFor(namespace: string): NamespaceFile {
    let file = this.files.get(namespace);
    if (file) {
      // Most recently used last, so the first entry is the one to close when over the limit.
      this.files.delete(namespace);
      this.files.set(namespace, file);
      return file;
    }
    const base = path.join(this.dir, `${fileBaseFor(namespace)}.lp`);
    // Belt and braces: the mapping allows no separator, but the folder is the boundary.
    if (path.dirname(base) !== this.dir) throw new Error(`namespace ${JSON.stringify(namespace)} maps outside the file sink folder`);
    file = { base, open: undefined, chain: Promise.resolve(), busy: false };
    this.files.set(namespace, file);
    return file;
  }

  private async append(file: NamespaceFile, data: Buffer, lines: number): Promise<WriteOutcome> {
    file.busy = true;
    try {
      let f = file.open ?? (await this.openFile(file));
      if (f.size > 0 && f.size + data.length > this.opts.maxFileBytes) {
        await this.rotate(file);
        f = await this.openFile(file);
      }
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await f.fh.write(data, done, data.length - done);
        done += bytesWritten;
      }
      f.size += data.length;
      this.counts.linesWritten += lines;
      this.counts.bytesWritten += data.length;
      return { written: lines, deadLettered: 0 };
    } catch (err) {
      this.counts.writeErrors++;
      this.log.error({ err, file: file.base }, 'line-protocol file write failed');
      await this.closeFile(file);
      throw err;
    } finally {
      file.busy = false;
    }
  }

  private async openFile(file: NamespaceFile): Promise<OpenFile> {
    await this.closeIdle();
    const fh = await open(file.base, 'a');
    const size = (await fh.stat()).size;
    file.open = { fh, size };
    return file.open;
  }

  /** <base> → <base>.1 → … → <base>.<maxFiles-1>; the oldest beyond is deleted. */
  private async rotate(file: NamespaceFile): Promise<void> {
    await this.closeFile(file);
    const keep = this.opts.maxFiles;
    const name = (i: number): string => (i === 0 ? file.base : `${file.base}.${i}`);
    await unlink(name(keep - 1)).catch(() => undefined);
    for (let i = keep - 2; i >= 0; i--) {
      await rename(name(i), name(i + 1)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    this.counts.rotations++;
  }

  private async closeFile(file: NamespaceFile): Promise<void> {
    const f = file.open;
    file.open = undefined;
    await f?.fh.close().catch(() => undefined);
  }

  /** Keeps open descriptors bounded: closes the least recently written idle files. */
  private async closeIdle(): Promise<void> {
    let open = 0;
    for (const f of this.files.values()) if (f.open) open++;
    for (const f of this.files.values()) {
      if (open < this.maxOpen) return;
      if (!f.open || f.busy) continue;
      await this.closeFile(f);
      open--;
    }
  }
}
