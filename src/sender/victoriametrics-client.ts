// One VictoriaMetrics backend (storage kind "victoriametrics"): writes a namespace's line
// protocol to /write with the namespace as the `db` label, probes /health, classifies answers.
// VictoriaMetrics has no databases to create and names no refused line the queue could use, so
// this client has neither optional ability: the queue finds refused lines by writing halves.
//
// VictoriaMetrics single-node (checked on v1.151.0, source and server):
//   /write, /api/v2/write:  the same handler; `db` (and only `db`: no bucket, org or rp) becomes
//                   the label `db` of every series of the body, unless a line has a tag `db` of
//                   its own, which wins (-influxDBLabel renames the label). precision=s honoured.
//   series names:   <measurement>_<field> (-influxMeasurementFieldSeparator), tags as labels.
//                   Values are float64: integers and unsigned become floats, true/false 1/0, and
//                   a string field is parsed as a number best-effort: "abc" is stored as 0.
//   accepted:       204, empty body.
//   bad lines:      by default the whole body is parsed first ("batch mode"): one unparsable
//                   line refuses the whole body with 400, text/plain
//                   `cannot process influx line protocol data: incorrect influx line "<the rest
//                   of the body, from the bad line on, %q-quoted>": <why>; see …` and nothing is
//                   written. With the header Stream-Mode: 1 (never sent here) or the server flag
//                   -influx.forceStreamMode, bad lines are skipped and only logged, and the
//                   answer is 204: those lines are lost without a dead letter.
//   other 400s:     a bad gzip body, a body over -influx.maxRequestSize (64 MiB).
//   503:            storage read-only (disk below -storage.minFreeDiskSpaceBytes), too many
//                   concurrent inserts for -insert.maxQueueDuration. No Retry-After is sent;
//                   a proxy's (vmauth) is honoured.
//   auth:           -httpAuth.username/password is HTTP Basic; vmauth in front takes bearer
//                   tokens. 401 is answered when they are wrong.
//   a point twice:  stored twice unless -dedup.minScrapeInterval is set.
import type { VictoriaMetricsBackendConfig } from '../config/schema.ts';
import { BackendHttp, basicAuth } from './backend-http.ts';
import type { BackendWriter, BackendWriterOptions, WriteAnswer } from './backend-writer.ts';

export interface VictoriaMetricsClientOptions extends BackendWriterOptions {
  backend: VictoriaMetricsBackendConfig;
}

export class VictoriaMetricsClient implements BackendWriter {
  readonly name: string;
  private readonly http: BackendHttp;

  constructor(opts: VictoriaMetricsClientOptions) {
    const { backend } = opts;
    this.name = backend.name;
    this.http = new BackendHttp({ ...opts, auth: authHeaders(backend) });
  }

  /** The namespace goes whole into the `db` label: label values take any text. */
  writePath(namespace: string): string {
    return `/write?${new URLSearchParams({ db: namespace, precision: 's' })}`;
  }

  /**
   * 400/413/422: the body is refused (the queue dead-letters the lines it narrows it down to).
   * Any other answer, 401/403/404 included, is retryable: a wrong password or path must keep
   * the data in NSQ until it is fixed, not dead-letter every point.
   */
  write(namespace: string, body: string | readonly Buffer[]): Promise<WriteAnswer> {
    return this.http.write(this.writePath(namespace), body);
  }

  /** GET /health: "OK" with 200 while the server takes writes (503 while it shuts down). */
  ping(): Promise<boolean> {
    return this.http.answers('/health');
  }

  close(): void {
    this.http.close();
  }
}

/** username/password: HTTP Basic (-httpAuth.*); a token: `Authorization: Bearer <token>` (vmauth). */
function authHeaders(backend: VictoriaMetricsBackendConfig): Record<string, string> {
  const { token, username, password } = backend;
  if (username !== undefined) return basicAuth(`${username}:${password ?? ''}`);
  return token ? { authorization: `Bearer ${token}` } : {};
}
