// The agent's footprint beside a bare Node process and a plain bash loop, all measured from /proc
// in one run on the compiled agent (dist/, built first when missing or older than the sources):
//   1. a bare Node process (RSS after start);
//   2. the agent on config/agent.example.json (RSS settled, median of samples; VmHWM);
//   3. the agent with 100 trivial git plugins at 1 s: its own CPU (utime+stime) and its
//      children's CPU (cutime+cstime) per run, runs counted from /me/status, peak RSS (VmHWM);
//   4. a bash loop running the same plugin.sh as the plugin user: CPU per run of bash and its
//      children, the floor for what one run can cost.
// The machine is shared with other work: CPU figures are medians over several windows.
// `--quick`: shorter windows (for a smoke run).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/version.ts';
import { pluginRepo } from '../test/plugins/helpers.ts';
import { freePort } from '../test/helpers/servers.ts';
import { fmt, machineLine, parseProcStat, percentile, procCpu, procMem, type BenchContext } from './lib.ts';

const PLUGINS = 100;
const SCRIPT = `echo '[{"name":"trivial","value":1,"tags":{"k":"v"}}]'\n`;
const AGENT_BIN = path.join(PACKAGE_ROOT, 'bin', 'agent');
const MiB = 2 ** 20;

/** The first release's figures and Telegraf's, from FIELD-NOTES ("Telegraf side by side"). */
const BEFORE = { exampleRss: 75, tsxRss: 127, ownCpu: 3.55, withChildren: 6.3, children: 2.7, peakRss: 180 };
const TELEGRAF = { exampleRss: 25, ownCpu: 0.37, withChildren: 1.9, children: 1.55, peakRss: 30 };
const GOAL = { exampleRss: 55, ownCpu: 0.5, withChildren: 1.9, peakRss: 80 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

interface Stat {
  /** CPU ms of the process itself and of its waited-for children. */
  ownMs: number;
  childrenMs: number;
}

/** Live child processes of `pid` (the plugin launcher, plugins in flight). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** The agent's stat and that of its long-lived helpers (the plugin launcher): whatever lives through the window. */
function treeStat(pid: number): { agent: Stat; helpers: Map<number, Stat> } {
  const helpers = new Map<number, Stat>();
  for (const c of childPids(pid)) {
    try {
      if (readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('launcher-child')) helpers.set(c, procCpu(c));
    } catch {
      // ended
    }
  }
  return { agent: procCpu(pid), helpers };
}

/** Builds dist/ when it is missing or older than any source file. */
function ensureBuilt(log: (l: string) => void): void {
  const stamp = path.join(PACKAGE_ROOT, 'dist', '.tsbuildinfo');
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  const sources = Math.max(newest(path.join(PACKAGE_ROOT, 'src')), newest(path.join(PACKAGE_ROOT, 'goplugins')));
  if (built >= sources) return;
  log('building dist/ (npm run build)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
}

/** Polls `check` until it returns a value (no event exists for these conditions). */
async function until<T>(what: string, deadlineMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

interface RunningAgent {
  child: ChildProcess;
  pid: number;
  base: string;
  status(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Starts the compiled agent on `config` (written into `dir`) and waits for its HTTP API. */
async function startAgent(dir: string, config: Record<string, unknown>, port: number): Promise<RunningAgent> {
  const file = path.join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ ...config, http: { listen: `127.0.0.1:${port}` } }));
  const env = { ...process.env };
  delete env.NS_AGENT_FROM_SOURCE;
  const child = spawn(process.execPath, [AGENT_BIN, 'start', '-f', file], { env, stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const base = `http://127.0.0.1:${port}`;
  await until('the agent to answer /health', 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`the agent exited with ${child.exitCode}; see ${dir}`);
    return fetch(`${base}/health`).then((r) => (r.ok ? true : undefined), () => undefined);
  });
  return {
    child,
    pid: child.pid as number,
    base,
    status: async () => (await (await fetch(`${base}/me/status`)).json()) as Record<string, unknown>,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A bare Node process: RSS once it has started and settled. */
async function bareNode(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(1500);
    return procMem(child.pid as number).rss;
  } finally {
    child.kill('SIGKILL');
  }
}

function pluginsCounters(status: Record<string, unknown>): { runs: number; failedRuns: number; clones: number } {
  const p = (status.data ?? status) as Record<string, unknown>;
  const plugins = (p.plugins ?? {}) as Record<string, number>;
  return { runs: plugins.runs ?? 0, failedRuns: plugins.failedRuns ?? 0, clones: plugins.clones ?? 0 };
}

function pluginUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const [uid, gid] = ['-u', '-g'].map((o) => Number(execFileSync('id', [o, 'nobody'], { encoding: 'utf8' }).trim()));
  return { uid: uid as number, gid: gid as number };
}

/** `runs` runs of plugin.sh by one bash loop as the plugin user; CPU of the loop and its children. */
function bashLoop(dir: string, runs: number, ids: { uid: number; gid: number } | null): Promise<Stat> {
  // `$( … )` of a single command execs it in the forked subshell: one fork + exec per run, as
  // the agent does. The loop reads its own /proc stat at the end (cat is not yet waited for).
  const loop = `cd "$1" || exit 1; for ((i = 0; i < $2; i++)); do out=$(bash plugin.sh) || exit 1; done; cat /proc/$$/stat`;
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', NS: 'ns', PLUGIN_NAME: 'p', PLUGIN_TIMEOUT: '10', PLUGIN_DIR: dir, HOME: '/' };
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', loop, 'bash', dir, String(runs)], { env, stdio: ['ignore', 'pipe', 'inherit'], ...(ids ?? {}) });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bash loop exited ${code}`));
      resolve(parseProcStat(out));
    });
  });
}

