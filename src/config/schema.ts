// The agent's configuration: one JSON file, validated here and nowhere else.
// Every default lives in this file; every section refuses unknown keys so a typo is an error,
// not a silently ignored setting. Units are in the field names (…Ms, …Sec, …Bytes).
import { z } from 'zod';
import { globProblem } from '../collectors/filter.ts';
import { REGISTRY_LIMITS } from '../registry/validate.ts';
import { isLoopback, splitHostPort } from './addresses.ts';

const hostPort = z
  .string()
  .regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, 'expected "host:port", e.g. "127.0.0.1:4150"')
  .refine((a) => !(splitHostPort(a).port > 65535), 'the port must be at most 65535');

/** A server to dial: port 0 (which only means "any free port" when listening) is refused. */
const serverAddress = hostPort.refine((a) => splitHostPort(a).port !== 0, 'port 0 cannot be dialled: give the port the server listens on');

/** A URL the agent sends HTTP requests to: only http:// and https:// are spoken. */
const httpUrl = z
  .string()
  .url()
  .refine(
    (u) => !URL.canParse(u) || ['http:', 'https:'].includes(new URL(u).protocol),
    (u) => ({ message: `"${u}" has no http:// or https:// scheme: write e.g. "http://${u.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')}"` }),
  );

/**
 * A lower and upper bound of one backoff: min above max is refused at the max key, so the
 * operator sees both names.
 */
function minNotAboveMax<T>(minKey: keyof T & string, maxKey: keyof T & string) {
  return (v: T, ctx: z.RefinementCtx) => {
    const min = v[minKey] as number;
    const max = v[maxKey] as number;
    if (min > max) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [maxKey], message: `${max} is below ${minKey} (${min}): raise ${maxKey} or lower ${minKey}` });
    }
  };
}

const MiB = 1024 * 1024;

/** A secret that may come from an unset "${VAR:-}": empty means none. */
const secret = z
  .string()
  .optional()
  .transform((s) => (s === '' ? undefined : s));

/**
 * TLS for a hop that can leave the data centre (nsqd, backends). Present = TLS on; every file is
 * PEM. Default CA list: the system's.
 */
export const tlsSchema = z
  .object({
    /** CA(s) that signed the server's certificate. */
    caFile: z.string().min(1).optional(),
    /** Client certificate and its key, for servers that ask for one. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** The name the server's certificate must hold; default: the host of the address. */
    serverName: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.certFile === undefined) !== (t.keyFile === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [t.certFile ? 'keyFile' : 'certFile'], message: 'certFile and keyFile go together: give both or neither' });
    }
  });

/** NSQ's own link options (TLS, compression, auth), the same for the publisher and the relay. */
const nsqLinkFields = {
  tls: tlsSchema.optional(),
  /** Compression negotiated with nsqd (it must allow it: --deflate / --snappy, on by default). */
  compression: z.enum(['none', 'deflate', 'snappy']).optional(),
  /** Sent in AUTH to an nsqd run with --auth-http-address; use "${ENV_VAR}". */
  authSecret: secret,
};

export const logSchema = z
  .object({
    /** pino level: trace, debug, info, warn, error, fatal, silent. */
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /** Folder of the rotated JSON log files; `/log/offset` may read it. */
    dir: z.string().min(1).default('data/log'),
    maxFileBytes: z.number().int().min(64 * 1024).default(20 * MiB),
    maxFiles: z.number().int().min(1).max(1000).default(5),
    /** Pretty lines on stdout in the foreground: auto = when stdout is a terminal. */
    pretty: z.enum(['auto', 'always', 'never']).default('auto'),
  })
  .strict();

export const registrySchema = z
  .object({
    /** file = one JSON file (the embedded default); http = the service tree's HTTP registry. */
    source: z.enum(['file', 'http']).default('file'),
    file: z.string().min(1).default('registry.example.json'),
    url: httpUrl.optional(),
    token: secret,
    timeoutMs: z.number().int().min(100).default(10_000),
    namespacesIntervalSec: z.number().int().min(1).default(60),
    checksIntervalSec: z.number().int().min(1).default(60),
    pluginsIntervalSec: z.number().int().min(1).default(60),
    /** Answers larger than this are refused (a registry is not allowed to exhaust the agent). */
    maxAnswerBytes: z.number().int().min(1024).default(8 * MiB),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.source === 'http' && !r.url) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['url'], message: 'required when source is "http"' });
    }
  });

