// The plugins cache: clones a plugin repo once into <cacheDir>/<ns>/<name>, and updates it only
// when asked. Both build the new tree aside (a temporary folder in the same namespace folder)
// and move it into place with renames, so a failed clone or update never leaves a half tree and
// a failed update leaves the plugin running its old commit. Git sees only validated URLs and
// refs, after "--", with a protocol allow-list and a time limit.
import { constants, renameSync } from 'node:fs';
import { chmod, cp, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { abortScope } from '../abort-scope.ts';
import { checkRef, checkRepoUrl } from './repo-url.ts';
import { namespaceDir, pluginDir } from './plugin-paths.ts';

/** The one git call the cache needs; a seam so tests can prove when git never ran. */
export interface GitClient {
  raw(args: string[]): Promise<string>;
}

export interface GitClientOptions {
  /** Working directory of the git process. */
  baseDir: string;
  /** Aborted at plugins.gitTimeoutSec: the git process is killed. */
  signal: AbortSignal;
  /** Kill git when it prints nothing for this long (simple-git's timeout.block). */
  inactivityTimeoutMs: number;
  allowLocalRepos: boolean;
}

export type GitFactory = (opts: GitClientOptions) => GitClient;

export interface PluginRepoCacheOptions {
  /** Absolute folder of the cache (plugins.cacheDir). */
  cacheDir: string;
  allowLocalRepos: boolean;
  /** Whole-operation limit of one clone or update (plugins.gitTimeoutSec). */
  gitTimeoutSec: number;
  logger: Logger;
  /** Default: simple-git with the protocol allow-list below. */
  gitFactory?: GitFactory;
}

export interface CachedClone {
  dir: string;
  /** The URL it was cloned or last updated from; null for a folder not made by the agent. */
  url: string | null;
  commit: string | null;
}

export interface RepoOpOptions {
  /** Resolves when no run uses the old tree any more; it is removed after. */
  waitIdle?: () => Promise<void>;
  /** Aborts the git processes (the agent stops). */
  signal?: AbortSignal;
}

export interface UpdateOutcome {
  from: string | null;
  to: string;
  changed: boolean;
}

/** A clone or update refused or failed; the message says why, for /plugins/list and the API. */
export class PluginRepoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginRepoError';
  }
}