export default async function bench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const windows = quick ? 3 : 5;
  const windowSec = quick ? 4 : 5;
  ensureBuilt(ctx.log);
  const root = mkdtempSync(path.join(tmpdir(), 'nsagent-bench-footprint-'));
  chmodSync(root, 0o755);
  try {
    // 1. bare Node
    const bare = median([await bareNode(), await bareNode(), await bareNode()]);
    ctx.log(`bare node: ${fmt(bare / MiB, 1)} MiB`);

    // 2. the example config (its registry file beside it; data under the temp folder)
    const example = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'config', 'agent.example.json'), 'utf8')) as Record<string, unknown>;
    const exampleRss: number[] = [];
    const exampleHwm: number[] = [];
    for (let round = 0; round < 3; round++) {
      const dir = path.join(root, `example${round}`);
      mkdirSync(dir, { mode: 0o755 });
      copyFileSync(path.join(PACKAGE_ROOT, 'config', 'registry.example.json'), path.join(dir, 'registry.example.json'));
      const agent = await startAgent(dir, { ...example, dataDir: 'data', log: { level: 'info', dir: 'data/log' }, plugins: { cacheDir: 'cache', allowLocalRepos: true } }, await freePort());
      try {
        // Past the first system collection (10 s interval) and the first checks.
        await sleep(quick ? 6000 : 11_000);
        const samples: number[] = [];
        for (let i = 0; i < 10; i++) {
          samples.push(procMem(agent.pid).rss);
          await sleep(300);
        }
        exampleRss.push(median(samples));
        exampleHwm.push(procMem(agent.pid).hwm);
      } finally {
        await agent.stop();
      }
    }
    const exRss = median(exampleRss);
    const exHwm = Math.max(...exampleHwm);
    ctx.log(`example config: ${fmt(exRss / MiB, 1)} MiB (peak ${fmt(exHwm / MiB, 1)})`);

    // 3. 100 trivial plugins at 1 s, each its own git repo (copies of one bare repo)
    const dir = path.join(root, 'plugins');
    mkdirSync(dir, { mode: 0o755 });
    const first = pluginRepo(dir, 'p0', SCRIPT).replace(/^file:\/\//, '');
    const urls: string[] = [];
    for (let i = 0; i < PLUGINS; i++) {
      const bare = path.join(dir, 'remotes', `p${i}.git`);
      if (i > 0) cpSync(first, bare, { recursive: true });
      urls.push(`file://${bare}`);
    }
    writeFileSync(
      path.join(dir, 'registry.json'),
      JSON.stringify({ hosts: { '*': { namespaces: ['bench.plugins'], plugins: { 'bench.plugins': urls.map((repo) => ({ repo, interval: 1 })) } } } }),
    );
    const agent = await startAgent(
      dir,
      {
        dataDir: 'data',
        log: { level: 'warn', dir: 'data/log' },
        registry: { source: 'file', file: 'registry.json' },
        plugins: { cacheDir: 'cache', allowLocalRepos: true },
      },
      await freePort(),
    );
    const own: number[] = [];
    const helperOwn: number[] = [];
    const withChildren: number[] = [];
    const children: number[] = [];
    let helperHwm = 0;
    const helperRss: number[] = [];
    let totalRuns = 0;
    let failed = 0;
    let hwm = 0;
    const rssSamples: number[] = [];
    try {
      await until(`${PLUGINS} clones`, 120_000, async () => (pluginsCounters(await agent.status()).clones >= PLUGINS ? true : undefined));
      // A few seconds for every plugin to find its place on the 1 s grid.
      await sleep(3000);
      for (let w = 0; w < windows; w++) {
        const t0 = treeStat(agent.pid);
        const s0 = t0.agent;
        const c0 = pluginsCounters(await agent.status());
        const end = Date.now() + windowSec * 1000;
        while (Date.now() < end) {
          rssSamples.push(procMem(agent.pid).rss);
          for (const pid of treeStat(agent.pid).helpers.keys()) helperRss.push(procMem(pid).rss);
          await sleep(250);
        }
        const t1 = treeStat(agent.pid);
        const s1 = t1.agent;
        const c1 = pluginsCounters(await agent.status());
        const runs = c1.runs - c0.runs;
        totalRuns += runs;
        failed += c1.failedRuns - c0.failedRuns;
        // A helper's CPU and that of the plugins it waited for, for helpers alive all the window.
        let hOwn = 0;
        let hChildren = 0;
        for (const [pid, b] of t1.helpers) {
          const a = t0.helpers.get(pid);
          if (!a) continue;
          hOwn += b.ownMs - a.ownMs;
          hChildren += b.childrenMs - a.childrenMs;
        }
        const agentOwn = s1.ownMs - s0.ownMs;
        const kids = s1.childrenMs - s0.childrenMs + hChildren;
        own.push(agentOwn / runs);
        helperOwn.push(hOwn / runs);
        children.push(kids / runs);
        withChildren.push((agentOwn + hOwn + kids) / runs);
        ctx.log(`window ${w + 1}: ${runs} runs, agent ${fmt(own.at(-1) as number, 2)} ms/run, launcher ${fmt(helperOwn.at(-1) as number, 2)}, plugins ${fmt(children.at(-1) as number, 2)} ms/run`);
      }
      hwm = procMem(agent.pid).hwm;
      for (const pid of treeStat(agent.pid).helpers.keys()) helperHwm += procMem(pid).hwm;
    } finally {
      await agent.stop();
    }

    // 4. the same plugin.sh in a bash loop, as the same user
    const ids = pluginUser();
    const cloned = path.join(dir, 'loop');
    execFileSync('git', ['clone', '--quiet', first, cloned]);
    chmodSync(cloned, 0o755);
    const loopRuns = quick ? 200 : 500;
    await bashLoop(cloned, 20, ids);
    const loop: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await bashLoop(cloned, loopRuns, ids);
      loop.push((s.ownMs + s.childrenMs) / loopRuns);
    }
    const loopMs = median(loop);
    ctx.log(`bash loop: ${fmt(loopMs, 2)} ms/run`);

    const ownMs = median(own);
    const launcherMs = median(helperOwn);
    const allMs = median(withChildren);
    const childMs = median(children);
    const met = (v: number, goal: number) => (v <= goal ? 'met' : '**not met**');
    const mib = (b: number) => `${fmt(b / MiB, 1)} MiB`;
    return [
      '## Footprint: memory and CPU per plugin run',
      '',
      `${machineLine()}${quick ? ' — **quick run**' : ''}. Compiled agent (dist/), figures from /proc. The machine is shared with other work (2 cores): CPU figures are medians of ${windows} windows of ${windowSec} s (${fmt(totalRuns)} plugin runs, ${fmt(failed)} failed), RSS the median of samples.`,
      '',
      '| figure | first release | now | Telegraf | goal | |',
      '|---|---:|---:|---:|---:|---|',
      `| RSS, bare Node process | | ${mib(bare)} | | | reference |`,
      `| RSS, example config, compiled (peak) | ${BEFORE.exampleRss} MiB | ${mib(exRss)} (${mib(exHwm)}) | ${TELEGRAF.exampleRss} MiB | ≤ ${GOAL.exampleRss} MiB | ${met(exRss / MiB, GOAL.exampleRss)} |`,
      `| RSS, \`npm start\` on a fresh clone | ${BEFORE.tsxRss} MiB | same as compiled (it builds dist/ and runs it) | | same as compiled | met |`,
      `| own CPU per plugin run (${PLUGINS} plugins at 1 s): agent + plugin launcher | ${BEFORE.ownCpu} ms | ${fmt(ownMs + launcherMs, 2)} ms (${fmt(ownMs, 2)} + ${fmt(launcherMs, 2)}) | ${TELEGRAF.ownCpu} ms | ≤ ${GOAL.ownCpu} ms | ${met(ownMs + launcherMs, GOAL.ownCpu)} |`,
      `| CPU per plugin run with its children | ${BEFORE.withChildren} ms | ${fmt(allMs, 2)} ms | ${TELEGRAF.withChildren} ms | ≤ ${GOAL.withChildren} ms | ${met(allMs, GOAL.withChildren)} |`,
      `| plugin processes alone, per run | ${BEFORE.children} ms | ${fmt(childMs, 2)} ms | ${TELEGRAF.children} ms | | |`,
      `| bash loop running the same plugin.sh, per run | | ${fmt(loopMs, 2)} ms | | | floor |`,
      `| CPU per run with children ÷ bash loop (steadier on a busy machine) | 3.9× (5.56 / 1.44 ms: direct start, run just before) | ${fmt(allMs / loopMs, 2)}× | | | |`,
      `| peak RSS with ${PLUGINS} plugins at 1 s: agent + launcher (medians while running) | ${BEFORE.peakRss} MiB | ${mib(hwm)} (${mib(median(rssSamples))}) + ${mib(helperHwm)} (${mib(median(helperRss))}) | ${TELEGRAF.peakRss} MiB | ≤ ${GOAL.peakRss} MiB | ${met((hwm + helperHwm) / MiB, GOAL.peakRss)} |`,
      '| peak RSS, relay at full speed (1M points, TLS, gzip) | 321 MiB | see "gateway" and "relay memory" in BENCHMARKS.md | 236 MiB | ≤ 160 MiB | |',
      postRow(),
      '',
      `Plugins: \`${SCRIPT.trim()}\`, each its own git repo (file://), run as \`${ids ? 'nobody' : 'the bench user'}\`. "Own CPU" is the utime+stime of the agent and of its plugin launcher (the small process that forks the plugins), "plugin processes" the cutime+cstime of both (the processes they waited for), all divided by the runs counted in /me/status. The bash loop runs \`out=$(bash plugin.sh)\` back to back as the same user (${loopRuns} runs, median of 3). Telegraf and first-release figures: FIELD-NOTES, "Telegraf side by side".`,
    ].join('\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * The POST /post row: too long to measure here, it quotes the ingest bench's last figure (its
 * separate-process phases, in BENCHMARKS.md) and points there.
 */
function postRow(): string {
  const text = existsSync(path.join(PACKAGE_ROOT, 'BENCHMARKS.md')) ? readFileSync(path.join(PACKAGE_ROOT, 'BENCHMARKS.md'), 'utf8') : '';
  const m = /Line protocol, stamped from the body's text: ([\d,]+) points\/s at ([\d.]+) CPU s per million points/.exec(text);
  const goal = '≥ 300k/s, ≤ 3 CPU s per M';
  if (!m) return `| \`POST /post\` line protocol | 110k points/s, 10.2 CPU s per M | see the ingest bench | 13k/s delivered | ${goal} | |`;
  const rate = Number((m[1] as string).replace(/,/g, ''));
  const cpu = Number(m[2]);
  const met = rate >= 300_000 && cpu <= 3 ? 'met' : '**not met**';
  return `| \`POST /post\` line protocol (ingest bench, load generator in its own process) | 110k points/s, 10.2 CPU s per M | ${fmt(rate)} points/s, ${fmt(cpu, 2)} CPU s per M | 13k/s delivered | ${goal} | ${met} |`;
}
