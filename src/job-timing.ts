// When jobs run. An interval job runs on wall-clock multiples of its interval, shifted by a phase
// that is stable per host and per job, so a fleet spreads its runs over the interval while each
// job keeps its exact period; a clock-time job runs on a cron expression. Pure functions, used
// by the schedulers, the registry pollers (their own phase) and the registry's validation.
import { createHash } from 'node:crypto';
import schedule from 'node-schedule';

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

/** Why an expression (and time zone) cannot be scheduled, or null when it can. */
export function cronProblem(cron: string, timezone?: string): string | null {
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: timezone });
    } catch {
      return `unknown time zone ${JSON.stringify(timezone)} (expected an IANA name such as "Europe/Paris")`;
    }
  }
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `${JSON.stringify(cron)} is not a cron expression (expected 5 fields, "minute hour day month weekday", or 6 with seconds first)`;
  // node-schedule answers false for an expression it cannot parse or that never fires.
  const probe = new schedule.Job(() => undefined);
  const ok = probe.schedule(timezone === undefined ? cron : { rule: cron, tz: timezone });
  probe.cancel();
  return ok ? null : `${JSON.stringify(cron)} is not a valid cron expression or never fires`;
}
