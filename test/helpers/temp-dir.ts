// Temp folders for tests: one per test (or file), removed by cleanup(). Mode 0755, since
// mkdtemp's 0700 would shut out plugins, which run as `nobody` when the tests run as root.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TempDir {
  dir: string;
  /** Removes the folder and everything in it; safe to call twice. */
  cleanup(): void;
}

/** A new folder `<tmp>/nsagent-<prefix>-XXXXXX` (or under `parent`). */
export function tempDir(prefix = 'test', parent = tmpdir()): TempDir {
  const dir = mkdtempSync(path.join(parent, `nsagent-${prefix.replace(/^ns-?agent-|-$/g, '')}-`));
  chmodSync(dir, 0o755);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 }) };
}
