// Decides whether a registry's plugin repo URL (and ref) may be handed to git at all, and which
// project name it gives the plugin. Pure string checks that run before any git process starts:
// git reads a "-"-leading argument as an option and a "transport::address" URL as a command.

export type RepoUrlCheck =
  | { ok: true; url: string; name: string; local: boolean }
  | { ok: false; reason: string };

export interface RepoUrlCheckOptions {
  /** file:// URLs and absolute local paths (plugins.allowLocalRepos). */
  allowLocalRepos: boolean;
}

const MAX_URL_CHARS = 1024;
/** Printable ASCII without space: anything else in a repo URL is a mistake or an attack. */
const PRINTABLE = /^[\x21-\x7e]+$/;
/** git's remote-helper syntax (ext::, fd::, anything::) hands the rest to a helper program. */
const TRANSPORT_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*::/;
/** scp-like "user@host:path"; git treats it so only when no "/" comes before the ":". */
const SCP_LIKE = /^([A-Za-z0-9._~-]+)@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(.+)$/;
const PROJECT_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/;

const ACCEPTED =
  'use https://host/path, ssh://[user@]host[:port]/path or user@host:path' +
  ' (file:// URLs and absolute paths only when plugins.allowLocalRepos is true)';

export function checkRepoUrl(url: unknown, opts: RepoUrlCheckOptions): RepoUrlCheck {
  if (typeof url !== 'string' || url === '') return refuse('the repo URL is empty');
  const shown = JSON.stringify(url.length > 120 ? `${url.slice(0, 120)}…` : url);
  if (url.length > MAX_URL_CHARS) return refuse(`repo URL ${shown} is longer than ${MAX_URL_CHARS} characters`);
  if (!PRINTABLE.test(url)) return refuse(`repo URL ${shown} holds spaces, control or non-ASCII characters`);
  if (url.startsWith('-')) return refuse(`repo URL ${shown} starts with "-", which git would read as an option`);
  if (TRANSPORT_PREFIX.test(url)) {
    return refuse(`repo URL ${shown} uses git's "transport::address" form (as ext:: and fd:: do), which runs commands; ${ACCEPTED}`);
  }
  if (hasTraversal(url)) return refuse(`repo URL ${shown} holds a ".." path segment`);

  let path: string;
  let local = false;
  const lower = url.toLowerCase();
  if (lower.startsWith('https://') || lower.startsWith('ssh://')) {
    const problem = checkHierarchical(url);
    if (problem) return refuse(`repo URL ${shown}: ${problem}`);
    path = new URL(url).pathname;
  } else if (lower.startsWith('file://')) {
    if (!opts.allowLocalRepos) return refuse(`repo URL ${shown} is local, and plugins.allowLocalRepos is false`);
    path = url.slice('file://'.length);
    if (!path.startsWith('/')) return refuse(`repo URL ${shown}: a file:// URL needs an absolute path (file:///srv/repo.git)`);
    local = true;
  } else if (url.startsWith('/')) {
    if (!opts.allowLocalRepos) return refuse(`repo URL ${shown} is a local path, and plugins.allowLocalRepos is false`);
    path = url;
    local = true;
  } else {
    const scp = SCP_LIKE.exec(url);
    if (!scp) return refuse(`repo URL ${shown} is not a form this agent accepts; ${ACCEPTED}`);
    const [, user = '', host = '', rest = ''] = scp;
    if (user.startsWith('-') || host.startsWith('-') || rest.startsWith('-')) {
      return refuse(`repo URL ${shown}: user, host and path must not start with "-" (ssh would read them as options)`);
    }
    path = rest;
  }
  if (/[?#]/.test(path)) return refuse(`repo URL ${shown}: no "?" or "#" in a repo path`);

  const name = projectName(path);
  if (name === '') return refuse(`repo URL ${shown} names no project (its path is empty)`);
  if (!PROJECT_NAME.test(name)) {
    return refuse(
      `repo URL ${shown} gives the project name ${JSON.stringify(name)}; a plugin name must be letters, digits, ".", "_" and "-" (at most 100, not starting with "." or "-")`,
    );
  }
  return { ok: true, url, name, local };
}

/** The git project name: the last path segment without a trailing ".git". */
export function projectName(path: string): string {
  const segments = path.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1] ?? '';
  return last.endsWith('.git') ? last.slice(0, -4) : last;
}

function checkHierarchical(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a valid URL';
  }
  if (parsed.hostname === '') return 'no host';
  if (parsed.hostname.startsWith('-')) return 'the host starts with "-" (ssh would read it as an option)';
  if (decodeURIComponent(parsed.username).startsWith('-')) return 'the user starts with "-" (ssh would read it as an option)';
  if (parsed.search !== '' || parsed.hash !== '') return 'no "?" or "#" in a repo URL';
  if (parsed.protocol === 'https:' && parsed.password !== '') return 'credentials do not belong in a repo URL (use a git credential helper)';
  return null;
}

/** ".." as a path segment, also percent-encoded, also with backslashes. */
function hasTraversal(url: string): boolean {
  let decoded = url;
  try {
    decoded = decodeURIComponent(url);
  } catch {
    // A malformed escape is checked below in its raw form.
  }
  return [url, decoded].some((s) => s.split(/[/\\:]/).some((seg) => seg === '..'));
}

/**
 * A branch, tag or commit to check out; refused when git could read it as an option or a
 * revision expression (`..`, `@{`, `^`, `~`, `:`), as check-ref-format does.
 */
export function checkRef(ref: unknown): { ok: true; ref: string } | { ok: false; reason: string } {
  if (typeof ref !== 'string' || ref === '') return { ok: false, reason: 'the ref is empty' };
  const shown = JSON.stringify(ref.slice(0, 120));
  if (ref.length > 200) return { ok: false, reason: `ref ${shown} is longer than 200 characters` };
  if (!/^[A-Za-z0-9_][A-Za-z0-9._/-]*$/.test(ref) || ref.includes('..') || ref.includes('//') || /[/.]$/.test(ref) || ref.endsWith('.lock')) {
    return { ok: false, reason: `ref ${shown} is not a plain branch, tag or commit name (letters, digits, ".", "_", "-", "/")` };
  }
  return { ok: true, ref };
}

function refuse(reason: string): RepoUrlCheck {
  return { ok: false, reason };
}
