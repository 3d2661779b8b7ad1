// `npm run test:unit`: the quick tier, the test files that need no server. A test file belongs to
// it unless it, or a file it imports (relative imports, followed transitively), imports one of
// SERVER_MODULES: the helpers that start nsqd, influxd or toxiproxy or run bin/agent, and the
// browser driver. A new test that uses them leaves the tier by itself; `npm test` runs every file
// (this tier included). `--list` prints the selection, one "unit"/"server" line per file.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The same files as scripts/test.sh runs: every *.test.ts under these folders. */
const TEST_DIRS = ['test', 'goplugins', 'src'];
/** Repository files (relative to the root) and packages that mean "needs a server or the agent process". */
const SERVER_MODULES = new Set(['test/helpers/servers.ts', 'test/helpers/toxiproxy.ts', 'test/helpers/agent-process.ts', 'playwright-core']);

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

function imports(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (spec === undefined) continue;
    found.push(spec.startsWith('.') ? path.relative(ROOT, path.resolve(ROOT, path.dirname(file), spec)) : spec);
  }
  return found;
}

/** The first server module `file` reaches, or undefined. */
function serverModuleOf(file: string, seen = new Set<string>()): string | undefined {
  if (seen.has(file)) return undefined;
  seen.add(file);
  for (const dep of imports(file)) {
    if (SERVER_MODULES.has(dep)) return dep;
    if (dep.startsWith('src/') || dep.startsWith('..') || !/\.(ts|mts|js|mjs)$/.test(dep)) continue;
    const hit = serverModuleOf(dep, seen);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/** A unit-tier file that names bin/agent itself would run the agent while escaping the rule. */
const BIN_AGENT = /['"/]bin\/agent['"]/;

const files = TEST_DIRS.flatMap((d) =>
  readdirSync(path.join(ROOT, d), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => path.join(d, f)),
).sort();
const unit = files.filter((f) => serverModuleOf(f) === undefined);
const stray = unit.filter((f) => BIN_AGENT.test(readFileSync(path.join(ROOT, f), 'utf8')));
if (stray.length > 0) {
  process.stderr.write(`${stray.join(', ')}: run bin/agent through test/helpers/agent-process.ts (AGENT_BIN, runAgent), so the file leaves the unit tier\n`);
  process.exit(2);
}

if (process.argv.includes('--list')) {
  for (const f of files) {
    const hit = serverModuleOf(f);
    process.stdout.write(hit === undefined ? `unit    ${f}\n` : `server  ${f} (${hit})\n`);
  }
  process.stdout.write(`${unit.length} unit, ${files.length - unit.length} server\n`);
} else {
  process.stdout.write(`== unit tests (${unit.length} of ${files.length} files)\n`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? '4'}`, '--test-timeout=300000', ...unit],
    // Tests run the agent from its sources (bin/agent would otherwise prefer a built dist/).
    { cwd: ROOT, stdio: 'inherit', env: { ...process.env, NS_AGENT_FROM_SOURCE: '1' } },
  );
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
