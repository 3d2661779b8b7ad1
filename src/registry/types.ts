// What the registry tells a host: its namespaces, the checks and the plugins of each. These are
// the validated, in-memory shapes; the wire format (HTTP and file) is defined beside the
// validators in this folder and documented in the README.

export interface PortCheck {
  port: number;
  /** Also try a TCP connect (and time it), not only look the port up in the socket tables. */
  connect?: boolean;
  /** Address to connect to when `connect` is set; default 127.0.0.1. */
  host?: string;
}

export interface ProcessCheck {
  /** Exact process name (comm), or … */
  name?: string;
  /** … a substring of the command line. */
  cmdline?: string;
}

export interface NamespaceChecks {
  ports: PortCheck[];
  processes: ProcessCheck[];
}

export interface PluginEntry {
  /** Git URL of a repo holding plugin.sh at its root; exactly one of repo / builtin. */
  repo?: string;
  /** Name of a built-in plugin from goplugins/. */
  builtin?: string;
  /** Seconds between runs; 0 = only on demand (or on `cron`). */
  interval: number;
  /** Clock-time schedule instead of an interval: a cron expression, e.g. "0 3 * * *". */
  cron?: string;
  /** IANA time zone `cron` is read in; default the host's. */
  timezone?: string;
  /** Arguments to plugin.sh, or the built-in plugin's params. */
  params?: string[] | Record<string, unknown>;
  /** Seconds; default: the interval (10 s for on-demand and cron runs). */
  timeout?: number;
  /** Branch, tag or commit to update to instead of the remote's default branch. */
  ref?: string;
}

/** One consistent answer of all three pollers. */
export interface RegistrySnapshot {
  namespaces: string[];
  checks: Record<string, NamespaceChecks>;
  plugins: Record<string, PluginEntry[]>;
}

export interface PollerStatus {
  name: 'namespaces' | 'checks' | 'plugins';
  lastSuccessAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  nextPollAt: number | null;
  /** Where the answer in force came from. */
  source: 'registry' | 'cache' | 'none';
  /** The registry polled: its URL or the registry file's path. */
  location?: string;
}

export interface RegistryView {
  current(): RegistrySnapshot;
  /** Poll all three now (the /update route); resolves when the answers are applied. */
  pollNow(): Promise<PollerStatus[]>;
  status(): PollerStatus[];
  /** Called after every change with the new snapshot. */
  onChange(listener: (snapshot: RegistrySnapshot) => void): void;
}
