// The MetricSink every producer hands metrics to: normalise (src/points/normalise.ts), refuse
// what cannot be sent, publish the rest to the namespace, and count all of it. It holds no
// state but counters; durability and batching are the publisher's job.
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { DroppedError, type Publisher } from '../publish/publisher.ts';
import type { MetricSink, PushOptions, PushResult } from './metric.ts';
import { runRangeInSlices } from '../slices.ts';
import { emptyBatch, type Normaliser, type NormalisedBatch, type RejectCode } from './normalise.ts';
import { LineProtocolStamper, type StampedLp } from './lp-fast.ts';
import type { LpPrecision } from './parse-lp.ts';

export interface PipelineOptions {
  normaliser: Normaliser;
  publisher: Publisher;
  /** prom-client registry the counters are registered on (names prefixed `nsagent_points_`). */
  metrics: Registry;
  logger: Logger;
  /** Lines longer than this many UTF-8 bytes are refused per metric; default: the publisher's limit. */
  maxLineBytes?: number;
  /**
   * A batch is normalised in slices of this many milliseconds, the event loop turning between
   * them, so a huge push never stalls timers and other requests; default 4.
   */
  sliceMs?: number;
}

export interface PipelineStatus {
  pointsIn: number;
  accepted: number;
  rejected: Partial<Record<RejectCode, number>>;
  /** Given timestamps (0, negative, not seconds) replaced by now; missing ones are not counted. */
  timestampsReplaced: number;
  /** Accepted points a publisher bound refused afterwards (spool full, …). */
  dropped: number;
}

export class Pipeline implements MetricSink {
  private readonly normaliser: Normaliser;
  private readonly publisher: Publisher;
  private readonly log: Logger;
  private readonly maxLineBytes: number;
  private readonly sliceMs: number;
  private readonly counters: {
    in: Counter;
    accepted: Counter;
    rejected: Counter<'reason'>;
    timestampsReplaced: Counter;
    dropped: Counter;
  };
  private readonly totals: PipelineStatus = { pointsIn: 0, accepted: 0, rejected: {}, timestampsReplaced: 0, dropped: 0 };

  constructor(opts: PipelineOptions) {
    this.normaliser = opts.normaliser;
    this.publisher = opts.publisher;
    this.log = opts.logger;
    this.maxLineBytes = opts.maxLineBytes ?? opts.publisher.maxLineBytes ?? Number.POSITIVE_INFINITY;
    if (!(this.maxLineBytes > 0)) throw new Error('Pipeline: maxLineBytes must be positive');
    this.sliceMs = opts.sliceMs ?? 4;
    const registers = [opts.metrics];
    this.counters = {
      in: new Counter({ name: 'nsagent_points_in_total', help: 'Metrics handed to the pipeline.', registers }),
      accepted: new Counter({
        name: 'nsagent_points_accepted_total',
        help: 'Metrics normalised into a line and handed to the publisher.',
        registers,
      }),
      rejected: new Counter({
        name: 'nsagent_points_rejected_total',
        help: 'Metrics refused by normalisation, by reason.',
        labelNames: ['reason'],
        registers,
      }),
      timestampsReplaced: new Counter({
        name: 'nsagent_points_timestamp_replaced_total',
        help: 'Given timestamps that were 0, negative or not seconds and were replaced by now.',
        registers,
      }),
      dropped: new Counter({
        name: 'nsagent_points_dropped_total',
        help: 'Accepted points that a publisher bound refused (see nsagent_publish_dropped_lines_total).',
        registers,
      }),
    };
  }

  async push(namespace: string, metrics: readonly unknown[], opts: PushOptions = {}): Promise<PushResult> {
    checkNamespace(namespace);
    if (!Array.isArray(metrics)) throw new Error('push: metrics must be an array');
    const batch = await this.normaliseInSlices(metrics, opts);
    return this.publishBatch(namespace, metrics.length, batch, opts);
  }

  /**
   * A line-protocol body read straight into normalised lines (src/points/lp-fast.ts), to be
   * stepped by the caller and handed to pushStamped(): POST /post's way in for text/plain.
   */
  stampLineProtocol(text: string, opts: { precision: LpPrecision; maxListedRejections?: number }): LineProtocolStamper {
    return new LineProtocolStamper(text, {
      normaliser: this.normaliser,
      maxLineBytes: this.maxLineBytes,
      precision: opts.precision,
      maxListedRejections: opts.maxListedRejections ?? Number.POSITIVE_INFINITY,
      nowSec: this.normaliser.nowSec(),
    });
  }

  /** Counts and publishes a stamped body as push() does a normalised batch; `index` is a body line. */
  async pushStamped(namespace: string, stamped: StampedLp, opts: PushOptions = {}): Promise<PushResult> {
    checkNamespace(namespace);
    return this.publishBatch(namespace, stamped.pointsIn, stamped.batch, opts);
  }

  private async publishBatch(namespace: string, pointsIn: number, batch: NormalisedBatch, opts: PushOptions): Promise<PushResult> {
    this.count(pointsIn, batch);
    if (batch.rejectedCount > 0) {
      this.log.debug(
        { namespace, plugin: opts.plugin, rejected: batch.rejectedCount, first: batch.rejected[0]?.reason },
        'metrics refused',
      );
    }
    const result: PushResult = {
      accepted: batch.lines.length,
      rejected: batch.rejected.map(({ index, reason }) => ({ index, reason })),
      rejectedCount: batch.rejectedCount,
    };
    if (opts.returnLines) result.lines = batch.lines;
    if (batch.lines.length > 0) {
      // Nothing here refers to the lines after the call: they die young instead of surviving in
      // this frame until the acknowledgement (the agent's main source of GC work otherwise).
      const published = this.publisher.publish(namespace, batch.lines);
      batch.lines = [];
      try {
        await published;
      } catch (err) {
        if (err instanceof DroppedError) {
          this.counters.dropped.inc(err.lines);
          this.totals.dropped += err.lines;
        }
        throw err;
      }
    }
    return result;
  }

  status(): PipelineStatus {
    return { ...this.totals, rejected: { ...this.totals.rejected } };
  }

  private async normaliseInSlices(metrics: readonly unknown[], opts: PushOptions): Promise<NormalisedBatch> {
    const batch = emptyBatch();
    const sliceOpts = { plugin: opts.plugin, maxLineBytes: this.maxLineBytes, maxListedRejections: opts.maxListedRejections };
    const nowSec = this.normaliser.nowSec();
    await runRangeInSlices(metrics.length, (from, to) => this.normaliser.normaliseSlice(metrics, from, to, batch, sliceOpts, nowSec), { sliceMs: this.sliceMs });
    return batch;
  }

  private count(pointsIn: number, batch: NormalisedBatch): void {
    this.counters.in.inc(pointsIn);
    this.totals.pointsIn += pointsIn;
    if (batch.lines.length > 0) this.counters.accepted.inc(batch.lines.length);
    this.totals.accepted += batch.lines.length;
    if (batch.timestampsReplaced > 0) this.counters.timestampsReplaced.inc(batch.timestampsReplaced);
    this.totals.timestampsReplaced += batch.timestampsReplaced;
    for (const [code, n] of Object.entries(batch.rejectedByCode) as Array<[RejectCode, number]>) {
      this.counters.rejected.inc({ reason: code }, n);
      this.totals.rejected[code] = (this.totals.rejected[code] ?? 0) + n;
    }
  }
}

function checkNamespace(namespace: string): void {
  if (typeof namespace !== 'string' || namespace === '') throw new Error('push: namespace must be a non-empty string');
}
