// Reads, substitutes, validates and resolves the config file. Errors are collected, not thrown
// one at a time, so an operator fixes every problem in one pass; each names its JSON path,
// what was found and what is expected.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeZodIssue } from './issues.ts';
import { configSchema, type AgentConfig } from './schema.ts';

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

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const configPath = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (err) {
    throw new ConfigError(configPath, [`cannot read the file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(configPath, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseConfig(raw, configPath, env);
}

/** Validates an already parsed config object; `configPath` anchors relative paths. */
export function parseConfig(raw: unknown, configPath: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const problems: string[] = [];
  const substituted = substituteEnv(raw, '$', env, problems);
  const parsed = configSchema.safeParse(substituted);
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
