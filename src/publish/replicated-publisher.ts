// Crash durability by redundancy (nsq.replicas > 1): every batch goes to `replicas` distinct
// nsqd, and publish() resolves only once each replica holds the lines, in its nsqd or in its own
// spool. A SIGKILLed nsqd loses what it had taken off its disk queue but not yet delivered; the
// other replica's copy still arrives, and InfluxDB stores a series + timestamp once, so the
// duplicates cost nothing. Each replica is a whole NsqPublisher over its share of the addresses
// (address i serves replica i mod replicas): it fails over within that share, and while its
// nsqd are down it spools for them and replays there, never to another replica's nsqd.
import path from 'node:path';
import type { Registry } from 'prom-client';
import { systemClock } from '../clock.ts';
import { NsqPublisher, type NsqPublisherOptions } from './nsq-publisher.ts';
import type { LinkStatus } from './nsqd-link.ts';
import { PublishMetrics, type PublishTotals } from './publish-metrics.ts';
import type { Publisher } from './publisher.ts';
import type { SpoolStatus } from './spool.ts';
import { topicFor } from '../topic-names.ts';

export interface ReplicatedPublisherOptions extends NsqPublisherOptions {
  /** Distinct nsqd each batch goes to; at most nsqdTcpAddresses.length. */
  replicas: number;
}

export interface ReplicaStatus {
  replica: number;
  nsqd: LinkStatus[];
  inFlightBatches: number;
  queuedBatches: number;
  openLines: number;
  spool: SpoolStatus;
}

export interface ReplicatedPublisherStatus {
  mode: 'nsq';
  replicas: number;
  topicPrefix: string;
  nsqd: Array<LinkStatus & { replica: number }>;
  inFlightBatches: number;
  queuedBatches: number;
  openLines: number;
  /** All replicas' spools summed (oldestAgeSec: the oldest of them). */
  spool: SpoolStatus;
  /** Shared by the replicas: a line is counted once per copy. */
  counters: PublishTotals;
  replicaStatus: ReplicaStatus[];
  [key: string]: unknown;
}

/** Replica 1 keeps the plain spool folder, so turning replicas on replays what it already holds. */
export function replicaSpoolDir(dir: string, replica: number): string {
  return replica === 1 ? dir : path.join(dir, `replica-${replica}`);
}

export class ReplicatedPublisher implements Publisher {
  readonly maxLineBytes: number;
  private readonly parts: NsqPublisher[];
  private readonly opts: ReplicatedPublisherOptions;

  constructor(opts: ReplicatedPublisherOptions) {
    const { replicas, nsqdTcpAddresses } = opts;
    if (!(Number.isInteger(replicas) && replicas >= 2)) throw new Error('ReplicatedPublisher: replicas must be an integer of at least 2');
    if (replicas > nsqdTcpAddresses.length) {
      throw new Error(`nsq.replicas is ${replicas} but nsq.nsqdTcpAddresses names ${nsqdTcpAddresses.length} nsqd: each replica needs its own`);
    }
    if (new Set(nsqdTcpAddresses).size !== nsqdTcpAddresses.length) throw new Error('nsq.nsqdTcpAddresses names an nsqd twice: replicas must be distinct');
    this.opts = opts;
    let parts: NsqPublisher[] = [];
    const metrics = new PublishMetrics({
      registry: opts.metrics,
      logger: opts.logger,
      clock: opts.clock ?? systemClock,
      // Each replica's own gauge readers, combined as mergeSpoolStatus combines their status.
      gauges: {
        inFlightBatches: () => sum(parts.map((p) => p.gauges.inFlightBatches())),
        queuedBatches: () => sum(parts.map((p) => p.gauges.queuedBatches())),
        spoolBytes: () => sum(parts.map((p) => p.gauges.spoolBytes())),
        spoolOldestAgeSec: () => Math.max(0, ...parts.map((p) => p.gauges.spoolOldestAgeSec())),
        spoolOutageSec: () => smallestOutage(parts.map((p) => p.gauges.spoolOutageSec?.() ?? null)),
        nsqdReady: () => parts.flatMap((p) => p.gauges.nsqdReady()),
      },
    });
    parts = Array.from({ length: replicas }, (_, r) => {
      const replica = r + 1;
      return new NsqPublisher({
        ...opts,
        nsqdTcpAddresses: nsqdTcpAddresses.filter((_a, i) => i % replicas === r),
        spool: { ...opts.spool, dir: replicaSpoolDir(opts.spool.dir, replica) },
        logger: opts.logger.child({ replica }),
        sharedMetrics: metrics,
      });
    });
    this.parts = parts;
    this.maxLineBytes = (parts[0] as NsqPublisher).maxLineBytes;
  }

