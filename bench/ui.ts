// What the /ui page costs an agent nobody is looking at: the real agent (compiled, example-like
// config: file registry, two namespaces, system stats and checks every 10 s, in-process sender
// writing files) with http.ui.enabled false and true, runs alternating, RSS and CPU read from
// /proc/<pid>. Then the same agent with the page open in Chromium, for scale.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/version.ts';
import { freePort } from '../test/helpers/servers.ts';
import { fmt, machineLine, procCpuMs, procMem, type BenchContext } from './lib.ts';

interface Sample {
  rssMiB: number;
  cpuMsPerMin: number;
}

/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat on Linux. */
/** Compiles the agent into a temp folder (as `npm run build` would) and returns its entry. */
function buildCompiled(): { main: string; root: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'nsagent-bench-ui-build-'));
  // package.json locates the package root, src/ holds the page's files, node_modules the deps.
  for (const f of ['package.json', 'node_modules', 'src']) symlinkSync(path.join(PACKAGE_ROOT, f), path.join(root, f));
  const tsc = path.join(PACKAGE_ROOT, 'node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(PACKAGE_ROOT, 'tsconfig.build.json'), '--outDir', path.join(root, 'dist')], { stdio: 'inherit' });
  return { main: path.join(root, 'dist/src/cli/main.js'), root };
}

async function startAgent(main: string, ui: boolean): Promise<{ child: ChildProcess; url: string; dir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsagent-bench-ui-'));
  writeFileSync(
    path.join(dir, 'registry.json'),
    JSON.stringify({
      hosts: { '*': { namespaces: ['bench.web', 'bench.infra'], checks: { 'bench.web': { processes: [{ name: 'node' }] }, 'bench.infra': { ports: [{ port: 22 }] } } } },
    }),
  );
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'agent.json'),
    JSON.stringify({
      dataDir: 'data',
      log: { level: 'info', dir: 'log', pretty: 'always' },
      registry: { source: 'file', file: 'registry.json' },
      collect: { systemIntervalSec: 10, checksIntervalSec: 10 },
      http: { listen: `127.0.0.1:${port}`, ui: { enabled: ui } },
    }),
  );
  const child = spawn(process.execPath, [main, 'start', '-f', path.join(dir, 'agent.json')], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (/agent started/.test(out)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', () => reject(new Error(`agent exited: ${out.slice(-2000)}`)));
  });
  return { child, url: `http://127.0.0.1:${port}`, dir };
}

async function stopAgent(a: { child: ChildProcess; dir: string }): Promise<void> {
  const exited = new Promise((r) => a.child.once('exit', r));
  a.child.kill('SIGTERM');
  await exited;
  rmSync(a.dir, { recursive: true, force: true });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(main: string, ui: boolean, settleMs: number, windowMs: number, whileOpen?: (url: string) => Promise<() => Promise<void>>): Promise<Sample> {
  const a = await startAgent(main, ui);
  const pid = a.child.pid as number;
  const close = whileOpen ? await whileOpen(a.url) : undefined;
  await sleep(settleMs);
  const cpu0 = procCpuMs(pid);
  await sleep(windowMs);
  const cpuMsPerMin = ((procCpuMs(pid) - cpu0) * 60_000) / windowMs;
  const rssMiB = procMem(pid).rss / 2 ** 20;
  await close?.();
  await stopAgent(a);
  return { rssMiB, cpuMsPerMin };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export default async function uiBench(ctx: BenchContext): Promise<string> {
  const quick = ctx.args.includes('--quick');
  const rounds = quick ? 1 : 3;
  const settleMs = quick ? 5_000 : 15_000;
  const windowMs = quick ? 10_000 : 60_000;
  ctx.log('ui: compiling the agent');
  const build = buildCompiled();
  const main = build.main;
  const off: Sample[] = [];
  const on: Sample[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const ui of [false, true]) {
      const s = await measure(main, ui, settleMs, windowMs);
      (ui ? on : off).push(s);
      ctx.log(`ui ${ui ? 'on ' : 'off'}: ${fmt(s.rssMiB, 1)} MiB RSS, ${fmt(s.cpuMsPerMin, 0)} ms CPU per minute`);
    }
  }

  let open: Sample | undefined;
  if (existsSync('/usr/bin/chromium')) {
    const { launchChromium } = await import('../test/ui/browser.ts');
    const browser = await launchChromium();
    try {
      open = await measure(main, true, settleMs, windowMs, async (url) => {
        const page = await browser.newPage();
        await page.goto(`${url}/ui`);
        return () => page.close();
      });
      ctx.log(`page open: ${fmt(open.rssMiB, 1)} MiB RSS, ${fmt(open.cpuMsPerMin, 0)} ms CPU per minute`);
    } finally {
      await browser.close();
    }
  }

  rmSync(build.root, { recursive: true, force: true });
  const rOff = median(off.map((s) => s.rssMiB));
  const rOn = median(on.map((s) => s.rssMiB));
  const cOff = median(off.map((s) => s.cpuMsPerMin));
  const cOn = median(on.map((s) => s.cpuMsPerMin));
  const spread = (xs: Sample[], k: keyof Sample, digits: number) => `${fmt(Math.min(...xs.map((s) => s[k])), digits)}–${fmt(Math.max(...xs.map((s) => s[k])), digits)}`;
  const cpuSpread = Math.max(...[off, on].map((xs) => Math.max(...xs.map((x) => x.cpuMsPerMin)) - Math.min(...xs.map((x) => x.cpuMsPerMin))));
  const rows = [
    `| http.ui.enabled false | ${fmt(rOff, 1)} MiB (${spread(off, 'rssMiB', 1)}) | ${fmt(cOff, 0)} ms (${spread(off, 'cpuMsPerMin', 0)}) |`,
    `| http.ui.enabled true, nobody looking | ${fmt(rOn, 1)} MiB (${spread(on, 'rssMiB', 1)}) | ${fmt(cOn, 0)} ms (${spread(on, 'cpuMsPerMin', 0)}) |`,
  ];
  if (open) rows.push(`| true, the page open in Chromium (polls every 2 s) | ${fmt(open.rssMiB, 1)} MiB | ${fmt(open.cpuMsPerMin, 0)} ms |`);
  return [
    '## ui: what the /ui page costs an idle agent',
    '',
    'The real agent, compiled (as `npm start` runs it), on an example-like config: file registry,',
    `two namespaces, system stats and checks every 10 s, in-process sender writing files. RSS and CPU (user + system)`,
    `from /proc/<pid> after ${settleMs / 1000} s, CPU over the next ${windowMs / 1000} s; median of ${rounds} alternating runs (range in brackets).`,
    `Machine: ${machineLine()}.`,
    '',
    '| agent | RSS | CPU per minute |',
    '|---|---:|---:|',
    ...rows,
    '',
    `Difference with nobody looking: ${fmt(rOn - rOff, 1)} MiB RSS (target: under 5 MiB; ${rOn - rOff < 5 ? 'met' : 'not met'}) and`,
    `${fmt(cOn - cOff, 0)} ms CPU per minute, ${Math.abs(cOn - cOff) <= cpuSpread ? 'inside' : 'beyond'} the ${fmt(cpuSpread, 0)} ms spread between runs of the same config`,
    `(target: no measurable CPU; ${Math.abs(cOn - cOff) <= cpuSpread ? 'met' : 'not met'}). The ring samples /me/status every 10 s (at most 200 series × 90`,
    "samples of 8 bytes, 144 KB) and the page's files are read from disk only when asked for.",
  ].join('\n');
}
