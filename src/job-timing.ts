// Where a periodic job's runs fall: on wall-clock multiples of its interval, shifted by a phase
// that is stable per host and per job, so a fleet spreads its runs over the interval while each
// job keeps its exact period. Pure functions; the scheduler and the registry pollers use them.
import { createHash } from 'node:crypto';

/** Phase in [0, intervalMs): a hash of hostname and job identity, the same on every restart. */
export function jobPhaseMs(hostname: string, jobId: string, intervalMs: number): number {
  if (!(Number.isInteger(intervalMs) && intervalMs >= 1)) {
    throw new RangeError(`intervalMs must be an integer >= 1, found ${intervalMs}`);
  }
  const digest = createHash('sha256').update(hostname, 'utf8').update('\0').update(jobId, 'utf8').digest();
  // 48 bits are exact in a double and far wider than any interval, so the modulo is uniform.
  return digest.readUIntBE(0, 6) % intervalMs;
}

/** The first run time strictly after `afterMs` on the grid `phaseMs + k * intervalMs`. */
export function nextAlignedRun(afterMs: number, intervalMs: number, phaseMs: number): number {
  return (Math.floor((afterMs - phaseMs) / intervalMs) + 1) * intervalMs + phaseMs;
}
