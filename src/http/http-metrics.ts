// The API's own self-metrics, registered in the agent's prom-client Registry: requests and
// latency by route and status, points ingested by outcome, refusals by bound. Route labels
// are the route patterns (or "unmatched"), so a scan of random URLs cannot blow up cardinality.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type IngestOutcome = 'accepted' | 'rejected' | 'unacknowledged';

export type RefusalReason =
  | 'body_too_large'
  | 'auth_missing'
  | 'auth_malformed'
  | 'auth_wrong'
  | 'unknown_namespace'
  | 'log_outside_dirs'
  | 'log_read_capped'
  | 'foreign_origin'
  | 'cross_site'
  | 'foreign_host'
  | 'too_many_points'
  | 'parse_budget';

export class HttpMetrics {
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly duration: Histogram<'route'>;
  readonly inFlight: Gauge;
  readonly ingested: Counter<'route' | 'outcome'>;
  readonly refused: Counter<'reason'>;
  /** The same refusals as `refused`, for /me/status. */
  private readonly refusedTotals: Partial<Record<RefusalReason, number>> = {};

  constructor(registry: Registry) {
    // A registry refuses a second metric of the same name: reuse it when an API is built twice
    // on one registry (tests, a reload that rebuilds the app).
    const reuse = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
    this.requests = reuse(
      'nsagent_http_requests_total',
      () =>
        new Counter({
          name: 'nsagent_http_requests_total',
          help: 'HTTP API requests answered, by route pattern, method and status.',
          labelNames: ['route', 'method', 'status'] as const,
          registers: [registry],
        }),
    );
    this.duration = reuse(
      'nsagent_http_request_duration_seconds',
      () =>
        new Histogram({
          name: 'nsagent_http_request_duration_seconds',
          help: 'HTTP API request latency, by route pattern.',
          labelNames: ['route'] as const,
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          registers: [registry],
        }),
    );
    this.inFlight = reuse(
      'nsagent_http_requests_in_flight',
      () =>
        new Gauge({
          name: 'nsagent_http_requests_in_flight',
          help: 'HTTP API requests being answered now (plugin runs and /update can take a while).',
          registers: [registry],
        }),
    );
    this.ingested = reuse(
      'nsagent_http_ingest_points_total',
      () =>
        new Counter({
          name: 'nsagent_http_ingest_points_total',
          help: 'Points received by /post and /api/push: accepted (acknowledged), rejected (invalid, reported to the caller), unacknowledged (publisher refused: 503).',
          labelNames: ['route', 'outcome'] as const,
          registers: [registry],
        }),
    );
    this.refused = reuse(
      'nsagent_http_refused_total',
      () =>
        new Counter({
          name: 'nsagent_http_refused_total',
          help: 'Requests refused by a bound or a guard of the HTTP API, by reason.',
          labelNames: ['reason'] as const,
          registers: [registry],
        }),
    );
  }

  /** Counts one refusal, in /metrics and in /me/status. */
  refuse(reason: RefusalReason): void {
    this.refused.inc({ reason });
    this.refusedTotals[reason] = (this.refusedTotals[reason] ?? 0) + 1;
  }

  refusedByReason(): Partial<Record<RefusalReason, number>> {
    return { ...this.refusedTotals };
  }
}
