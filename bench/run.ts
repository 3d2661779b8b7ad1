// `npm run bench -- NAME [args]` runs bench/NAME.ts; with no name, every bench in turn. Each
// bench returns its Markdown section (absolute figures and ratios against a baseline measured
// in the same run), which is written into BENCHMARKS.md.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSection, type Bench } from './lib.ts';

const dir = path.dirname(fileURLToPath(import.meta.url));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f))
  .map((f) => f.slice(0, -3))
  .sort();
const [name, ...args] = process.argv.slice(2);
const names = name ? [name] : all;
for (const n of names) {
  if (!all.includes(n)) {
    process.stderr.write(`no bench "${n}"; there are: ${all.join(', ')}\n`);
    process.exit(2);
  }
  const mod = (await import(path.join(dir, `${n}.ts`))) as { default: Bench };
  process.stdout.write(`== bench ${n}\n`);
  const section = await mod.default({ args, log: (l) => process.stdout.write(`${l}\n`) });
  writeSection(n, section);
  process.stdout.write(`${section}\n`);
}
process.exit(0);
