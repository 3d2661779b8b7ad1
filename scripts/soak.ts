// `npm run soak -- --minutes N [--rate POSTS_PER_SEC] [--points N] [--sample-sec S]`: the whole
// pipeline under steady load for N minutes (test/soak/harness.ts), then its RSS and event-loop
// figures into BENCHMARKS.md (section "soak"). Exit 1 when points were lost or the agent failed.
import { parseArgs } from 'node:util';
import { machineLine, writeSection } from '../bench/lib.ts';
import { runSoak, soakMarkdown, type SoakOptions } from '../test/soak/harness.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '20' },
    points: { type: 'string', default: '25' },
    'sample-sec': { type: 'string', default: '' },
    'warmup-sec': { type: 'string', default: '' },
    'plugin-interval-sec': { type: 'string', default: '5' },
    influx: { type: 'string', default: '1.6' },
    'no-write': { type: 'boolean', default: false },
  },
});

const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  process.stderr.write(`--minutes must be a positive number, got ${values.minutes}\n`);
  process.exit(2);
}
const durationMs = minutes * 60_000;
const opts: SoakOptions = {
  durationMs,
  // Defaults scale with the run: a sample every 1/60 of it (5 s to 30 s), warm-up a fifth (at most 5 min).
  sampleEveryMs: values['sample-sec'] ? Number(values['sample-sec']) * 1000 : Math.min(30_000, Math.max(5000, durationMs / 60)),
  warmupMs: values['warmup-sec'] ? Number(values['warmup-sec']) * 1000 : Math.min(300_000, durationMs / 5),
  postsPerSec: Number(values.rate),
  pointsPerPost: Number(values.points),
  pluginIntervalSec: Number(values['plugin-interval-sec']),
  influxVersion: values.influx === '1.8' ? '1.8' : '1.6',
  log: (line) => process.stdout.write(`${line}\n`),
};

const result = await runSoak(opts);
const section = soakMarkdown(result, opts, machineLine());
if (!values['no-write']) writeSection('soak', section);
process.stdout.write(`${section}\n`);
const ok = result.pointsStored === result.pointsPosted && result.postsFailed === 0 && result.agentExitCode === 0;
process.exit(ok ? 0 : 1);