/** Kept in the clone's .git folder (git ignores it) so it travels with the tree. */
const META_FILE = 'ns-agent.json';
const TMP_PREFIX = '.tmp-';
const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** Protocols git may use at all: anything else (ext::, fd::, git://, http://) fails inside git too. */
function protocolConfig(allowLocalRepos: boolean): string[] {
  return [
    'protocol.allow=never',
    'protocol.https.allow=always',
    'protocol.ssh.allow=always',
    ...(allowLocalRepos ? ['protocol.file.allow=always'] : []),
    // Never wait for a passphrase or an unknown host key confirmation nobody will type.
    'core.sshCommand=ssh -o BatchMode=yes',
    'credential.interactive=never',
  ];
}

export const simpleGitFactory: GitFactory = (opts) => {
  const env: Record<string, string> = { LANG: 'C', LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0' };
  for (const key of ['PATH', 'HOME', 'SSH_AUTH_SOCK', 'http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return {
    async raw(args) {
      // simple-git is loaded on the first git operation: an agent without git plugins never needs it.
      const { simpleGit } = await import('simple-git');
      return simpleGit({
        baseDir: opts.baseDir,
        config: protocolConfig(opts.allowLocalRepos),
        // Our own -c settings narrow what git may do; every other guard of simple-git stays on.
        unsafe: { allowUnsafeProtocolOverride: true, allowUnsafeSshCommand: true },
        allowEnvironment: ['GIT_TERMINAL_PROMPT'],
        abort: opts.signal,
        timeout: { block: opts.inactivityTimeoutMs },
      })
        .env(env)
        .raw(args);
    },
  };
};

export class PluginRepoCache {
  private readonly cacheDir: string;
  private readonly allowLocalRepos: boolean;
  private readonly gitTimeoutMs: number;
  private readonly log: Logger;
  private readonly gitFactory: GitFactory;
  /** Plugin folders with a clone or update in progress: one git operation per plugin at a time. */
  private readonly busy = new Set<string>();

  constructor(opts: PluginRepoCacheOptions) {
    if (!path.isAbsolute(opts.cacheDir)) throw new Error(`plugins cacheDir must be absolute, got ${JSON.stringify(opts.cacheDir)}`);
    if (!(opts.gitTimeoutSec > 0)) throw new Error(`gitTimeoutSec must be positive, got ${opts.gitTimeoutSec}`);
    this.cacheDir = opts.cacheDir;
    this.allowLocalRepos = opts.allowLocalRepos;
    this.gitTimeoutMs = opts.gitTimeoutSec * 1000;
    this.log = opts.logger;
    this.gitFactory = opts.gitFactory ?? simpleGitFactory;
  }

  dirOf(namespace: string, name: string): string {
    return pluginDir(this.cacheDir, namespace, name);
  }

  /**
   * Creates the cache folder (mode 0755: plugins run as another user must traverse it) and
   * removes temporary trees a crash left behind.
   */
  async prepare(): Promise<void> {
    await ensureTraversableDir(this.cacheDir);
    const namespaces = await readdir(this.cacheDir, { withFileTypes: true });
    for (const ns of namespaces) {
      if (!ns.isDirectory()) continue;
      const nsPath = path.join(this.cacheDir, ns.name);
      for (const entry of await readdir(nsPath, { withFileTypes: true })) {
        if (entry.isDirectory() && entry.name.startsWith(TMP_PREFIX)) {
          await rm(path.join(nsPath, entry.name), { recursive: true, force: true });
          this.log.info({ dir: path.join(nsPath, entry.name) }, 'removed a temporary plugin tree left by an earlier run');
        }
      }
    }
  }

  /** The cached clone, when its folder holds a plugin.sh; never touches the network. */
  async readCached(namespace: string, name: string): Promise<CachedClone | null> {
    const dir = this.dirOf(namespace, name);
    if (!(await isPluginTree(dir))) return null;
    const meta = await readMeta(dir);
    return { dir, url: meta?.url ?? null, commit: meta?.commit ?? null };
  }

  /**
   * Clones `url` (at `ref`, else the default branch) into the plugin's folder. A folder already
   * there (another URL) is replaced only once the new tree is complete, after `waitIdle`.
   */
  async clone(namespace: string, name: string, url: string, ref: string | undefined, op: RepoOpOptions = {}): Promise<CachedClone> {
    const checked = this.check(url, ref);
    const dir = this.dirOf(namespace, name);
    return this.exclusive(dir, async () => {
      const nsDir = namespaceDir(this.cacheDir, namespace);
      await ensureTraversableDir(this.cacheDir);
      await ensureTraversableDir(nsDir);
      const tmp = await mkdtemp(path.join(nsDir, `${TMP_PREFIX}${path.basename(dir)}-`));
      const deadline = abortScope(op.signal, this.gitTimeoutMs);
      const signal = deadline.signal;
      try {
        const tree = path.join(tmp, 'tree');
        await this.git(tmp, signal).raw(['clone', '--quiet', '--', checked.url, tree]).catch(gitFailure('git clone'));
        const git = this.git(tree, signal);
        const commit = checked.ref ? await this.resolveRef(git, checked.ref) : await revParse(git, 'HEAD');
        if (!commit) throw new PluginRepoError(checked.ref ? `ref ${JSON.stringify(checked.ref)} is not a branch, tag or commit of ${url}` : `${url} has no commits`);
        if (checked.ref) await git.raw(['reset', '--hard', '--quiet', commit, '--']).catch(gitFailure('git reset'));
        await this.finishTree(tree, url, commit);
        await swapInto(tree, dir, path.join(tmp, 'old'));
        await op.waitIdle?.();
        this.log.info({ namespace, plugin: name, url, commit }, 'plugin cloned');
        return { dir, url, commit };
      } catch (err) {
        throw asRepoError(err, signal, op.signal, this.gitTimeoutMs, 'clone');
      } finally {
        deadline.dispose();
        await rm(tmp, { recursive: true, force: true });
      }
    });
  }

  /**
   * Fetches and hard-resets a copy of the cached clone to the remote's default branch (or
   * `ref`), then swaps it in. On any failure the old tree stays, untouched, and the error says
   * why. `waitIdle` resolves when no run uses the old tree any more; it is removed after.
   */
  async update(namespace: string, name: string, url: string, ref: string | undefined, op: RepoOpOptions = {}): Promise<UpdateOutcome> {
    const checked = this.check(url, ref);
    const dir = this.dirOf(namespace, name);
    return this.exclusive(dir, async () => {
      if (!(await isPluginTree(dir))) throw new PluginRepoError(`plugin ${name} of namespace ${namespace} has no cached clone to update`);
      const from = (await readMeta(dir))?.commit ?? null;
      const tmp = await mkdtemp(path.join(path.dirname(dir), `${TMP_PREFIX}${path.basename(dir)}-`));
      const deadline = abortScope(op.signal, this.gitTimeoutMs);
      const signal = deadline.signal;
      try {
        const tree = path.join(tmp, 'tree');
        await cp(dir, tree, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
        const git = this.git(tree, signal);
        await git.raw(['remote', 'set-url', '--', 'origin', checked.url]).catch(gitFailure('git remote set-url'));
        await git.raw(['fetch', '--quiet', '--prune', '--force', '--tags', '--', 'origin']).catch(gitFailure('git fetch'));
        let to: string | null;
        if (checked.ref) {
          to = await this.resolveRef(git, checked.ref);
          if (!to) throw new PluginRepoError(`ref ${JSON.stringify(checked.ref)} is not a branch, tag or commit of ${url}`);
        } else {
          await git.raw(['remote', 'set-head', 'origin', '--auto']).catch(gitFailure('git remote set-head'));
          to = await revParse(git, 'refs/remotes/origin/HEAD');
          if (!to) throw new PluginRepoError(`${url} has no default branch`);
        }
        await git.raw(['cat-file', '-e', `${to}:plugin.sh`]).catch(() => {
          throw new PluginRepoError(`commit ${to.slice(0, 12)} has no plugin.sh at its root`);
        });
        if (to === from && (await readMeta(dir))?.url === checked.url) return { from, to, changed: false };
        await git.raw(['reset', '--hard', '--quiet', to, '--']).catch(gitFailure('git reset'));
        await git.raw(['clean', '-ffdxq']).catch(gitFailure('git clean'));
        await this.finishTree(tree, checked.url, to);
        await swapInto(tree, dir, path.join(tmp, 'old'));
        await op.waitIdle?.();
        this.log.info({ namespace, plugin: name, url, from, to }, 'plugin updated');
        return { from, to, changed: true };
      } catch (err) {
        const why = asRepoError(err, signal, op.signal, this.gitTimeoutMs, 'update');
        throw new PluginRepoError(`update failed, still running ${from ? from.slice(0, 12) : 'the old tree'}: ${why.message}`);
      } finally {
        deadline.dispose();
        await rm(tmp, { recursive: true, force: true });
      }
    });
  }

  private check(url: string, ref: string | undefined): { url: string; ref: string | undefined } {
    const u = checkRepoUrl(url, { allowLocalRepos: this.allowLocalRepos });
    if (!u.ok) throw new PluginRepoError(u.reason);
    if (ref === undefined) return { url: u.url, ref: undefined };
    const r = checkRef(ref);
    if (!r.ok) throw new PluginRepoError(r.reason);
    return { url: u.url, ref: r.ref };
  }

  private async exclusive<T>(dir: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(dir)) throw new PluginRepoError('a clone or update of this plugin is already in progress');
    this.busy.add(dir);
    try {
      return await fn();
    } finally {
      this.busy.delete(dir);
    }
  }

  private git(baseDir: string, signal: AbortSignal): GitClient {
    return this.gitFactory({
      baseDir,
      signal,
      inactivityTimeoutMs: this.gitTimeoutMs,
      allowLocalRepos: this.allowLocalRepos,
    });
  }

  /** A branch of the remote, else a tag, else a commit id. */
  private async resolveRef(git: GitClient, ref: string): Promise<string | null> {
    const candidates = [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`];
    if (/^[0-9a-f]{4,64}$/.test(ref)) candidates.push(ref);
    for (const candidate of candidates) {
      const sha = await revParse(git, candidate);
      if (sha) return sha;
    }
    return null;
  }

  /** plugin.sh present and inside the tree; the tree readable by the plugin user; metadata. */
  private async finishTree(tree: string, url: string, commit: string): Promise<void> {
    const script = path.join(tree, 'plugin.sh');
    let real: string;
    try {
      real = await realpath(script);
      if (!(await stat(real)).isFile()) throw new Error('not a file');
    } catch {
      throw new PluginRepoError(`the repo has no plugin.sh at its root (commit ${commit.slice(0, 12)})`);
    }
    const realTree = await realpath(tree);
    if (!real.startsWith(realTree + path.sep)) throw new PluginRepoError('plugin.sh is a link to a file outside the repo');
    await makeReadableByAll(tree);
    await writeFile(path.join(tree, '.git', META_FILE), `${JSON.stringify({ url, commit, at: new Date().toISOString() })}\n`);
  }
}

async function revParse(git: GitClient, rev: string): Promise<string | null> {
  // With --quiet an unknown name exits 1 without a message, which simple-git resolves as "".
  const out = await git.raw(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`]).catch(() => '');
  const sha = out.trim();
  return SHA.test(sha) ? sha : null;
}

async function isPluginTree(dir: string): Promise<boolean> {
  try {
    return (await stat(path.join(dir, 'plugin.sh'))).isFile();
  } catch {
    return false;
  }
}

async function readMeta(dir: string): Promise<{ url?: string; commit?: string } | null> {
  try {
    const meta = JSON.parse(await readFile(path.join(dir, '.git', META_FILE), 'utf8')) as unknown;
    if (meta === null || typeof meta !== 'object') return null;
    const m = meta as Record<string, unknown>;
    return {
      ...(typeof m.url === 'string' ? { url: m.url } : {}),
      ...(typeof m.commit === 'string' ? { commit: m.commit } : {}),
    };
  } catch {
    return null;
  }
}

/**
 * Moves `tree` to `dir`; an existing `dir` goes to `old` first. Both renames are synchronous so
 * nothing in this process can start a run in between; a run already going keeps its working
 * directory (the moved old tree) until it ends.
 */
async function swapInto(tree: string, dir: string, old: string): Promise<void> {
  const exists = await lstat(dir).then(
    () => true,
    () => false,
  );
  if (exists) renameSync(dir, old);
  try {
    renameSync(tree, dir);
  } catch (err) {
    if (exists) renameSync(old, dir);
    throw err;
  }
}

/** mkdir -p, then at least 0755 (mkdtemp and a 077 umask would lock the plugin user out). */
async function ensureTraversableDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const mode = (await stat(dir)).mode & 0o7777;
  if ((mode & 0o055) !== 0o055) await chmod(dir, mode | 0o755);
}

/** o+r on files, o+rx on folders and executables, so the plugin user can read its tree. */
async function makeReadableByAll(root: string): Promise<void> {
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    await addModeBits(dir, 0o055);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile()) {
        const mode = (await lstat(full)).mode;
        await addModeBits(full, mode & constants.S_IXUSR ? 0o055 : 0o044);
      }
    }
  }
}

