// Where registry answers come from: the HTTP registry or the file registry, one interface.
// A source fetches raw JSON and says where in it the host's part sits; validation, caching
// and the "last good answer stays" rule belong to the poller, the same for both.
import type { PollerKind } from './validate.ts';

export type SourceAnswer =
  | {
      status: 'answer';
      /** The host's part: the HTTP endpoint's body, or the file's `hosts.<name>` entry. */
      body: unknown;
      /** JSON path of `body` in what was read, for error messages. */
      at: string;
      /** Sent back as If-None-Match next time (HTTP ETag; file: a digest of its content). */
      etag: string | null;
      /** Whether the poller's key must be present (HTTP) or may be left out (file). */
      keyRequired: boolean;
    }
  | { status: 'not-modified' };

export interface RegistrySource {
  /** "http://registry/…" or the file's path, for logs and /me/status. */
  readonly location: string;
  readonly kind: 'http' | 'file';
  /** Rejects with an Error whose message is a sentence an operator can act on. */
  fetch(kind: PollerKind, etag: string | null): Promise<SourceAnswer>;
}
