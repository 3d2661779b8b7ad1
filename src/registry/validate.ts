// The registry's wire format and its validation: what an HTTP registry endpoint or the file
// registry's host entry may hold, checked where it enters. An answer with any problem is
// refused whole; each problem names its JSON path, what was found and what is expected.
import { cronProblem } from '../job-timing.ts';
import { z, type ZodIssue } from 'zod';
import { describeZodIssue, formatPath } from '../config/issues.ts';
import type { NamespaceChecks, PluginEntry, PollerStatus } from './types.ts';

export type PollerKind = PollerStatus['name'];
export const POLLER_KINDS: readonly PollerKind[] = ['namespaces', 'checks', 'plugins'];

/** Bounds on one answer; a registry may not make the agent schedule without limit. */
export const REGISTRY_LIMITS = {
  maxNamespaces: 10_000,
  maxNamespaceLength: 255,
  maxChecksPerNamespace: 1000,
  maxPluginsPerNamespace: 1000,
  maxProcessNameLength: 255,
  maxCmdlinePatternLength: 1024,
  maxPluginIntervalSec: 30 * 86_400,
  maxPluginTimeoutSec: 86_400,
  maxRepoLength: 2048,
  maxParams: 64,
  maxParamLength: 4096,
} as const;

const L = REGISTRY_LIMITS;
// C0, DEL and C1 controls: invisible in logs, and break tags, paths and argv.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const noControl = (what: string) => (s: string) => !CONTROL.test(s) || `${what} must not contain control characters`;

function refineText(schema: z.ZodString, what: string) {
  return schema.superRefine((s, ctx) => {
    const ok = noControl(what)(s);
    if (ok !== true) ctx.addIssue({ code: z.ZodIssueCode.custom, message: ok });
  });
}

export const namespaceName = z
  .string()
  .min(1, 'a namespace name must not be empty')
  .max(L.maxNamespaceLength, `a namespace name has at most ${L.maxNamespaceLength} characters`)
  .superRefine((s, ctx) => {
    const problem = namespaceProblem(s);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  });

/** Why a (non-empty, bounded) string is not a namespace name, or null. */
export function namespaceProblem(s: string): string | null {
  if (CONTROL.test(s)) return 'a namespace name must not contain control characters';
  if (s.trim() !== s) return 'a namespace name must not start or end with white space';
  // Namespaces become folder and file names (plugin cache, line-protocol files): no path tricks.
  if (s === '__proto__') return 'a namespace name must not be "__proto__"';
  if (/[/\\]/.test(s) || s === '.' || s === '..') return 'a namespace name must not contain "/" or "\\" nor be "." or ".." (use dots: "team.service")';
  return null;
}

const portCheck = z
  .object({
    port: z.number().int().min(1).max(65535),
    connect: z.boolean().optional(),
    host: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9._:%-]+$/, 'host must be a host name or an IP address (no brackets, no port)')
      .optional(),
  })
  .strict();

const processCheck = z
  .object({
    name: refineText(z.string().min(1).max(L.maxProcessNameLength), 'name').optional(),
    cmdline: refineText(z.string().min(1).max(L.maxCmdlinePatternLength), 'cmdline').optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.name === undefined) === (c.cmdline === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'exactly one of "name" (process name) or "cmdline" (command-line substring) is required' });
    }
  });

const namespaceChecks = z
  .object({
    ports: z.array(portCheck).max(L.maxChecksPerNamespace).default([]),
    processes: z.array(processCheck).max(L.maxChecksPerNamespace).default([]),
  })
  .strict()
  .superRefine((c, ctx) => {
    duplicates(c.ports.map((p) => `${p.port}@${p.host ?? ''}`), ctx, 'ports', 'the same port check');
    duplicates(c.processes.map((p) => `${p.name ?? ''}\0${p.cmdline ?? ''}`), ctx, 'processes', 'the same process check');
  });

