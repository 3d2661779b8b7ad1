// `agent plugin test DIR`: runs a plugin folder once exactly as the agent would (bash plugin.sh
// as the plugin user, its timeout, output cap and process group), then prints the line protocol
// it would publish (stdout) and the run result (stderr, or everything as JSON with --json).
// Nothing is published: the real normaliser writes into a capturing publisher.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../goplugins/index.ts';
import { systemClock } from '../clock.ts';
import type { ResolvedConfig } from '../config/load.ts';
import { silentLogger } from '../log/logger.ts';
import { Normaliser } from '../points/normalise.ts';
import { Pipeline } from '../points/pipeline.ts';
import type { Publisher } from '../publish/publisher.ts';
import { paramsFromArgs } from '../plugins/builtin.ts';
import { createPluginRunner, type PluginTarget } from '../plugins/plugin-runner.ts';
import { checkRepoUrl } from '../plugins/repo-url.ts';
import { resolveRunAs } from '../plugins/run-as.ts';
import type { PluginRunResult } from '../plugins/types.ts';

export interface PluginTestOptions {
  /** The plugin folder (holding plugin.sh); or … */
  dir?: string;
  /** … the name of a built-in plugin. */
  builtin?: string;
  /** Namespace the run pretends to be in ($NS). */
  namespace: string;
  /** Plugin name; default: the folder's name (as a git project name would be). */
  name?: string;
  timeoutSec?: number;
  /** plugin.sh arguments, or key=value params of a built-in plugin. */
  params: string[];
  /** Print the whole result, lines included, as one JSON document on stdout. */
  json?: boolean;
}

export interface PluginTestIo {
  out(text: string): void;
  err(text: string): void;
}

/** Collects what would have been published, in order. */
class CapturingPublisher implements Publisher {
  readonly lines: string[] = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async publish(_namespace: string, lines: readonly string[]): Promise<void> {
    this.lines.push(...lines);
  }
  status(): Record<string, unknown> {
    return { lines: this.lines.length };
  }
}

/** Runs the plugin once; returns the exit code: 0 when the run succeeded, 1 otherwise. */
export async function runPluginTest(config: ResolvedConfig, opts: PluginTestOptions, io: PluginTestIo): Promise<number> {
  const publisher = new CapturingPublisher();
  const sink = new Pipeline({
    normaliser: new Normaliser({ hostname: config.hostname, clock: systemClock }),
    publisher,
    metrics: new Registry(),
    logger: silentLogger(),
  });
  let runAs = null;
  if (opts.dir !== undefined) {
    try {
      runAs = await resolveRunAs({ runAsUser: config.plugins.runAsUser, ...(config.plugins.runAsGroup ? { runAsGroup: config.plugins.runAsGroup } : {}) });
    } catch (err) {
      io.err(`cannot run plugins: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const runner = await createPluginRunner(config.plugins, { sink, logger: silentLogger(), clock: systemClock, runAs });
  const target = await buildTarget(opts);
  if ('usage' in target) {
    io.err(`${target.usage}\n`);
    return 2;
  }
  const timeoutSec = opts.timeoutSec ?? config.plugins.onDemandTimeoutSec;
  const result = await runner.run(target, { timeoutMs: timeoutSec * 1000 });
  if (opts.json) {
    io.out(`${JSON.stringify({ ...result, lines: publisher.lines }, null, 2)}\n`);
  } else {
    for (const line of publisher.lines) io.out(`${line}\n`);
    io.err(summary(result, runAs ? runAs.user : 'the current user'));
  }
  return result.success ? 0 : 1;
}

async function buildTarget(opts: PluginTestOptions): Promise<PluginTarget | { usage: string }> {
  if ((opts.dir === undefined) === (opts.builtin === undefined)) return { usage: 'name a plugin folder (agent plugin test DIR) or a built-in plugin (--builtin NAME), not both' };
  if (opts.builtin !== undefined) {
    const fn = Object.hasOwn(builtinPlugins, opts.builtin) ? builtinPlugins[opts.builtin] : undefined;
    if (!fn) return { usage: `no built-in plugin ${JSON.stringify(opts.builtin)}; there are: ${Object.keys(builtinPlugins).sort().join(', ')}` };
    let params: Record<string, unknown>;
    try {
      params = paramsFromArgs(opts.params);
    } catch (err) {
      return { usage: (err as Error).message };
    }
    return { kind: 'builtin', namespace: opts.namespace, name: opts.name ?? opts.builtin, fn, params };
  }
  const dir = path.resolve(opts.dir as string);
  const name = opts.name ?? path.basename(dir).replace(/\.git$/, '');
  const named = checkRepoUrl(`/${name}`, { allowLocalRepos: true });
  if (!named.ok) return { usage: `the plugin name ${JSON.stringify(name)} is not valid (use --name): ${named.reason}` };
  const base = { namespace: opts.namespace, name };
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) return { kind: 'unavailable', ...base, reason: `${dir} is not a folder` };
  const hasScript = await stat(path.join(dir, 'plugin.sh')).then((s) => s.isFile(), () => false);
  if (!hasScript) return { kind: 'unavailable', ...base, reason: `${dir} has no plugin.sh` };
  return { kind: 'git', ...base, dir, args: opts.params };
}

function summary(r: PluginRunResult, user: string): string {
  const lines = [
    `# ${r.success ? 'ok' : 'FAILED'}: ${r.namespace}/${r.name} as ${user}, ${r.durationMs.toFixed(1)} ms, exit ${r.exitCode ?? '-'}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ', timed out' : ''}`,
    `# metrics published: ${r.metricCount}${r.rejectedCount ? `, refused: ${r.rejectedCount}` : ''}`,
  ];
  if (r.error) lines.push(`# error: ${r.error}`);
  for (const rej of r.rejected ?? []) lines.push(`# refused metric [${rej.index}]: ${rej.reason}`);
  if (r.stderrTail.trim() !== '') lines.push('# stderr (last bytes):', ...r.stderrTail.trimEnd().split('\n').map((l) => `#   ${l}`));
  return `${lines.join('\n')}\n`;
}
