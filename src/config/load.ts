// Reads, substitutes, validates and resolves the config file. Errors are collected, not thrown
// one at a time, so an operator fixes every problem in one pass; each names its JSON path,
// what was found and what is expected.
import { constants, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeZodIssue } from './issues.ts';
import { relayRoleConfigSchema, startRoleConfigSchema, type AgentConfig } from './schema.ts';

/** A validated config whose paths are absolute and whose derived defaults are filled in. */
export type ResolvedConfig = AgentConfig & {
  configPath: string;
  hostname: string;
  pidFile: string;
  nsq?: AgentConfig['nsq'] & { spool: { dir: string } };
  sender: AgentConfig['sender'] & { deadLetterDir: string; fileSink: { dir: string } };
};

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export interface ConfigReadOptions {
  /** A bigger file is refused: a config is a few KiB, not a place to stream data from. */
  maxBytes: number;
  /** A read that takes longer (a hung network mount) is given up, so a reload cannot hang. */
  timeoutMs: number;
}

export const CONFIG_READ_DEFAULTS: ConfigReadOptions = { maxBytes: 4 * 1024 * 1024, timeoutMs: 5000 };

/** What the config is checked for: `agent start` or `agent relay` (which always runs the relay). */
export type ConfigRole = 'agent' | 'relay';

/** The config, plus what `agent check` should warn about (nothing that stops the agent). */
export interface LoadedConfig {
  config: ResolvedConfig;
  warnings: string[];
}

export async function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: ConfigReadOptions = CONFIG_READ_DEFAULTS,
  role: ConfigRole = 'agent',
): Promise<ResolvedConfig> {
  return (await loadConfigFile(file, env, opts, role)).config;
}

export async function loadConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: ConfigReadOptions = CONFIG_READ_DEFAULTS,
  role: ConfigRole = 'agent',
): Promise<LoadedConfig> {
  const configPath = path.resolve(file);
  const { text, mode } = await readConfigText(configPath, opts);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(configPath, [`not valid JSON: ${(err as Error).message}`]);
  }
  const config = parseConfig(raw, configPath, env, role);
  const warnings: string[] = [];
  const exposed = literalSecrets(raw, '$');
  if ((mode & 0o044) !== 0 && exposed.length > 0) {
    warnings.push(
      `${configPath} is readable by other users (mode ${(mode & 0o777).toString(8).padStart(3, '0')}) and holds ${exposed.join(', ')} in clear: ` +
        `run "chmod 600 ${configPath}", or put the secret in an environment variable and write "\${NAME}"`,
    );
  }
  const dataMode = await stat(config.dataDir).then((s) => s.mode, () => undefined);
  if (dataMode !== undefined && (dataMode & 0o077) !== 0) {
    const fix = dataDirMode(config) === 0o700 ? '' : 'move plugins.cacheDir out of it (the plugin user must reach its clones), then ';
    warnings.push(
      `dataDir ${config.dataDir} is open to other users (mode ${(dataMode & 0o777).toString(8).padStart(3, '0')}), plugins included: ` +
        `${fix}run "chmod 700 ${config.dataDir}"`,
    );
  }
  return { config, warnings };
}

/**
 * The mode for a dataDir the agent creates: closed to other users (plugins run as one), unless
 * the plugin cache lies inside it, which the plugin user must traverse to reach its clones.
 */
export function dataDirMode(config: ResolvedConfig): number {
  const rel = path.relative(config.dataDir, config.plugins.cacheDir);
  const cacheInside = rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  return cacheInside ? 0o755 : 0o700;
}

/**
 * Reads the config off the event loop: the open does not block on a FIFO (O_NONBLOCK), anything
 * but a regular file is refused, and the read is bounded in bytes and time, so a SIGHUP with a
 * bad path cannot hang a running agent.
 */
