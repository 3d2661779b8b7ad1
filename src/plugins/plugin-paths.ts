// Where a plugin lives in the plugins cache: <cacheDir>/<folder(namespace)>/<folder(name)>.
// Namespaces and names come from the registry, so they are mapped onto folder names that can
// never leave the cache: no "/", never "." or "..", never a leading "." (temporary and old trees
// use that), and distinct inputs always give distinct folders.
import { createHash } from 'node:crypto';
import path from 'node:path';

/** Longest folder name produced; far below the 255 bytes file systems allow. */
const MAX_FOLDER_CHARS = 120;
const KEEP = /[A-Za-z0-9_-]/;

/**
 * An injective map from any non-empty string to a safe folder name: letters, digits, "_" and "-"
 * stay, "." stays except in first position, every other byte becomes %XX (so "%" itself is
 * %25 and decoding gives the input back). Too long a result is cut and suffixed with "~" and
 * a SHA-256 prefix of the input; "~" never appears otherwise, so the two forms never collide.
 */
export function folderName(segment: string): string {
  if (segment === '') throw new Error('a namespace or plugin name must not be empty');
  let out = '';
  for (const ch of segment) {
    if (KEEP.test(ch) || (ch === '.' && out !== '')) {
      out += ch;
    } else {
      for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  if (out.length <= MAX_FOLDER_CHARS) return out;
  const hash = createHash('sha256').update(segment, 'utf8').digest('hex').slice(0, 16);
  return `${out.slice(0, MAX_FOLDER_CHARS - hash.length - 1)}~${hash}`;
}

/** The namespace's folder in the cache. */
export function namespaceDir(cacheDir: string, namespace: string): string {
  return contained(cacheDir, path.join(cacheDir, folderName(namespace)));
}

/** The plugin's folder (its cached clone): the working directory of its runs. */
export function pluginDir(cacheDir: string, namespace: string, name: string): string {
  return contained(cacheDir, path.join(cacheDir, folderName(namespace), folderName(name)));
}

/** Belt and braces: the mapping cannot escape, and this proves it at run time too. */
function contained(root: string, candidate: string): string {
  const rel = path.relative(path.resolve(root), path.resolve(candidate));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new Error(`refusing plugin folder ${JSON.stringify(candidate)}: it is not inside ${JSON.stringify(root)}`);
  }
  return candidate;
}
