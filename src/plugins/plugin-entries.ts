// The plugins the registry names, one record per namespace and name: which entries are taken
// (and why the others are refused), the record each keeps across registry changes, and which
// plugin a request names. Entries arrive checked by src/registry/validate.ts (shape, bounds,
// namespace names, exactly one of repo or builtin); what is checked here is what only the agent
// knows: its built-in plugins and their params, its repo URL policy, and params that suit the kind.
import type { PluginEntry } from '../registry/types.ts';
import { checkRef, checkRepoUrl, projectName } from './repo-url.ts';
import type { BuiltinPluginFn, PluginRefusal, PluginRunResult } from './types.ts';

export interface PluginRecord {
  namespace: string;
  name: string;
  /** The registry's repo URL, or null for a built-in plugin. */
  repo: string | null;
  builtin: string | null;
  /** What enable/disable and the API's `repo` name it by: the URL, or the built-in's name. */
  id: string;
  entry: PluginEntry;
  /** Clone failed, no plugin.sh, unknown built-in, bad params: runs yield a failed result point. */
  problem: string | null;
  /** Cloned (git) or valid (built-in): runs really run. */
  ready: boolean;
  /** The cached clone comes from another URL than the entry's: replace it. */
  needsClone: boolean;
  gitBusy: boolean;
  commit: string | null;
  updateError: string | null;
  running: Promise<PluginRunResult> | null;
  lastRun: PluginRunResult | null;
  skippedTicks: number;
  cloneFailures: number;
}

/** An entry no record was made for: /plugins/list shows it with its reason. */
export interface RefusedEntry {
  namespace: string;
  name: string;
  repo: string | null;
  builtin: string | null;
  interval: number;
  problem: string;
}

export interface PluginEntriesOptions {
  /** Built-in plugins by name (goplugins/index.ts). */
  builtins: Readonly<Record<string, BuiltinPluginFn>>;
  /** plugins.allowLocalRepos: file:// URLs and absolute paths as repo URLs. */
  allowLocalRepos: boolean;
}

type Identified = { name: string; problem: string | null } | { refused: RefusedEntry };

export class PluginEntries {
  private readonly builtins: Readonly<Record<string, BuiltinPluginFn>>;
  private readonly allowLocalRepos: boolean;
  private records = new Map<string, PluginRecord>();
  private refusedEntries: RefusedEntry[] = [];

  constructor(opts: PluginEntriesOptions) {
    this.builtins = opts.builtins;
    this.allowLocalRepos = opts.allowLocalRepos;
  }

  /**
   * Takes the registry's entries in place of the ones before: an unchanged plugin keeps its
   * record (clone, runs, counters). Answers the keys (recordKey) of the plugins gone.
   */
  replace(plugins: Record<string, PluginEntry[]>): { removed: string[] } {
    const next = new Map<string, PluginRecord>();
    const refused: RefusedEntry[] = [];
    for (const [namespace, entries] of Object.entries(plugins)) {
      for (const entry of entries ?? []) {
        const id = this.identify(namespace, entry);
        if ('refused' in id) {
          refused.push(id.refused);
          continue;
        }
        const key = recordKey(namespace, id.name);
        const taken = next.get(key);
        if (taken) {
          refused.push({
            namespace,
            name: id.name,
            repo: entry.repo ?? null,
            builtin: entry.builtin ?? null,
            interval: entry.interval,
            problem: `namespace ${JSON.stringify(namespace)} already has a plugin named ${JSON.stringify(id.name)} (from ${taken.id}); two plugins of one name cannot share a namespace`,
          });
          continue;
        }
        next.set(key, this.carryOver(namespace, id.name, entry, id.problem));
      }
    }
    const removed = [...this.records.keys()].filter((k) => !next.has(k));
    this.records = next;
    this.refusedEntries = refused;
    return { removed };
  }

  get(key: string): PluginRecord | undefined {
    return this.records.get(key);
  }

  /** Whether the record is still the one in force (a registry change may have replaced it). */
  isCurrent(rec: PluginRecord): boolean {
    return this.records.get(recordKey(rec.namespace, rec.name)) === rec;
  }

  values(): IterableIterator<PluginRecord> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  get refused(): readonly RefusedEntry[] {
    return this.refusedEntries;
  }

  /** Why the record's entry cannot be cloned as it stands (checked again before a clone on request), or null. */
  problemOf(rec: PluginRecord): string | null {
    const id = this.identify(rec.namespace, rec.entry);
    return 'refused' in id ? id.refused.problem : id.problem;
  }

