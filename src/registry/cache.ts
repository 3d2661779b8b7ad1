// The last good answer of each poller, kept on disk (<dataDir>/registry/<poller>.json) so an
// agent restarted while the registry is down still runs its namespaces. Written atomically
// (temp file + rename); read back through the same validation as a fresh answer.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { validateAnswer, type AnswerValue, type PollerKind } from './validate.ts';

export interface CachedAnswer<K extends PollerKind> {
  value: AnswerValue<K>;
  /** ETag the answer came with, reused only when the registry location is the same. */
  etag: string | null;
  savedAt: number;
}

interface CacheFile {
  version: 1;
  hostname: string;
  location: string;
  savedAt: number;
  etag: string | null;
  answer: Record<string, unknown>;
}

export type CacheLoad<K extends PollerKind> =
  | { status: 'loaded'; entry: CachedAnswer<K> }
  | { status: 'absent' }
  | { status: 'unusable'; reason: string };

export class RegistryCache {
  constructor(
    private readonly opts: {
      /** Folder of the cache files; created on the first save. */
      dir: string;
      hostname: string;
      /** Where answers come from now (URL or file); an ETag from elsewhere is not reused. */
      location: string;
    },
  ) {}

  fileFor(kind: PollerKind): string {
    return path.join(this.opts.dir, `${kind}.json`);
  }

  async load<K extends PollerKind>(kind: K): Promise<CacheLoad<K>> {
    const file = this.fileFor(kind);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'absent' };
      return { status: 'unusable', reason: `${file}: ${(err as Error).message}` };
    }
    let doc: CacheFile;
    try {
      doc = JSON.parse(text) as CacheFile;
    } catch (err) {
      return { status: 'unusable', reason: `${file}: not valid JSON: ${(err as Error).message}` };
    }
    if (doc?.version !== 1 || typeof doc.answer !== 'object' || doc.answer === null) {
      return { status: 'unusable', reason: `${file}: not a registry cache file of this version` };
    }
    // Another host's answer (a renamed host, a copied data folder) must never be run here.
    if (doc.hostname !== this.opts.hostname) {
      return { status: 'unusable', reason: `${file}: cached for host ${JSON.stringify(doc.hostname)}, not ${JSON.stringify(this.opts.hostname)}` };
    }
    const v = validateAnswer(kind, doc.answer, { at: '$.answer', keyRequired: true });
    if (!v.ok) return { status: 'unusable', reason: `${file}: ${v.problems.slice(0, 3).join('; ')}` };
    return {
      status: 'loaded',
      entry: {
        value: v.value,
        etag: doc.location === this.opts.location && typeof doc.etag === 'string' ? doc.etag : null,
        savedAt: typeof doc.savedAt === 'number' ? doc.savedAt : 0,
      },
    };
  }

  async save<K extends PollerKind>(kind: K, value: AnswerValue<K>, etag: string | null, savedAt: number): Promise<void> {
    const file = this.fileFor(kind);
    const doc: CacheFile = { version: 1, hostname: this.opts.hostname, location: this.opts.location, savedAt, etag, answer: { [kind]: value } };
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(doc)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  }
}
