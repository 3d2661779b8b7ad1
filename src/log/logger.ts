// The agent's logger: pino JSON lines into size-rotated files in the log folder (the folder
// /log/offset serves), plus pretty lines on a terminal in the foreground. Built once by the
// composition root and handed down as child loggers; nothing else creates a logger.
// A log folder that cannot be written (disk full, removed) never stops the agent: failed
// writes are counted, lines beyond a bounded buffer are dropped (counted), and writing resumes
// by itself with the next line once the disk takes data again.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pino, { type Logger, type StreamEntry } from 'pino';
import pinoRoll from 'pino-roll';
import type { LogConfig } from '../config/schema.ts';

export type { Logger } from 'pino';

export interface LogStatus {
  dir: string;
  /** False from a failed write until a write succeeds again. */
  writable: boolean;
  /** Writes to the log file that failed (ENOSPC, EIO, ...). */
  writeFailures: number;
  /** Lines dropped because the unwritten buffer was at maxBufferedBytes. */
  droppedLines: number;
  /** The last write error, e.g. "ENOSPC: no space left on device, write"; null once writes succeed. */
  lastError: string | null;
}

export interface AgentLogger {
  logger: Logger;
  /** Whether the log file is being written, and what failed. */
  status(): LogStatus;
  /** Flushes and closes the file stream; idempotent. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  /** Whether the process runs attached to a terminal (pretty output when `pretty` is auto). */
  foreground: boolean;
  /** Base name of the log files, e.g. "agent" → agent.1.log, agent.2.log. */
  name?: string;
  /** Log output held in memory while the file cannot be written; lines beyond are dropped. */
  maxBufferedBytes?: number;
}

const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

export async function createLogger(cfg: LogConfig, opts: LoggerOptions): Promise<AgentLogger> {
  mkdirSync(cfg.dir, { recursive: true, mode: 0o700 }); // logs may quote what plugins and callers sent
  const file = await pinoRoll({
    file: path.join(cfg.dir, opts.name ?? 'agent'),
    extension: '.log',
    size: `${Math.max(1, Math.round(cfg.maxFileBytes / 1024))}k`,
    limit: { count: cfg.maxFiles },
    symlink: true,
    mkdir: true,
    maxLength: opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
  });
  const state: LogStatus = { dir: cfg.dir, writable: true, writeFailures: 0, droppedLines: 0, lastError: null };
  // SonicBoom emits 'error' on a failed write (and pino-roll on a failed roll); unheard, that
  // event kills the process. It keeps the unwritten bytes and tries again with the next line.
  file.on('error', (err: Error) => {
    state.writeFailures++;
    state.writable = false;
    state.lastError = err.message;
  });
  file.on('write', () => {
    if (state.writable) return;
    state.writable = true;
    state.lastError = null;
  });
  file.on('drop', () => {
    state.droppedLines++;
  });
  const streams: StreamEntry[] = [{ level: 'trace', stream: file }];
  const wantPretty = cfg.pretty === 'always' || (cfg.pretty === 'auto' && opts.foreground && process.stdout.isTTY);
  if (wantPretty) {
    // Loaded only for a terminal: a service never needs it.
    const { default: pretty } = await import('pino-pretty');
    streams.push({ level: 'trace', stream: pretty({ colorize: true, sync: true }) });
  }
  const logger = pino(
    { level: cfg.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream(streams),
  );
  let closed: Promise<void> | undefined;
  return {
    logger,
    status: () => ({ ...state }),
    close() {
      closed ??= new Promise<void>((resolve) => {
        file.flush?.();
        file.once('close', () => resolve());
        file.once('error', () => resolve());
        file.end();
      });
      return closed;
    },
  };
}

/** A logger that writes nowhere, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
