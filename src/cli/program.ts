// The `agent` command line: start (foreground or --daemon), stop, status, check, relay, version.
// Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 `status`: not running (as
// LSB init scripts have it). Output for people goes to the CliOutput given (stdout/stderr by
// default) here and only here; main.ts is the entry that runs it.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import type { Agent } from '../agent.ts';
import { CONFIG_READ_DEFAULTS, ConfigError, dataDirMode, loadConfig, loadConfigFile, type ConfigRole, maskSecrets, type LoadedConfig, type ResolvedConfig } from '../config/load.ts';
import { createLogger } from '../log/logger.ts';
import { PACKAGE_ROOT, VERSION } from '../version.ts';
import { isAlive, readPidFile, removePidFile, writePidFile } from './pidfile.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUNNING = 3;

const DEFAULT_CONFIG = process.env.NS_AGENT_CONFIG ?? path.join(PACKAGE_ROOT, 'config', 'agent.example.json');

/** Where the command's text for people goes; tests pass their own to run commands in-process. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: CliOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

class ExitError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

function configOption(): Option {
  return new Option('-f, --config <file>', 'config file (JSON)').default(DEFAULT_CONFIG, '$NS_AGENT_CONFIG or config/agent.example.json');
}

async function load(file: string): Promise<ResolvedConfig> {
  return (await loadWithWarnings(file)).config;
}

async function loadWithWarnings(file: string, role: ConfigRole = 'agent'): Promise<LoadedConfig> {
  try {
    return await loadConfigFile(file, process.env, CONFIG_READ_DEFAULTS, role);
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(err.message, EXIT_USAGE);
    throw err;
  }
}

export function buildProgram(io: CliOutput = processOutput): Command {
  const program = new Command('agent')
    .description('ns-agent: host monitoring agent (registry-driven collections and plugins → NSQ → InfluxDB)')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();

  program
    .command('start')
    .description('run the agent in the foreground (or detached with --daemon)')
    .addOption(configOption())
    .option('--daemon', 'detach: start in the background and return once it runs')
    .action(async (opts: { config: string; daemon?: boolean }) => {
      const { config, warnings } = await loadWithWarnings(opts.config);
      if (opts.daemon) return startDaemon(config, io);
      await runForeground(config, 'agent', warnings);
    });

  program
    .command('relay')
    .description('run only the relay and gateway sender (a data centre gateway)')
    .addOption(configOption())
    .action(async (opts: { config: string }) => {
      const { config, warnings } = await loadWithWarnings(opts.config, 'relay');
      await runForeground(config, 'relay', warnings);
    });

  program
    .command('stop')
    .description('stop the running agent named by the pid file, and wait for it to exit')
    .addOption(configOption())
    .option('--pid-file <file>', 'pid file (default: from the config)')
    .option('--timeout <seconds>', 'how long to wait for the exit', '30')
    .action(async (opts: { config: string; pidFile?: string; timeout: string }) => {
      const pidFile = opts.pidFile ? path.resolve(opts.pidFile) : (await load(opts.config)).pidFile;
      await stopAgent(pidFile, Number(opts.timeout) * 1000, io);
    });

  program
    .command('status')
    .description("ask the running agent for its status (exit 3 when it is not running)")
    .addOption(configOption())
    .action(async (opts: { config: string }) => {
      await printStatus(await load(opts.config), io);
    });

  program
    .command('check')
    .description('validate the config (every rule `start` enforces) and print it resolved, secrets masked')
    .addOption(configOption())
    .option('--relay', 'check it for `agent relay` instead of `agent start`')
    .action(async (opts: { config: string; relay?: boolean }) => {
      const { config, warnings } = await loadWithWarnings(opts.config, opts.relay ? 'relay' : 'agent');
      io.out(`${JSON.stringify(maskSecrets(config), null, 2)}\n`);
      for (const w of warnings) io.err(`warning: ${w}\n`);
      io.err(`${config.configPath}: ok\n`);
    });

  program
    .command('plugin')
    .description('plugin tools')
    .command('test')
    .description('run a plugin folder (or --builtin NAME) once as the agent would; print its line protocol and the run result')
    .argument('[dir]', 'plugin folder holding plugin.sh')
    .addOption(configOption())
    .option('--builtin <name>', 'run a built-in plugin instead of a folder')
    .option('--ns <namespace>', 'namespace of the run ($NS)', 'plugin-test')
    .option('--name <name>', "plugin name (default: the folder's name)")
    .option('--timeout <seconds>', 'run timeout (default: plugins.onDemandTimeoutSec)')
    .option('--param <arg>', 'plugin.sh argument, or key=value for a built-in plugin (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'print the whole result (lines included) as JSON on stdout')
    .action(async (dir: string | undefined, opts: { config: string; builtin?: string; ns: string; name?: string; timeout?: string; param: string[]; json?: boolean }) => {
      const timeoutSec = opts.timeout === undefined ? undefined : Number(opts.timeout);
      if (timeoutSec !== undefined && !(timeoutSec > 0)) throw new ExitError(`--timeout must be a positive number of seconds, got ${opts.timeout}`, EXIT_USAGE);
      const { runPluginTest } = await import('./plugin-test.ts');
      const code = await runPluginTest(
        await load(opts.config),
        { dir, builtin: opts.builtin, namespace: opts.ns, name: opts.name, timeoutSec, params: opts.param, json: opts.json },
        io,
      );
      if (code !== EXIT_OK) throw new ExitError('', code);
    });

  program
    .command('version')
    .description('print the version')
    .action(() => {
      io.out(`${VERSION}\n`);
    });

  return program;
}

async function runForeground(config: ResolvedConfig, role: 'agent' | 'relay', warnings: string[]): Promise<void> {
  const pid = readPidFile(config.pidFile);
  if (pid.state === 'running' && pid.pid !== process.pid) {
    throw new ExitError(`already running as pid ${pid.pid} (pid file ${config.pidFile}); run "agent stop" first`, EXIT_FAILURE);
  }
  // Loaded here, not at the top: the commands that start nothing (check, status, stop) stay light.
  const agentModule = await import('../agent.ts');
  // Made before anything writes into it, so no part creates it open to the plugin user.
  mkdirSync(config.dataDir, { recursive: true, mode: dataDirMode(config) });
  const { logger, close, status: logStatus } = await createLogger(config.log, { foreground: !process.send, name: role });
  for (const w of warnings) logger.warn(w);
  if (pid.state === 'stale') logger.warn({ pidFile: config.pidFile, pid: pid.pid }, 'removing a stale pid file');
  // The pid file is claimed before the parts start, so "agent started" means it is there.
  writePidFile(config.pidFile, process.pid);
  let agent: Agent;
  try {
    agent = new agentModule.Agent({ config, logger, role, logStatus });
  } catch (err) {
    logger.fatal({ err }, 'agent failed to start');
    removePidFile(config.pidFile, process.pid);
    await close();
    throw new ExitError(`agent failed to start: ${(err as Error).message}`, EXIT_FAILURE);
  }

  // Signals are handled from before the first part starts: a signal during start waits for the
  // start to settle, then stops what started (never the default action, which would kill us).
  const starting = agent.start();
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting for the flush');
      removePidFile(config.pidFile, process.pid);
      process.exit(EXIT_FAILURE);
    }
    stopping = true;
    logger.info({ signal }, 'stopping: flushing, then exiting');
    starting
      .catch(() => undefined)
      .then(() => agent.stop())
      .then(
        () => {
          logger.info({ signal }, 'agent stopped');
          return EXIT_OK;
        },
        (err: unknown) => {
          logger.error({ err }, 'agent stopped with errors');
          return EXIT_FAILURE;
        },
      )
      .then(async (code) => {
        removePidFile(config.pidFile, process.pid);
        await close();
        process.exit(code);
      })
      .catch(() => process.exit(EXIT_FAILURE));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // The new config is read off the event loop (a FIFO or a hung mount must not stop the agent);
  // SIGHUPs that arrive during a read are folded into one more read after it.
  let reloading = false;
  let reloadAgain = false;
  const reload = async (): Promise<void> => {
    if (reloading) {
      reloadAgain = true;
      return;
    }
    reloading = true;
    try {
      do {
        reloadAgain = false;
        let next: ResolvedConfig;
        try {
          next = await loadConfig(config.configPath, process.env, CONFIG_READ_DEFAULTS, role);
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'SIGHUP: new config refused, keeping the running one');
          continue;
        }
        if (stopping) break;
        try {
          agent.reload(next);
        } catch (err) {
          logger.error({ err }, 'SIGHUP: applying the new config failed');
        }
      } while (reloadAgain && !stopping);
    } finally {
      reloading = false;
    }
  };
  process.on('SIGHUP', () => void reload());

  try {
    await starting;
  } catch (err) {
    if (stopping) return; // the signal handler finishes the exit
    logger.fatal({ err }, 'agent failed to start');
    removePidFile(config.pidFile, process.pid);
    await close();
    throw new ExitError(`agent failed to start: ${(err as Error).message}`, EXIT_FAILURE);
  }
  // --daemon: tell the parent we are up, then cut the tie so it can exit.
  if (process.send) {
    process.send({ started: true, pid: process.pid });
    process.disconnect?.();
  }
}

function startDaemon(config: ResolvedConfig, io: CliOutput): Promise<void> {
  const existing = readPidFile(config.pidFile);
  if (existing.state === 'running') {
    throw new ExitError(`already running as pid ${existing.pid} (pid file ${config.pidFile})`, EXIT_FAILURE);
  }
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'agent'), 'start', '-f', config.configPath], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  });
  return new Promise<void>((resolve, reject) => {
    child.once('message', (msg: { pid?: number }) => {
      io.out(`agent started in the background (pid ${msg.pid ?? child.pid}); logs in ${config.log.dir}\n`);
      child.unref();
      child.disconnect();
      resolve();
    });
    child.once('exit', (code) => {
      reject(new ExitError(`agent exited during start (code ${code}); see the logs in ${config.log.dir}`, EXIT_FAILURE));
    });
    child.once('error', (err) => reject(new ExitError(`cannot start the agent: ${err.message}`, EXIT_FAILURE)));
  });
}

async function stopAgent(pidFile: string, timeoutMs: number, io: CliOutput): Promise<void> {
  const state = readPidFile(pidFile);
  if (state.state === 'none') {
    io.out(`not running (no pid file at ${pidFile})\n`);
    return;
  }
  if (state.state === 'stale') {
    removePidFile(pidFile, state.pid ?? -1);
    io.out(`not running; removed the stale pid file ${pidFile} (pid ${state.pid ?? 'unreadable'})\n`);
    return;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  // The agent is not our child: there is no exit event to await, so poll its liveness.
  while (isAlive(state.pid)) {
    if (Date.now() > deadline) {
      throw new ExitError(`pid ${state.pid} is still running after ${timeoutMs / 1000} s; it may be flushing, or use kill -9`, EXIT_FAILURE);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  removePidFile(pidFile, state.pid);
  io.out(`stopped (pid ${state.pid})\n`);
}

async function printStatus(config: ResolvedConfig, io: CliOutput): Promise<void> {
  const state = readPidFile(config.pidFile);
  if (state.state !== 'running') {
    io.out(`${state.state === 'stale' ? `not running (stale pid file ${config.pidFile})` : 'not running'}\n`);
    throw new ExitError('', EXIT_NOT_RUNNING);
  }
  if (!config.http.enabled) {
    io.out(`running (pid ${state.pid}); the HTTP API is disabled, so no details\n`);
    return;
  }
  const url = `http://${config.http.listen}/me/status`;
  try {
    const res = await fetch(url, {
      headers: config.http.token ? { authorization: `Bearer ${config.http.token}` } : {},
      signal: AbortSignal.timeout(5000),
    });
    const body = await res.text();
    // The API answers {"ok":true,"data":…}; print what the agent said.
    io.out(`${res.ok ? JSON.stringify((JSON.parse(body) as { data?: unknown }).data ?? JSON.parse(body), null, 2) : body}\n`);
    if (!res.ok) throw new ExitError(`${url} answered ${res.status}`, EXIT_FAILURE);
  } catch (err) {
    if (err instanceof ExitError) throw err;
    throw new ExitError(`running (pid ${state.pid}) but ${url} did not answer: ${(err as Error).message}`, EXIT_FAILURE);
  }
}

/** Runs one command line to its end (a foreground start: until it stops) and answers its exit code. */
export async function main(argv: string[], io: CliOutput = processOutput): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are exits with code 0; anything else is a usage error
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof ExitError) {
      if (err.message) io.err(`${err.message}\n`);
      return err.code;
    }
    io.err(`agent: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT_FAILURE;
  }
}