/** Telegraf's default ignore_fs, plus kernel pseudo file systems (no blocks: Telegraf skips them after statfs). */
export const DEFAULT_IGNORE_FS = [
  'tmpfs', 'devtmpfs', 'devfs', 'iso9660', 'overlay', 'aufs', 'squashfs',
  // No blocks, so Telegraf drops them after a statfs; skipping them saves the call. autofs too:
  // its statfs would trigger a mount (the mounted file system is reported under its own type).
  'proc', 'sysfs', 'cgroup', 'cgroup2', 'autofs', 'devpts', 'mqueue', 'debugfs', 'tracefs', 'securityfs', 'pstore',
  'bpf', 'configfs', 'fusectl', 'hugetlbfs', 'binfmt_misc', 'rpc_pipefs', 'nsfs', 'ramfs', 'selinuxfs',
];

/** Telegraf-style name patterns (globs); a pattern that cannot be compiled is refused here. */
const globList = z.array(
  z.string().min(1).superRefine((p, ctx) => {
    const problem = globProblem(p);
    if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not a valid pattern: ${problem}` });
  }),
);

const enabledOnly = z.object({ enabled: z.boolean().default(true) }).strict();

/** Per-collector settings of the system stats, named after Telegraf's inputs and their options. */
export const systemCollectorsSchema = {
  cpu: z
    .object({
      enabled: z.boolean().default(true),
      /** A point per CPU (cpu=cpu0 …). */
      percpu: z.boolean().default(true),
      /** The cpu=cpu-total point. */
      totalcpu: z.boolean().default(true),
    })
    .strict()
    .default({}),
  mem: enabledOnly.default({}),
  swap: enabledOnly.default({}),
  system: enabledOnly.default({}),
  disk: z
    .object({
      enabled: z.boolean().default(true),
      /** Only these mount points (exact paths) when not empty. */
      mountPoints: z.array(z.string().min(1)).default([]),
      /** File system types skipped. */
      ignoreFs: z.array(z.string()).default(DEFAULT_IGNORE_FS),
    })
    .strict()
    .default({}),
  diskio: z
    .object({
      enabled: z.boolean().default(true),
      /** Only devices matching one of these globs (e.g. "sd*", "nvme0n1") when not empty. */
      devices: globList.default([]),
    })
    .strict()
    .default({}),
  net: z
    .object({
      enabled: z.boolean().default(true),
      /** Only interfaces matching one of these globs, up or down, when not empty; else every up, non-loopback one. */
      interfaces: globList.default([]),
      /** Leave out the interface=all line of /proc/net/snmp counters. */
      ignoreProtocolStats: z.boolean().default(true),
    })
    .strict()
    .default({}),
  processes: enabledOnly.default({}),
};

export const collectSchema = z.preprocess(
  // ignoreFsTypes, the first release's key, is read as disk.ignoreFs when that is not set.
  (raw) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !('ignoreFsTypes' in raw)) return raw;
    const { ignoreFsTypes, ...rest } = raw as Record<string, unknown>;
    const disk = rest.disk;
    if (disk !== undefined && (typeof disk !== 'object' || disk === null || Array.isArray(disk))) return raw;
    const d = (disk ?? {}) as Record<string, unknown>;
    return { ...rest, disk: 'ignoreFs' in d ? d : { ...d, ignoreFs: ignoreFsTypes } };
  },
  z
    .object({
      systemIntervalSec: z.number().int().min(1).default(10),
      checksIntervalSec: z.number().int().min(1).default(30),
      /** Root of /proc and /sys, so tests can read a fixture tree. */
      hostRoot: z.string().min(1).default('/'),
      portConnectTimeoutMs: z.number().int().min(10).default(1000),
      ...systemCollectorsSchema,
    })
    .strict(),
);

export const schedulerSchema = z
  .object({
    /** At most this many plugin runs at once across all namespaces. */
    maxConcurrentRuns: z.number().int().min(1).default(16),
  })
  .strict();

export const pluginsSchema = z
  .object({
    cacheDir: z.string().min(1).default('plugins-cache'),
    /** User (and group) plugins run as when the agent runs as root. */
    runAsUser: z.string().min(1).default('nobody'),
    runAsGroup: z.string().min(1).optional(),
    /** Allow file:// URLs and local paths as plugin repos (tests, air-gapped hosts). */
    allowLocalRepos: z.boolean().default(false),
    maxOutputBytes: z.number().int().min(1024).default(4 * MiB),
    stderrRingBytes: z.number().int().min(256).default(8 * 1024),
    onDemandTimeoutSec: z.number().int().min(1).default(10),
    killGraceMs: z.number().int().min(0).default(2000),
    /** At shutdown, runs in progress may finish (and publish) this long before they are killed. */
    stopGraceMs: z.number().int().min(0).default(5000),
    autoEnableAfterSec: z.number().int().min(1).default(86_400),
    gitTimeoutSec: z.number().int().min(1).default(120),
    /** A failed first clone is tried again after this long (a cached clone is never updated by itself). */
    cloneRetrySec: z.number().int().min(1).default(300),
    /** Clones running at once when the registry brings many new plugins. */
    maxConcurrentClones: z.number().int().min(1).default(2),
  })
  .strict();

export const spoolSchema = z
  .object({
    /** Default: <dataDir>/spool. */
    dir: z.string().min(1).optional(),
    maxBytes: z.number().int().min(64 * 1024).default(1024 * MiB),
    maxAgeSec: z.number().int().min(1).default(7 * 86_400),
    /** Group commit: batches arriving within this window share one fsync. */
    commitIntervalMs: z.number().int().min(0).default(20),
    segmentBytes: z.number().int().min(64 * 1024).default(16 * MiB),
  })
  .strict();

export const nsqSchema = z
  .object({
    /** nsqd TCP addresses; the publisher fails over between them (within a replica's share). */
    nsqdTcpAddresses: z.array(serverAddress).min(1),
    /**
     * Each batch goes to this many distinct nsqd (address i serves replica i mod replicas), and
     * is acknowledged once every replica holds it (in its nsqd or its own spool).
     */
    replicas: z.number().int().min(1).default(1),
    /** Topic = prefix + mapped namespace (see the README for the mapping). */
    topicPrefix: z
      .string()
      .regex(/^[.a-zA-Z0-9_-]*$/, 'only [.a-zA-Z0-9_-] are allowed in NSQ topic names')
      .max(16)
      .default('ns.'),
    maxMessageBytes: z.number().int().min(1024).max(MiB).default(256 * 1024),
    /** nsqjs copies each MPUB three times on its way out: 1 MiB × 8 in flight bounds that. */
    maxMpubBytes: z.number().int().min(2048).max(5 * MiB).default(MiB),
    lingerMs: z.number().int().min(0).default(20),
    maxInFlightBatches: z.number().int().min(1).default(8),
    reconnectMinMs: z.number().int().min(10).default(200),
    reconnectMaxMs: z.number().int().min(10).default(10_000),
    spool: spoolSchema.default({}),
    ...nsqLinkFields,
  })
  .strict()
  .superRefine(minNotAboveMax('reconnectMinMs', 'reconnectMaxMs'))
  .superRefine((n, ctx) => {
    if (n.replicas > n.nsqdTcpAddresses.length) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['replicas'],
        message: `${n.replicas} replicas need at least ${n.replicas} nsqd, but nsqdTcpAddresses names ${n.nsqdTcpAddresses.length}: add nsqd addresses or lower replicas`,
      });
    }
    const seen = new Set<string>();
    n.nsqdTcpAddresses.forEach((a, i) => {
      if (seen.has(a)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['nsqdTcpAddresses', i], message: `"${a}" is listed twice: name each nsqd once` });
      }
      seen.add(a);
    });
  });

export const fileSinkSchema = z
  .object({
    /** Default: <dataDir>/lp. One line-protocol file per namespace, size-rotated. */
    dir: z.string().min(1).optional(),
    maxFileBytes: z.number().int().min(64 * 1024).default(64 * MiB),
    maxFiles: z.number().int().min(1).default(5),
  })
  .strict();

/** What a backend entry of every storage kind has: where it is, how long to wait, how to log in. */
const backendCommonFields = {
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, "_", "." and "-", at most 64'),
  /** The server's base URL: http:// or https://. */
  url: httpUrl,
  token: secret,
  timeoutMs: z.number().int().min(100).default(10_000),
  /** HTTP Basic credentials; use "${ENV_VAR}". Instead of a token. */
  username: secret,
  password: secret,
  /**
   * gzip write bodies over 1 KiB (Content-Encoding: gzip), as Telegraf does by default.
   * Absent = true; optional so that a BackendConfig built in code needs no new key.
   */
  gzip: z.boolean().optional(),
  /** TLS settings for an https:// url. */
  tls: tlsSchema.optional(),
};

/** kind "influxdb" (the default): InfluxDB 1.x/2.x/3.x and servers that speak its write API. */
export const influxdbBackendSchema = z
  .object({
    /** Absent = "influxdb"; optional so that a BackendConfig built in code needs no new key. */
    kind: z.literal('influxdb').optional(),
    ...backendCommonFields,
    /** The server's base URL (no "/api/v2"): http:// or https://. */
    url: httpUrl.refine((u) => !URL.canParse(u) || !/\/api\/v2\/?$/.test(new URL(u).pathname), {
      message: 'give the server\'s base url, without "/api/v2" (api: "v2" picks that path)',
    }),
    /** v2 = /api/v2/write (InfluxDB 1.8+, 2.x, 3.x); v1 = /write?db= (InfluxDB 1.x and compatibles). */
    api: z.enum(['v1', 'v2']).default('v1'),
    org: z.string().default(''),
    /** Retention policy; v2 bucket = namespace/rp on InfluxDB 1.8. */
    rp: z.string().optional(),
    /** On 404 "database not found": CREATE DATABASE "<namespace>" via /query, then write again. */
    createDatabase: z.boolean().default(true),
  })
  .strict();

/**
 * kind "victoriametrics": VictoriaMetrics single-node (or vminsert/vmagent: the url then holds
 * the path prefix, e.g. http://vminsert:8480/insert/0/influx). The namespace is the `db` label.
 */
export const victoriaMetricsBackendSchema = z
  .object({
    kind: z.literal('victoriametrics'),
    ...backendCommonFields,
  })
  .strict();

/** One entry of sender.backends: a storage kind's own keys, picked by `kind`. */
export const backendSchema = z
  .discriminatedUnion('kind', [influxdbBackendSchema, victoriaMetricsBackendSchema], {
    errorMap: (issue, ctx) =>
      issue.code === 'invalid_union_discriminator'
        ? { message: `found ${JSON.stringify((ctx.data as { kind?: unknown }).kind)}, expected "influxdb" (the default) or "victoriametrics"` }
        : { message: ctx.defaultError },
  })
  .superRefine((b, ctx) => {
    if (b.tls && !b.url.startsWith('https:')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tls'], message: 'tls needs an https:// url' });
    }
    if (b.password !== undefined && b.username === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['username'], message: 'password given without username' });
    }
    if (b.username !== undefined && b.token !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['username'], message: 'give either token or username/password, not both' });
    }
  });

export const senderSchema = z
  .object({
    mode: z.enum(['shard', 'replicate']).default('shard'),
    /** No backend: line protocol goes to files per namespace (fileSink). */
    backends: z.array(backendSchema).default([]),
    batchSize: z.number().int().min(1).default(5000),
    flushIntervalMs: z.number().int().min(1).default(1000),
    /** Points queued or in flight, all backends; a write that does not fit waits for room. */
    maxQueuedPoints: z.number().int().min(1).default(200_000),
    /** How long a write waits for room before it is refused (retryable, counted); 0 = refuse at once. */
    maxQueueWaitMs: z.number().int().min(0).default(30_000),
    virtualNodes: z.number().int().min(1).default(160),
    /** Write requests in flight per backend; a partial batch waits only while one is. */
    maxConcurrentWrites: z.number().int().min(1).max(64).default(4),
    /** Backoff between retries of a failed batch (doubling); a longer Retry-After hands it back to NSQ. */
    retryMinMs: z.number().int().min(1).default(500),
    retryMaxMs: z.number().int().min(1).default(30_000),
    /** Consecutive failures after which a backend is marked down and only probed. */
    downAfterFailures: z.number().int().min(1).default(5),
    probeIntervalMs: z.number().int().min(100).default(5000),
    /** stop(): how long queued points may take to be written before they are handed back. */
    stopTimeoutMs: z.number().int().min(0).default(10_000),
    /** Default: <dataDir>/deadletter. */
    deadLetterDir: z.string().min(1).optional(),
    /** The dead-letter file is rotated to "<file>.1" past this size. */
    deadLetterMaxFileBytes: z.number().int().min(1024).default(64 * MiB),
    fileSink: fileSinkSchema.default({}),
  })
  .strict()
  .superRefine(minNotAboveMax('retryMinMs', 'retryMaxMs'))
  .superRefine((s, ctx) => {
    const seen = new Set<string>();
    s.backends.forEach((b, i) => {
      if (seen.has(b.name)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['backends', i, 'name'], message: `duplicate backend name "${b.name}"` });
      }
      seen.add(b.name);
    });
  });

export const relaySchema = z
  .object({
    /** Run the relay inside `agent start` (it always runs for `agent relay`). */
    enabled: z.boolean().default(false),
    channel: z.string().regex(/^[.a-zA-Z0-9_-]{1,64}$/, 'an NSQ channel name').default('relay'),
    /** Where topics come from: the registry's namespaces, nsqlookupd, or both. */
    topicsFrom: z.enum(['registry', 'lookupd', 'both']).default('registry'),
    /** nsqd to consume from; empty = nsq.nsqdTcpAddresses. */
    nsqdTcpAddresses: z.array(serverAddress).default([]),
    /** nsqlookupd HTTP addresses: topics (GET /topics) and their producers. */
    lookupdHttpAddresses: z.array(serverAddress).default([]),
    /** How often the topic list is refreshed (registry changes are also picked up at once). */
    topicRefreshMs: z.number().int().min(100).default(30_000),
    /** Messages in flight per topic (nsqd RDY); relay.maxInFlightBytes bounds them all together. */
    maxInFlight: z.number().int().min(1).max(2500).default(200),
    /**
     * Bytes of messages received and not yet finished or requeued, across all topics: above it
     * every reader is paused (RDY 0) until they drop below again.
     */
    maxInFlightBytes: z.number().int().min(MiB).default(16 * MiB),
    /**
     * Asked of nsqd in IDENTIFY: how long it may buffer messages before writing them to us. What
     * it buffers is lost if nsqd is SIGKILLed; nsqd refuses less than its
     * --min-output-buffer-timeout (25 ms by default).
     */
    outputBufferTimeoutMs: z.number().int().min(1).default(25),
    /** 0 = never give up; else after this many deliveries a message is dead-lettered, not retried. */
    maxAttempts: z.number().int().min(0).default(0),
    requeueMinMs: z.number().int().min(0).default(1000),
    requeueMaxMs: z.number().int().min(0).default(60_000),
    /** nsqjs re-dials lost nsqd connections (and polls nsqlookupd per topic) at this interval. */
    lookupdPollIntervalSec: z.number().int().min(1).default(5),
    /** nsqd's message timeout for this consumer; messages waiting on a write are touched before it. */
    messageTimeoutMs: z.number().int().min(1000).default(60_000),
    /**
     * At most this many topics are consumed; more are refused (an error in /me/status, /metrics
     * and the log). The default is as many namespaces as a registry answer may hold.
     */
    maxTopics: z.number().int().min(1).default(REGISTRY_LIMITS.maxNamespaces),
    /** stop(): how long in-flight messages may take to be written before they are requeued. */
    drainTimeoutMs: z.number().int().min(0).default(10_000),
    /** TLS, compression and auth towards nsqd; each absent one is taken from the nsq section. */
    ...nsqLinkFields,
  })
  .strict()
  .superRefine(minNotAboveMax('requeueMinMs', 'requeueMaxMs'))
  .superRefine((r, ctx) => {
    if (r.topicsFrom !== 'registry' && r.lookupdHttpAddresses.length === 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['lookupdHttpAddresses'],
        message: `topicsFrom "${r.topicsFrom}" asks nsqlookupd for topics, but none is listed: add nsqlookupd HTTP addresses or set topicsFrom to "registry"`,
      });
    }
  });

const uiSchema = z
  .object({
    /** Serve the operator's page at /ui and the counters ring at /me/history. */
    enabled: z.boolean().default(true),
    /** The ring samples /me/status this often and keeps this many samples (15 min by default). */
    historyIntervalSec: z.number().int().min(1).max(3600).default(10),
    historySamples: z.number().int().min(2).max(1000).default(90),
  })
  .strict();

export const httpSchema = z
  .object({
    enabled: z.boolean().default(true),
    listen: hostPort.default('127.0.0.1:1988'),
    /** Bearer token for mutating routes and /log/offset; use "${ENV_VAR}". */
    token: secret,
    /** Binding beyond loopback without a token must be asked for explicitly. */
    allowInsecureNonLoopback: z.boolean().default(false),
    /** /post and /api/push bodies, counted after decompression; larger ones get a 413. */
    maxBodyBytes: z.number().int().min(1024).default(16 * MiB),
    /** Folders /log/offset may read; the log folder is always included. */
    logDirs: z.array(z.string().min(1)).default([]),
    /** /log/offset reads at most this many bytes and returns at most this many lines per call. */
    maxLogReadBytes: z.number().int().min(1024).default(MiB),
    maxLogReadLines: z.number().int().min(1).default(10_000),
    /** POST /post to a namespace the registry does not list: refused (404) unless true. */
    allowAnyNamespace: z.boolean().default(false),
    /** Namespace for /api/push when the request names none. */
    defaultPushNamespace: z.string().min(1).optional(),
    /**
     * Host names (besides loopback, http.listen, hostname, the OS's name and addresses) a
     * browser may use in Host or Origin; "*.example.com" allows every subdomain.
     */
    allowedHosts: z.array(z.string().min(1).max(253)).default([]),
    /** Ingest body bytes all requests together may hold while being parsed; beyond: 503. */
    maxParsingBytes: z.number().int().min(1024).default(64 * MiB),
    /** Points (JSON items, good line-protocol lines) one /post or /api/push body may hold; beyond: 413. */
    maxPointsPerBody: z.number().int().min(1).default(200_000),
    ui: uiSchema.default({}),
  })
  .strict()
  .superRefine((h, ctx) => {
    if (!isLoopback(splitHostPort(h.listen).host) && !h.token && !h.allowInsecureNonLoopback) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['listen'],
        message: `"${h.listen}" is beyond loopback and no http.token is set: set a token, or set http.allowInsecureNonLoopback to true`,
      });
    }
  });

export const configSchema = z
  .object({
    /** Host tag and registry key; default: the OS hostname. */
    hostname: z
      .string()
      .min(1)
      .max(253)
      .refine((h) => !h.endsWith('\\'), 'must not end with a backslash (it would escape the separator after the host tag)')
      .optional(),
    /** Spool, registry cache, plugin state, line-protocol files, pid file. */
    dataDir: z.string().min(1).default('data'),
    pidFile: z.string().min(1).optional(),
    log: logSchema.default({}),
    registry: registrySchema.default({}),
    collect: collectSchema.default({}),
    scheduler: schedulerSchema.default({}),
    plugins: pluginsSchema.default({}),
    /** Absent: the embedded default (in-process hand-off to the sender). */
    nsq: nsqSchema.optional(),
    relay: relaySchema.default({}),
    sender: senderSchema.default({}),
    http: httpSchema.default({}),
  })
  .strict();

type ParsedConfig = z.output<typeof configSchema>;

/** A relay consumes from relay.nsqdTcpAddresses, relay.lookupdHttpAddresses or the nsq section's nsqd. */
function refuseRelayWithoutNsqd(c: ParsedConfig, ctx: z.RefinementCtx, who: string): void {
  if (!c.nsq && c.relay.nsqdTcpAddresses.length === 0 && c.relay.lookupdHttpAddresses.length === 0) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['relay', 'nsqdTcpAddresses'],
      message: `${who} needs nsqd to consume from: set relay.nsqdTcpAddresses, relay.lookupdHttpAddresses or nsq.nsqdTcpAddresses`,
    });
  }
}

/** `agent start`: relay.enabled runs the relay beside the collection. */
export const startRoleConfigSchema = configSchema.superRefine((c, ctx) => {
  if (c.relay.enabled) refuseRelayWithoutNsqd(c, ctx, 'relay.enabled (a relay inside agent start)');
});

/** `agent relay` runs the relay whatever relay.enabled says. */
export const relayRoleConfigSchema = configSchema.superRefine((c, ctx) => refuseRelayWithoutNsqd(c, ctx, 'agent relay'));

export type ConfigInput = z.input<typeof configSchema>;
export type AgentConfig = z.output<typeof configSchema>;
export type LogConfig = AgentConfig['log'];
export type RegistryConfig = AgentConfig['registry'];
export type CollectConfig = AgentConfig['collect'];
export type SchedulerConfig = AgentConfig['scheduler'];
export type PluginsConfig = AgentConfig['plugins'];
export type NsqConfig = NonNullable<AgentConfig['nsq']>;
export type SpoolConfig = NsqConfig['spool'];
export type SenderConfig = AgentConfig['sender'];
export type BackendConfig = SenderConfig['backends'][number];
export type BackendKind = NonNullable<BackendConfig['kind']>;
export type InfluxdbBackendConfig = z.output<typeof influxdbBackendSchema>;
export type VictoriaMetricsBackendConfig = z.output<typeof victoriaMetricsBackendSchema>;
export type FileSinkConfig = SenderConfig['fileSink'];
export type RelayConfig = AgentConfig['relay'];
export type HttpConfig = AgentConfig['http'];
export type TlsConfig = z.output<typeof tlsSchema>;
