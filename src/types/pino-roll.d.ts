// pino-roll ships no types; this covers the part the logger uses.
declare module 'pino-roll' {
  import type { Writable } from 'node:stream';
  interface PinoRollOptions {
    file: string | (() => string);
    size?: string | number;
    frequency?: string | number;
    extension?: string;
    symlink?: boolean;
    mkdir?: boolean;
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    /** Passed to SonicBoom: unwritten bytes beyond this are dropped ('drop' event). */
    maxLength?: number;
  }
  type RollStream = Writable & { flush?(): void };
  export default function pinoRoll(opts: PinoRollOptions): Promise<RollStream>;
}