const pluginEntry = z
  .object({
    repo: refineText(z.string().min(1).max(L.maxRepoLength), 'repo').optional(),
    builtin: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'builtin must be a built-in plugin name: letters, digits, "_", "." or "-", at most 64')
      .optional(),
    /** Required unless `cron` is given; then absent or 0. */
    interval: z.number().int().min(0).max(L.maxPluginIntervalSec).optional(),
    cron: refineText(z.string().min(1).max(200), 'cron').optional(),
    timezone: refineText(z.string().min(1).max(64), 'timezone').optional(),
    params: z
      .union([
        // Numbers and booleans are accepted as arguments and passed on as strings.
        z
          .array(z.union([z.string(), z.number().finite(), z.boolean()]).transform(String).pipe(refineText(z.string().max(L.maxParamLength), 'a param')))
          .max(L.maxParams),
        z.record(z.unknown()),
      ])
      .optional(),
    timeout: z.number().int().min(1).max(L.maxPluginTimeoutSec).optional(),
    ref: refineText(z.string().min(1).max(256), 'ref')
      .refine((s) => !s.startsWith('-'), 'ref must not start with "-"')
      .optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if ((p.repo === undefined) === (p.builtin === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'exactly one of "repo" (git URL) or "builtin" (built-in plugin name) is required' });
    }
    if (p.cron === undefined) {
      if (p.interval === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['interval'], message: 'required (seconds; 0 = on demand), unless "cron" gives clock times' });
      if (p.timezone !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['timezone'], message: 'only with "cron"' });
      return;
    }
    if (p.interval !== undefined && p.interval !== 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['cron'], message: 'give "interval" or "cron", not both' });
    }
    const problem = cronProblem(p.cron, p.timezone);
    if (problem !== null) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [problem.startsWith('unknown time zone') ? 'timezone' : 'cron'], message: problem });
  })
  .transform((p) => ({ ...p, interval: p.interval ?? 0 }));

const namespaceList = z
  .array(namespaceName)
  .max(L.maxNamespaces)
  .superRefine((list, ctx) => duplicates(list, ctx, null, 'a namespace'));

const checksMap = z.record(namespaceName, namespaceChecks).superRefine((m, ctx) => maxKeys(m, ctx));
const pluginsMap = z.record(namespaceName, z.array(pluginEntry).max(L.maxPluginsPerNamespace)).superRefine((m, ctx) => maxKeys(m, ctx));

function maxKeys(m: Record<string, unknown>, ctx: z.RefinementCtx): void {
  const n = Object.keys(m).length;
  if (n > L.maxNamespaces) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `at most ${L.maxNamespaces} namespaces, found ${n}` });
}

function duplicates(keys: string[], ctx: z.RefinementCtx, field: string | null, what: string): void {
  const seen = new Map<string, number>();
  keys.forEach((k, i) => {
    const first = seen.get(k);
    if (first !== undefined) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: field === null ? [i] : [field, i],
        message: `${what} listed twice (first at index ${first})`,
      });
    } else {
      seen.set(k, i);
    }
  });
}

/** One host's entry: the file registry's `hosts.<name>`, or any HTTP endpoint's whole answer. */
function hostEntry(required: PollerKind | null) {
  return z
    .object({
      namespaces: required === 'namespaces' || required === null ? namespaceList : namespaceList.optional(),
      checks: required === 'checks' ? checksMap : checksMap.optional(),
      plugins: required === 'plugins' ? pluginsMap : pluginsMap.optional(),
    })
    .strict();
}

export type AnswerValue<K extends PollerKind> = K extends 'namespaces'
  ? string[]
  : K extends 'checks'
    ? Record<string, NamespaceChecks>
    : Record<string, PluginEntry[]>;

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: string[] };

export interface ValidateOptions {
  /** JSON path of `body` inside what was fetched, e.g. `$.hosts["web-1"]`; default `$`. */
  at?: string;
  /**
   * The HTTP registry must answer the poller's key (so a typo cannot silently mean "none");
   * a file registry host entry may leave out checks and plugins (= none).
   */
  keyRequired: boolean;
}

/** Validates one poller's part of an answer; other known keys are checked too, then ignored. */
export function validateAnswer<K extends PollerKind>(kind: K, body: unknown, opts: ValidateOptions): Validated<AnswerValue<K>> {
  const schema = hostEntry(opts.keyRequired ? kind : null);
  const parsed = schema.safeParse(body);
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.map((i) => describeIssue(i, opts.at ?? '$')) };
  const v = parsed.data;
  const value = kind === 'namespaces' ? (v.namespaces ?? []) : kind === 'checks' ? (v.checks ?? {}) : (v.plugins ?? {});
  return { ok: true, value: stripUndefined(value) as AnswerValue<K> };
}

/** Optional keys zod left as `undefined` would make equal answers compare unequal as JSON. */
function stripUndefined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripUndefined);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, stripUndefined(x)]));
  }
  return v;
}

export { formatPath };

function describeIssue(issue: ZodIssue, at: string): string {
  if (issue.code === 'invalid_union') return `${formatPath(at, issue.path)}: expected a list of strings or an object`;
  return describeZodIssue(issue, { at });
}

