// The file registry (the embedded default): one JSON file `{"hosts": {"<hostname>" | "*":
// {namespaces, checks, plugins}}}`, the same shapes as the HTTP registry. The exact host name
// wins over "*". A digest of the content serves as its ETag, so an unchanged file is cheap.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { RegistrySource, SourceAnswer } from './source.ts';
import { formatPath, type PollerKind } from './validate.ts';

export interface FileRegistrySourceOptions {
  /** Absolute path of the registry file. */
  file: string;
  hostname: string;
  maxAnswerBytes: number;
}

export class FileRegistrySource implements RegistrySource {
  readonly kind = 'file';
  readonly location: string;

  constructor(private readonly opts: FileRegistrySourceOptions) {
    if (!opts.file) throw new Error('FileRegistrySource: file is required');
    if (!opts.hostname) throw new Error('FileRegistrySource: hostname is required');
    this.location = opts.file;
  }

  async fetch(_kind: PollerKind, etag: string | null): Promise<SourceAnswer> {
    const buf = await this.read();
    const digest = `"sha256:${createHash('sha256').update(buf).digest('hex').slice(0, 32)}"`;
    if (etag === digest) return { status: 'not-modified' };
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf));
    } catch (err) {
      throw new Error(`${this.opts.file}: not valid JSON: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new Error(`${this.opts.file}: $: expected an object {"hosts": {…}}`);
    }
    const extra = Object.keys(doc).filter((k) => k !== 'hosts');
    if (extra.length > 0) throw new Error(`${this.opts.file}: $: unknown key${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
    const hosts = (doc as { hosts?: unknown }).hosts;
    if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) {
      throw new Error(`${this.opts.file}: $.hosts: required object is missing`);
    }
    const map = hosts as Record<string, unknown>;
    const key = Object.hasOwn(map, this.opts.hostname) ? this.opts.hostname : Object.hasOwn(map, '*') ? '*' : null;
    if (key === null) {
      throw new Error(`${this.opts.file}: $.hosts: no entry for host ${JSON.stringify(this.opts.hostname)} and no "*" entry`);
    }
    return { status: 'answer', body: map[key], at: formatPath('$', ['hosts', key]), etag: digest, keyRequired: false };
  }

  private async read(): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.opts.file, 'r');
    } catch (err) {
      throw new Error(`${this.opts.file}: cannot read the registry file: ${(err as Error).message}`);
    }
    try {
      const { size } = await fh.stat();
      if (size > this.opts.maxAnswerBytes) {
        throw new Error(`${this.opts.file}: ${size} bytes refused (registry.maxAnswerBytes = ${this.opts.maxAnswerBytes})`);
      }
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }
}
