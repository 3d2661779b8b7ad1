// The sender's counters, per backend, the way Open-Falcon's gateway reports them — Recv, Send,
// SendFail, SendDrop (sums and 1/5/15-minute rates) and SendQueueSize — plus bytes sent, for
// status(); and the same as prom-client metrics named nsagent_sender_* on an injected Registry.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import { Meter, type MeterSnapshot } from './meter.ts';

export interface BackendCounterSnapshot {
  /** Points routed to the backend. */
  Recv: MeterSnapshot;
  /** Points the backend accepted. */
  Send: MeterSnapshot;
  /** Points in write attempts that failed in a retryable way (each attempt counts). */
  SendFail: MeterSnapshot;
  /** Points the backend refused as invalid; they went to the dead-letter file. */
  SendDrop: MeterSnapshot;
  /** Points queued or in flight for the backend. */
  SendQueueSize: number;
  /** Bytes of line protocol in requests the backend accepted. */
  SentBytes: MeterSnapshot;
}

export class BackendCounters {
  readonly recv: Meter;
  readonly send: Meter;
  readonly sendFail: Meter;
  readonly sendDrop: Meter;
  readonly sentBytes: Meter;
  queueSize = 0;

  constructor(clock: Clock, private readonly prom: PromChildren | undefined) {
    this.recv = new Meter(clock);
    this.send = new Meter(clock);
    this.sendFail = new Meter(clock);
    this.sendDrop = new Meter(clock);
    this.sentBytes = new Meter(clock);
  }

  received(points: number): void {
    this.recv.mark(points);
    this.prom?.recv.inc(points);
  }

  sent(points: number, bytes: number): void {
    this.send.mark(points);
    this.sentBytes.mark(bytes);
    this.prom?.send.inc(points);
    this.prom?.bytes.inc(bytes);
  }

  failed(points: number): void {
    this.sendFail.mark(points);
    this.prom?.fail.inc(points);
  }

  dropped(points: number): void {
    this.sendDrop.mark(points);
    this.prom?.drop.inc(points);
  }

  request(result: 'ok' | 'invalid' | 'retryable' | 'no_database'): void {
    this.prom?.requests.labels(result).inc();
  }

  queued(delta: number): void {
    this.queueSize += delta;
    this.prom?.queue.set(this.queueSize);
  }

  setUp(up: boolean): void {
    this.prom?.up.set(up ? 1 : 0);
  }

  snapshot(): BackendCounterSnapshot {
    return {
      Recv: this.recv.snapshot(),
      Send: this.send.snapshot(),
      SendFail: this.sendFail.snapshot(),
      SendDrop: this.sendDrop.snapshot(),
      SendQueueSize: this.queueSize,
      SentBytes: this.sentBytes.snapshot(),
    };
  }
}

interface PromChildren {
  recv: { inc(n: number): void };
  send: { inc(n: number): void };
  fail: { inc(n: number): void };
  drop: { inc(n: number): void };
  bytes: { inc(n: number): void };
  queue: { set(n: number): void };
  up: { set(n: number): void };
  requests: { labels(result: string): { inc(): void } };
}

/** Registers the nsagent_sender_* metrics once and hands out per-backend children. */
export class SenderPromMetrics {
  private readonly recv: Counter<'backend'>;
  private readonly send: Counter<'backend'>;
  private readonly fail: Counter<'backend'>;
  private readonly drop: Counter<'backend'>;
  private readonly bytes: Counter<'backend'>;
  private readonly queue: Gauge<'backend'>;
  private readonly up: Gauge<'backend'>;
  private readonly requests: Counter<'backend' | 'result'>;
  readonly refused: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.recv = new Counter({ name: 'nsagent_sender_recv_points_total', help: 'Points routed to the backend (Recv).', labelNames: ['backend'], registers });
    this.send = new Counter({ name: 'nsagent_sender_send_points_total', help: 'Points the backend accepted (Send).', labelNames: ['backend'], registers });
    this.fail = new Counter({
      name: 'nsagent_sender_send_fail_points_total',
      help: 'Points in write attempts that failed in a retryable way (SendFail).',
      labelNames: ['backend'],
      registers,
    });
    this.drop = new Counter({
      name: 'nsagent_sender_send_drop_points_total',
      help: 'Points refused as invalid and dead-lettered (SendDrop).',
      labelNames: ['backend'],
      registers,
    });
    this.bytes = new Counter({ name: 'nsagent_sender_sent_bytes_total', help: 'Bytes of line protocol the backend accepted.', labelNames: ['backend'], registers });
    this.queue = new Gauge({ name: 'nsagent_sender_queue_points', help: 'Points queued or in flight (SendQueueSize).', labelNames: ['backend'], registers });
    this.up = new Gauge({ name: 'nsagent_sender_backend_up', help: '1 while the backend is up, 0 while it is marked down.', labelNames: ['backend'], registers });
    this.requests = new Counter({
      name: 'nsagent_sender_requests_total',
      help: 'Write requests by result: ok, invalid, retryable, no_database.',
      labelNames: ['backend', 'result'],
      registers,
    });
    this.refused = new Counter({
      name: 'nsagent_sender_refused_points_total',
      help: 'Points refused because the queue was full (sender.maxQueuedPoints); the caller retries them.',
      registers,
    });
  }

  forBackend(backend: string): PromChildren {
    const requests = this.requests;
    return {
      recv: this.recv.labels(backend),
      send: this.send.labels(backend),
      fail: this.fail.labels(backend),
      drop: this.drop.labels(backend),
      bytes: this.bytes.labels(backend),
      queue: this.queue.labels(backend),
      up: this.up.labels(backend),
      requests: { labels: (result: string) => requests.labels(backend, result) },
    };
  }
}
