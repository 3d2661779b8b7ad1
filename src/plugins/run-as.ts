// Which uid/gid plugins run as: the configured user (and group) when the agent is root, the
// agent's own identity otherwise. Names resolve through getent (so NSS users work), falling
// back to /etc/passwd and /etc/group. Also finds a folder the plugin user cannot traverse.
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

export interface RunAsIdentity {
  uid: number;
  gid: number;
  user: string;
  /** The user's home from the passwd entry, for $HOME. */
  home: string;
}

export interface RunAsOptions {
  runAsUser: string;
  runAsGroup?: string;
  /** The agent's uid; default process.getuid(). */
  agentUid?: number;
}

/** null: plugins run as the agent itself (it is not root). Throws when a name does not resolve. */
export async function resolveRunAs(opts: RunAsOptions): Promise<RunAsIdentity | null> {
  const agentUid = opts.agentUid ?? process.getuid?.() ?? -1;
  if (agentUid !== 0) return null;
  const pw = await lookup('passwd', opts.runAsUser);
  if (!pw) throw new Error(`plugins.runAsUser ${JSON.stringify(opts.runAsUser)} is not a user on this host (getent passwd)`);
  const [user = '', , uidText = '', gidText = '', , home = '/'] = pw;
  const uid = Number(uidText);
  let gid = Number(gidText);
  if (opts.runAsGroup !== undefined) {
    const gr = await lookup('group', opts.runAsGroup);
    if (!gr) throw new Error(`plugins.runAsGroup ${JSON.stringify(opts.runAsGroup)} is not a group on this host (getent group)`);
    gid = Number(gr[2]);
  }
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`malformed passwd entry for ${JSON.stringify(opts.runAsUser)}`);
  if (uid === 0) throw new Error(`plugins.runAsUser ${JSON.stringify(opts.runAsUser)} is root; plugins must not run as root`);
  return { uid, gid, user, home };
}

/** The colon-separated entry for a name or a numeric id. */
async function lookup(db: 'passwd' | 'group', key: string): Promise<string[] | null> {
  const viaGetent = await new Promise<string | null>((resolve) => {
    execFile('getent', [db, '--', key], { timeout: 5000 }, (err, stdout) => resolve(err ? null : stdout));
  });
  const text = viaGetent ?? (await readFile(`/etc/${db}`, 'utf8').catch(() => ''));
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 3 && (fields[0] === key || (/^\d+$/.test(key) && fields[2] === key))) return fields;
  }
  return null;
}

/**
 * The first folder from `/` down to `dir` that uid/gid may not traverse (no x bit for it), or
 * null. Plugins run with their folder as working directory, so every ancestor must let them in.
 */
export async function firstUntraversable(dir: string, uid: number, gid: number): Promise<string | null> {
  const parts = path.resolve(dir).split(path.sep).filter((p) => p !== '');
  let current: string = path.sep;
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) current = path.join(current, parts[i - 1] as string);
    let st;
    try {
      st = await stat(current);
    } catch {
      return null; // not there yet: it is created later with mode 0755
    }
    const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return current;
  }
  return null;
}
