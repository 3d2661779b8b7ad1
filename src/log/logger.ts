// The agent's logger: pino JSON lines into size-rotated files in the log folder (the folder
// /log/offset serves), plus pretty lines on a terminal in the foreground. Built once by the
// composition root and handed down as child loggers; nothing else creates a logger.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pino, { type Logger, type StreamEntry } from 'pino';
import pinoRoll from 'pino-roll';
import type { LogConfig } from '../config/schema.ts';

export type { Logger } from 'pino';

export interface AgentLogger {
  logger: Logger;
  /** Flushes and closes the file stream; idempotent. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  /** Whether the process runs attached to a terminal (pretty output when `pretty` is auto). */
  foreground: boolean;
  /** Base name of the log files, e.g. "agent" → agent.1.log, agent.2.log. */
  name?: string;
}

export async function createLogger(cfg: LogConfig, opts: LoggerOptions): Promise<AgentLogger> {
  mkdirSync(cfg.dir, { recursive: true, mode: 0o700 }); // logs may quote what plugins and callers sent
  const file = await pinoRoll({
    file: path.join(cfg.dir, opts.name ?? 'agent'),
    extension: '.log',
    size: `${Math.max(1, Math.round(cfg.maxFileBytes / 1024))}k`,
    limit: { count: cfg.maxFiles },
    symlink: true,
    mkdir: true,
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
