// The storage kinds a backend entry can name (`kind`), each with the client that speaks to it.
// Adding a kind: its schema in src/config/schema.ts (backendSchema's union), one client file
// implementing BackendWriter, and one line here.
import type { BackendConfig, BackendKind } from '../config/schema.ts';
import { BackendClient } from './backend-client.ts';
import type { BackendWriter, BackendWriterOptions } from './backend-writer.ts';
import { VictoriaMetricsClient } from './victoriametrics-client.ts';

type ConfigOf<K extends BackendKind> = Extract<BackendConfig, { kind?: K }>;

const storageKinds: { [K in BackendKind]: (backend: ConfigOf<K>, opts: BackendWriterOptions) => BackendWriter } = {
  influxdb: (backend, opts) => new BackendClient({ ...opts, backend }),
  victoriametrics: (backend, opts) => new VictoriaMetricsClient({ ...opts, backend }),
};

/** A backend entry's kind; an entry without one is InfluxDB. */
export function kindOf(backend: BackendConfig): BackendKind {
  return backend.kind ?? 'influxdb';
}

/** The client for a backend entry, by its kind. */
export function createBackendWriter(backend: BackendConfig, opts: BackendWriterOptions): BackendWriter {
  const make = storageKinds[kindOf(backend)] as (backend: BackendConfig, opts: BackendWriterOptions) => BackendWriter;
  return make(backend, opts);
}