async function addModeBits(file: string, bits: number): Promise<void> {
  const mode = (await lstat(file)).mode & 0o7777;
  if ((mode & bits) !== bits) await chmod(file, mode | bits);
}

/** Wraps a git rejection with the step's name and git's own last words. */
function gitFailure(step: string): (err: unknown) => never {
  return (err: unknown) => {
    if (err instanceof PluginRepoError) throw err;
    throw new PluginRepoError(`${step} failed: ${gitMessage(err)}`);
  };
}

function gitMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('Cloning into'));
  const fatal = lines.filter((l) => /^(fatal|error):/.test(l));
  const chosen = (fatal.length > 0 ? fatal : lines).join('; ');
  return JSON.stringify(chosen.length > 300 ? `${chosen.slice(0, 300)}…` : chosen);
}

function asRepoError(err: unknown, signal: AbortSignal, stop: AbortSignal | undefined, timeoutMs: number, what: string): PluginRepoError {
  if (stop?.aborted) return new PluginRepoError(`${what} stopped: the agent is shutting down`);
  if (signal.aborted) return new PluginRepoError(`${what} took longer than plugins.gitTimeoutSec (${timeoutMs / 1000} s)`);
  if (err instanceof PluginRepoError) return err;
  return new PluginRepoError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`);
}