  /**
   * The plugin a request names: `repo` is the registry's URL (exact, or differing only by a
   * trailing "/" or ".git"), a built-in plugin's name, or the plugin's name.
   */
  find(namespace: string, repo: string): { rec: PluginRecord } | PluginRefusal<'bad-request' | 'not-found'> {
    if (!namespace || !repo) return { ok: false, kind: 'bad-request', message: 'name the plugin with ns=<namespace> and repo=<git URL or built-in plugin name>' };
    const inNs = [...this.records.values()].filter((p) => p.namespace === namespace);
    const wanted = normaliseRepo(repo);
    const rec =
      inNs.find((p) => p.id === repo) ??
      inNs.find((p) => p.repo !== null && normaliseRepo(p.repo) === wanted) ??
      inNs.find((p) => p.name === repo);
    if (rec) return { rec };
    const refused = this.refusedEntries.find((r) => r.namespace === namespace && (r.repo === repo || r.builtin === repo));
    if (refused) return { ok: false, kind: 'bad-request', message: `refused: ${refused.problem}` };
    return { ok: false, kind: 'not-found', message: `namespace ${JSON.stringify(namespace)} has no plugin ${JSON.stringify(repo)} (see /plugins/list)` };
  }

  /** One entry's name, with what keeps it from running (a record is kept), or why it is refused outright. */
  private identify(namespace: string, entry: PluginEntry): Identified {
    const refuse = (name: string, problem: string) => ({
      refused: { namespace, name, repo: entry.repo ?? null, builtin: entry.builtin ?? null, interval: entry.interval, problem },
    });
    if (entry.builtin !== undefined) {
      const fn = this.builtins[entry.builtin];
      if (!fn || !Object.hasOwn(this.builtins, entry.builtin)) {
        return refuse(entry.builtin, `no built-in plugin ${JSON.stringify(entry.builtin)}; there are: ${Object.keys(this.builtins).sort().join(', ')}`);
      }
      if (Array.isArray(entry.params)) return { name: entry.builtin, problem: 'params of a built-in plugin are an object (name → value), not a list' };
      try {
        fn.checkParams?.(entry.params ?? {});
      } catch (err) {
        return { name: entry.builtin, problem: `bad params: ${(err as Error).message}` };
      }
      return { name: entry.builtin, problem: null };
    }
    const checked = checkRepoUrl(entry.repo, { allowLocalRepos: this.allowLocalRepos });
    if (!checked.ok) return refuse(projectName(entry.repo ?? '') || '?', checked.reason);
    if (entry.ref !== undefined) {
      const ref = checkRef(entry.ref);
      if (!ref.ok) return { name: checked.name, problem: ref.reason };
    }
    if (entry.params !== undefined && !Array.isArray(entry.params)) {
      return { name: checked.name, problem: 'params of a git plugin are a list of arguments, not an object' };
    }
    return { name: checked.name, problem: null };
  }

  /** The record for an entry, keeping state (clone, runs, counters) from the one before. */
  private carryOver(namespace: string, name: string, entry: PluginEntry, problem: string | null): PluginRecord {
    const prev = this.records.get(recordKey(namespace, name));
    const repo = entry.repo ?? null;
    const builtin = entry.builtin ?? null;
    const sameKind = prev !== undefined && (prev.repo === null) === (repo === null) && prev.builtin === builtin;
    if (prev && sameKind) {
      prev.entry = entry;
      if (builtin !== null) {
        prev.problem = problem;
        prev.ready = problem === null;
      } else if (problem !== null) {
        prev.problem = problem;
      } else if (prev.repo !== repo) {
        // Another URL for the same name: clone it aside; the old tree runs until it is ready.
        prev.needsClone = prev.ready;
        prev.problem = null;
      } else if (!prev.ready && !prev.gitBusy) {
        prev.problem = null; // cloned again by the clone queue
      }
      prev.repo = repo;
      prev.id = repo ?? (builtin as string);
      return prev;
    }
    return {
      namespace,
      name,
      repo,
      builtin,
      id: repo ?? (builtin as string),
      entry,
      problem,
      ready: builtin !== null && problem === null,
      needsClone: false,
      gitBusy: false,
      commit: null,
      updateError: null,
      running: prev?.running ?? null,
      lastRun: null,
      skippedTicks: 0,
      cloneFailures: 0,
    };
  }
}

/** The key of a plugin's record: its namespace and name. */
export function recordKey(namespace: string, name: string): string {
  return JSON.stringify([namespace, name]);
}

function normaliseRepo(url: string): string {
  return url.replace(/\/+$/, '').replace(/\.git$/, '');
}
