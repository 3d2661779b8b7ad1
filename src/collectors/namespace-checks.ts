// One namespace's port and process checks as one collector, so the scheduler runs a single
// job per namespace and a registry change of the checks swaps the list without touching the
// job (its phase, its run in progress, and the process checks' restart state all survive).
import type { Clock } from '../clock.ts';
import type { NamespaceChecks } from '../registry/types.ts';
import { HostFs } from './hostfs.ts';
import { PortChecker } from './port-check.ts';
import { ProcessChecker } from './process-check.ts';
import type { Accumulator, Collector } from './types.ts';

export interface NamespaceChecksOptions {
  hostRoot: string;
  connectTimeoutMs: number;
  checks: NamespaceChecks;
  clock?: Clock;
}

export class NamespaceChecksCollector implements Collector {
  readonly name = 'checks';
  private checks: NamespaceChecks;
  private readonly ports: PortChecker;
  private readonly processes: ProcessChecker;

  constructor(opts: NamespaceChecksOptions) {
    const hostFs = new HostFs({ root: opts.hostRoot });
    this.checks = opts.checks;
    this.ports = new PortChecker({ hostFs, connectTimeoutMs: opts.connectTimeoutMs, ...(opts.clock ? { clock: opts.clock } : {}) });
    this.processes = new ProcessChecker({ hostFs });
  }

  setChecks(checks: NamespaceChecks): void {
    this.checks = checks;
  }

  isEmpty(): boolean {
    return this.checks.ports.length === 0 && this.checks.processes.length === 0;
  }

  async collect(acc: Accumulator): Promise<void> {
    const { ports, processes } = this.checks;
    // One after the other: the points come out in a stable order, and a run is short anyway
    // (the connects of the port checks run concurrently among themselves).
    await this.ports.check(ports, acc);
    await this.processes.check(processes, acc);
  }
}
