// Reads lines of a log file from a byte offset, for /log/offset: only files inside the allowed
// folders (symlinks resolved on both sides, and the opened descriptor checked again, so a path
// swapped under it cannot lead outside), never more than the byte and line caps, and only
// complete lines, so a caller that follows `nextOffset` never sees half a line.
import { constants } from 'node:fs';
import { lstat, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

export interface LogReaderOptions {
  /** Folders whose files may be read; the first also anchors relative paths. */
  dirs: readonly string[];
  /** At most this many bytes are read per call. */
  maxReadBytes: number;
  /** At most this many lines are returned per call. */
  maxReadLines: number;
}

export interface LogChunk {
  /** The file actually read (symlinks resolved). */
  file: string;
  offset: number;
  /** Where the next call should start: just after the last line returned. */
  nextOffset: number;
  lines: string[];
  /** No complete line follows `nextOffset` (what remains, if anything, is still being written). */
  eof: boolean;
  /** File size when read; smaller than `offset` means it was truncated or rotated. */
  size: number;
  /** A line longer than maxReadBytes was returned cut at the cap; the rest follows next call. */
  truncatedLine: boolean;
}

export type LogReadErrorKind = 'outside' | 'missing' | 'invalid';

export class LogReadError extends Error {
  constructor(
    readonly kind: LogReadErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'LogReadError';
  }
}

const NL = 10;

export class LogReader {
  constructor(private readonly opts: LogReaderOptions) {
    if (opts.dirs.length === 0) throw new Error('LogReader needs at least one folder');
    for (const d of opts.dirs) {
      if (!path.isAbsolute(d)) throw new Error(`LogReader folders must be absolute paths, got "${d}"`);
    }
    if (!(opts.maxReadBytes >= 1) || !(opts.maxReadLines >= 1)) throw new Error('LogReader caps must be at least 1');
  }

  get maxReadLines(): number {
    return this.opts.maxReadLines;
  }

  async read(fpath: string, offset: number, lines: number): Promise<LogChunk> {
    if (fpath === '' || fpath.includes('\0')) throw new LogReadError('invalid', 'fpath must be a non-empty file path');
    const wanted = path.resolve(this.opts.dirs[0] as string, fpath);
    // Folders are resolved per call: the log folder may be created or re-linked after start.
    const dirs = await this.realDirs();
    let real: string;
    try {
      real = await realpath(wanted);
    } catch (err) {
      // Say "missing" only inside the folders, so the route cannot probe the rest of the disk.
      const inside = isInside(wanted, [...dirs, ...this.opts.dirs.map((d) => path.resolve(d))]);
      if (!inside) throw outside(fpath);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new LogReadError('missing', `no file ${JSON.stringify(fpath)} in the log folders`);
      throw new LogReadError('invalid', `cannot resolve ${JSON.stringify(fpath)}: ${code ?? (err as Error).message}`);
    }
    if (!isInside(real, dirs)) throw outside(fpath);
    // Checked early so a FIFO or a device is not even opened in the ordinary case.
    let st;
    try {
      st = await stat(real);
    } catch (err) {
      throw cannotOpen(err, fpath);
    }
    if (!st.isFile()) throw notRegular(fpath);
    // Another user who can write in a log folder can swap a folder on the way to `real` for a
    // symlink between the check above and the open (O_NOFOLLOW guards only the last component).
    // So the descriptor itself is checked below, before a byte is read. O_NONBLOCK: a FIFO
    // swapped in meanwhile must not block the open; O_NOCTTY: a terminal must not become ours.
    let fh;
    try {
      fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch (err) {
      throw cannotOpen(err, fpath);
    }
    try {
      const fst = await fh.stat();
      if (!fst.isFile()) throw notRegular(fpath);
      const opened = await openedPath(fh.fd, fpath);
      if (!isInside(opened, dirs)) throw outside(fpath);
      if (fst.dev !== st.dev || fst.ino !== st.ino) {
        throw new LogReadError('invalid', `${JSON.stringify(fpath)} was replaced while it was opened; ask again`);
      }
      const size = fst.size;
      const chunk: LogChunk = { file: opened, offset, nextOffset: offset, lines: [], eof: true, size, truncatedLine: false };
      if (offset >= size) return chunk;
      const want = Math.min(this.opts.maxReadBytes, size - offset);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, offset);
      const max = Math.min(lines, this.opts.maxReadLines);
      let pos = 0;
      while (chunk.lines.length < max) {
        const nl = buf.indexOf(NL, pos);
        if (nl === -1 || nl >= bytesRead) break;
        chunk.lines.push(buf.toString('utf8', pos, nl));
        pos = nl + 1;
      }
      const readToEnd = offset + bytesRead >= size;
      if (chunk.lines.length === 0 && bytesRead === this.opts.maxReadBytes && !readToEnd) {
        // One line longer than the cap: hand it out cut rather than stall the caller forever.
        chunk.lines.push(buf.toString('utf8', 0, bytesRead));
        chunk.truncatedLine = true;
        pos = bytesRead;
      }
      chunk.nextOffset = offset + pos;
      const moreLinesInBuffer = buf.subarray(pos, bytesRead).includes(NL);
      chunk.eof = !moreLinesInBuffer && readToEnd;
      return chunk;
    } finally {
      await fh.close();
    }
  }

  private async realDirs(): Promise<string[]> {
    const out: string[] = [];
    for (const d of this.opts.dirs) {
      try {
        out.push(await realpath(d));
      } catch {
        // A configured folder that does not exist (yet) allows nothing.
      }
    }
    return out;
  }
}

function outside(fpath: string): LogReadError {
  return new LogReadError(
    'outside',
    `${JSON.stringify(fpath)} is outside the log folders; only files under log.dir and http.logDirs can be read`,
  );
}

function notRegular(fpath: string): LogReadError {
  return new LogReadError('invalid', `${JSON.stringify(fpath)} is not a regular file; only regular log files can be read`);
}

function cannotOpen(err: unknown, fpath: string): LogReadError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new LogReadError('missing', `no file ${JSON.stringify(fpath)} in the log folders`);
  // The resolved path became a symlink since it was checked.
  if (code === 'ELOOP') return outside(fpath);
  return new LogReadError('invalid', `cannot open ${JSON.stringify(fpath)}: ${code ?? (err as Error).message}`);
}

/** Where an open descriptor really leads: the kernel's answer, not the path that was asked for. */
async function openedPath(fd: number, fpath: string): Promise<string> {
  const link = `/proc/self/fd/${fd}`;
  try {
    return await realpath(link);
  } catch (err) {
    const procMounted = await lstat(link).then(() => true, () => false);
    // Deleted since it was opened (rotated away): gone for the caller too.
    if (procMounted) throw new LogReadError('missing', `no file ${JSON.stringify(fpath)} in the log folders`);
    throw new LogReadError('invalid', `cannot check what ${JSON.stringify(fpath)} opened: /proc is needed to read logs safely (${(err as Error).message})`);
  }
}

function isInside(file: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => {
    const prefix = d.endsWith(path.sep) ? d : d + path.sep;
    return file.startsWith(prefix);
  });
}