async function readConfigText(configPath: string, opts: ConfigReadOptions): Promise<{ text: string; mode: number }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConfigError(configPath, [`reading the file took more than ${opts.timeoutMs / 1000} s; is it on a hung network mount?`])),
      opts.timeoutMs,
    );
  });
  try {
    return await Promise.race([readBounded(configPath, opts.maxBytes), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function readBounded(configPath: string, maxBytes: number): Promise<{ text: string; mode: number }> {
  const fail = (problem: string) => new ConfigError(configPath, [problem]);
  let fh;
  try {
    fh = await open(configPath, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw fail(`cannot read the file: ${(err as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw fail(`is ${fileKind(st)}, not a regular file; point -f at the JSON config file itself`);
    if (st.size > maxBytes) throw fail(`is ${st.size} bytes, more than the ${maxBytes} bytes a config may have; is -f the right file?`);
    // Read to the end rather than trust the size: the file may grow while it is read.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw fail(`is more than the ${maxBytes} bytes a config may have; is -f the right file?`);
      chunks.push(buf.subarray(0, bytesRead));
    }
    return { text: Buffer.concat(chunks).toString('utf8'), mode: st.mode };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw fail(`cannot read the file: ${(err as Error).message}`);
  } finally {
    await fh.close();
  }
}

function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}

/** Validates an already parsed config object; `configPath` anchors relative paths. */
export function parseConfig(raw: unknown, configPath: string, env: NodeJS.ProcessEnv = process.env, role: ConfigRole = 'agent'): ResolvedConfig {
  const problems: string[] = [];
  const substituted = substituteEnv(raw, '$', env, problems);
  const parsed = (role === 'relay' ? relayRoleConfigSchema : startRoleConfigSchema).safeParse(substituted);
  if (!parsed.success) problems.push(
      ...parsed.error.issues.map((i) => describeZodIssue(i, { unknownKeyHint: "check the spelling against the README's config reference" })),
    );
  if (problems.length > 0 || !parsed.success) throw new ConfigError(configPath, problems);
  return resolve(parsed.data, configPath);
}

function resolve(cfg: AgentConfig, configPath: string): ResolvedConfig {
  const base = path.dirname(configPath);
  const abs = (p: string) => path.resolve(base, p);
  const dataDir = abs(cfg.dataDir);
  return {
    ...cfg,
    configPath,
    hostname: cfg.hostname ?? os.hostname(),
    dataDir,
    pidFile: cfg.pidFile ? abs(cfg.pidFile) : path.join(dataDir, 'agent.pid'),
    log: { ...cfg.log, dir: abs(cfg.log.dir) },
    registry: { ...cfg.registry, file: abs(cfg.registry.file) },
    collect: { ...cfg.collect, hostRoot: abs(cfg.collect.hostRoot) },
    plugins: { ...cfg.plugins, cacheDir: abs(cfg.plugins.cacheDir) },
    nsq: cfg.nsq && {
      ...cfg.nsq,
      spool: { ...cfg.nsq.spool, dir: cfg.nsq.spool.dir ? abs(cfg.nsq.spool.dir) : path.join(dataDir, 'spool') },
    },
    sender: {
      ...cfg.sender,
      deadLetterDir: cfg.sender.deadLetterDir ? abs(cfg.sender.deadLetterDir) : path.join(dataDir, 'deadletter'),
      fileSink: {
        ...cfg.sender.fileSink,
        dir: cfg.sender.fileSink.dir ? abs(cfg.sender.fileSink.dir) : path.join(dataDir, 'lp'),
      },
    },
    http: { ...cfg.http, logDirs: cfg.http.logDirs.map(abs) },
  };
}

/** `${NAME}` and `${NAME:-default}` in string values, so secrets stay out of the file. */
function substituteEnv(value: unknown, at: string, env: NodeJS.ProcessEnv, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${at}: environment variable ${name} is not set (set it, or write "\${${name}:-default}")`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, `${at}[${i}]`, env, problems));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, `${at}.${k}`, env, problems)]),
    );
  }
  return value;
}

const SECRET_KEY = /token|password|secret/i;
const ENV_REF_ONLY = /^(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+$/;
const URL_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]+@/i;

/**
 * JSON paths of secrets written in clear in the raw file: secret-named keys (and URLs with a
 * password) whose value is not only "${NAME}" references; a "${NAME:-default}" default counts.
 */
function literalSecrets(value: unknown, at: string): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => literalSecrets(v, `${at}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const here = `${at}.${k}`;
    if (typeof v !== 'string') return literalSecrets(v, here);
    if (v === '' || ENV_REF_ONLY.test(v)) return [];
    return SECRET_KEY.test(k) || URL_PASSWORD.test(v) ? [here] : [];
  });
}

/** The config with secrets replaced, for `agent check` and `/me/status`. */
export function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && typeof v === 'string' ? '***' : maskSecrets(v)]),
    );
  }
  return value;
}
