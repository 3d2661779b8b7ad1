// Runs the real `bin/agent` as a child process for CLI and end-to-end tests: a temp folder with
// its config, stdout lines awaited as events, and a guaranteed kill when the test ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './servers.ts';

export const AGENT_BIN = fileURLToPath(new URL('../../bin/agent', import.meta.url));

export interface AgentRun {
  child: ChildProcess;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the first line matching `re` (already printed or still to come). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Writes `config` as agent.json in `dir` and returns its path. */
export function writeConfig(dir: string, config: unknown, name = 'agent.json'): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/**
 * The smallest config an agent starts on: a file registry (`registry`, written to
 * registry.json; no namespace unless given), logs and data in `dir`, HTTP on a free loopback
 * port; `extra` adds or replaces top-level sections (its `http` is laid over the listen address).
 */
export async function minimalAgentConfig(dir: string, extra: Record<string, unknown> = {}, registry: unknown = { hosts: { '*': { namespaces: [] } } }) {
  const port = await freePort();
  writeFileSync(path.join(dir, 'registry.json'), JSON.stringify(registry));
  const { http, ...rest } = extra;
  return {
    port,
    config: {
      dataDir: 'data',
      log: { level: 'info', dir: 'log', pretty: 'always' },
      registry: { source: 'file', file: 'registry.json' },
      ...rest,
      http: { listen: `127.0.0.1:${port}`, ...(http as Record<string, unknown> | undefined) },
    },
  };
}

export function runAgent(args: string[], env: NodeJS.ProcessEnv = {}): AgentRun {
  const child = spawn(process.execPath, [AGENT_BIN, ...args], {
    env: { ...process.env, NS_AGENT_FROM_SOURCE: '1', ...env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters = new Set<{ re: RegExp; resolve: (l: string) => void }>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    for (const w of waiters) {
      const line = out.split('\n').find((l) => w.re.test(l));
      if (line !== undefined) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  running.add(child);
  void exited.then(() => running.delete(child));
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      const line = out.split('\n').find((l) => re.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise<string>((resolve, reject) => {
        const w: { re: RegExp; resolve: (l: string) => void } = { re, resolve };
        waiters.add(w);
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${out.slice(-4000)}`));
        }, timeoutMs);
        const done = (l: string) => {
          clearTimeout(timer);
          resolve(l);
        };
        w.resolve = done;
        void exited.then(() => {
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(timer);
          reject(new Error(`agent exited before printing ${re}; output:\n${out.slice(-4000)}`));
        });
      });
    },
  };
}

/** Runs a short command (check, stop, status, version) to its end. */
export async function agentCommand(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const run = runAgent(args, env);
  const { code } = await run.exited;
  return { code, output: run.output() };
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});