  async start(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.stop()));
  }

  /** Resolves once every replica acknowledged the lines; rejects with the first refusal otherwise. */
  async publish(namespace: string, lines: readonly string[]): Promise<void> {
    const results = await Promise.allSettled(this.parts.map((p) => p.publish(namespace, lines)));
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  topicFor(namespace: string): string {
    return topicFor(namespace, this.opts.topicPrefix);
  }

  async drained(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.drained()));
  }

  status(): ReplicatedPublisherStatus {
    const each = this.parts.map((p) => p.status());
    const spools = each.map((s) => s.spool);
    const replicaStatus = each.map((s, i) => ({
      replica: i + 1,
      nsqd: s.nsqd,
      inFlightBatches: s.inFlightBatches,
      queuedBatches: s.queuedBatches,
      openLines: s.openLines,
      spool: s.spool,
    }));
    return {
      mode: 'nsq',
      replicas: this.parts.length,
      topicPrefix: this.opts.topicPrefix,
      nsqd: each.flatMap((s, i) => s.nsqd.map((l) => ({ ...l, replica: i + 1 }))),
      inFlightBatches: sum(each.map((s) => s.inFlightBatches)),
      queuedBatches: sum(each.map((s) => s.queuedBatches)),
      openLines: sum(each.map((s) => s.openLines)),
      spool: mergeSpoolStatus(this.opts.spool.dir, spools),
      counters: (this.parts[0] as NsqPublisher).status().counters,
      replicaStatus,
    };
  }
}

/** The NSQ publisher the config asks for: one nsqd per batch, or `replicas` of them. */
export function createNsqPublisher(opts: NsqPublisherOptions & { replicas?: number; metrics: Registry }): Publisher {
  const replicas = opts.replicas ?? 1;
  return replicas > 1 ? new ReplicatedPublisher({ ...opts, replicas }) : new NsqPublisher(opts);
}

/**
 * Sums the spools' figures; durations and ages (…Sec, …Ms) take the largest, except the outage
 * the spools can hold: that ends when the first of them is full, so it is the smallest.
 */
export function mergeSpoolStatus(dir: string, spools: SpoolStatus[]): SpoolStatus {
  const merged: Record<string, unknown> = { ...spools[0], dir };
  for (const [key, value] of Object.entries(spools[0] ?? {})) {
    if (typeof value !== 'number') continue;
    const values = spools.map((s) => Number((s as unknown as Record<string, unknown>)[key]) || 0);
    merged[key] = /(Sec|Ms)$/.test(key) ? Math.max(...values) : sum(values);
  }
  if ('outageSec' in merged) merged.outageSec = smallestOutage(spools.map((s) => s.outageSec));
  return merged as unknown as SpoolStatus;
}

/** The first spool to fill ends the outage the replicas can hold; null when none has a figure yet. */
function smallestOutage(outages: Array<number | null | undefined>): number | null {
  const known = outages.filter((v): v is number => typeof v === 'number');
  return known.length > 0 ? Math.min(...known) : null;
}

function sum(xs: number[]): number {
  let n = 0;
  for (const x of xs) n += x;
  return n;
}
