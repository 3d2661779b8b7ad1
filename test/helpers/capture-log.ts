// A pino logger that keeps its records in memory, so tests can assert what was logged (and how
// often: "once per burst").
import pino, { type Logger } from 'pino';

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export function captureLogger(): { logger: Logger; records: LogRecord[]; count(msg: string | RegExp): number } {
  const records: LogRecord[] = [];
  const logger = pino({ level: 'trace' }, { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) });
  const count = (msg: string | RegExp) => records.filter((r) => (typeof msg === 'string' ? r.msg === msg : msg.test(r.msg))).length;
  return { logger, records, count };
}
