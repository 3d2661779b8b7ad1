// Plugin control routes, with the query strings of the agent this replaces (ns, repo = the full
// git URL or a built-in plugin's name, timeout in seconds, param), on GET and POST alike so
// existing scripts keep working. What happens is PluginControl's business; this file only
// validates, calls, and maps outcomes onto the envelope and their kinds onto status codes.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { PluginControl, PluginRefusal, PluginRefusalKind } from '../plugins/types.ts';
import { ApiError, sendOk } from './envelope.ts';
import { Params } from './params.ts';

export interface PluginRoutesOptions {
  plugins: PluginControl;
  /** Guards the mutating routes (bearer token). */
  auth: Middleware;
  /** Parses small form/JSON bodies of POSTs. */
  body: Middleware;
}

const MAX_PARAMS = 256;
// The plugin manager refuses longer on-demand runs too.
const MAX_TIMEOUT_SEC = 3600;

/** The status code of each refusal the plugin subsystem answers with. */
const STATUS_OF: Record<PluginRefusalKind, number> = {
  'bad-request': 400,
  'not-found': 404,
  busy: 409,
  'not-saved': 500,
  'git-failed': 502,
  'no-run-slot': 503,
};

function refusalError(refusal: PluginRefusal): ApiError {
  return new ApiError(STATUS_OF[refusal.kind], refusal.message);
}

export function mountPluginRoutes(router: Router, opts: PluginRoutesOptions): void {
  const { plugins, auth, body } = opts;
  const list = (ctx: Context) => {
    const ns = new Params(ctx).namespace(false);
    const all = plugins.list();
    sendOk(ctx, ns === undefined ? all : all.filter((p) => p.namespace === ns));
  };
  router.get('/plugins/list', body, list);
  router.post('/plugins/list', body, list);

  const simple = (op: 'update' | 'enable' | 'disable') => async (ctx: Context) => {
    const { ns, repo } = target(ctx);
    const outcome = await plugins[op](ns, repo);
    if (!outcome.ok) throw refusalError(outcome);
    sendOk(ctx, { namespace: ns, repo, message: outcome.message });
  };
  for (const op of ['update', 'enable', 'disable'] as const) {
    router.get(`/plugins/${op}`, auth, body, simple(op));
    router.post(`/plugins/${op}`, auth, body, simple(op));
  }

  const run = async (ctx: Context) => {
    const { ns, repo } = target(ctx);
    const p = new Params(ctx);
    const timeoutSec = p.integer('timeout', { min: 1, max: MAX_TIMEOUT_SEC, unit: 'seconds' });
    const params = runParams(p.all('param'));
    const outcome = await plugins.run(ns, repo, { timeoutSec, params });
    if (!outcome.ok) throw refusalError(outcome);
    sendOk(ctx, outcome.result);
  };
  router.get('/plugins/run', auth, body, run);
  router.post('/plugins/run', auth, body, run);
}

function target(ctx: Context): { ns: string; repo: string } {
  const p = new Params(ctx);
  return {
    ns: p.namespace(true, 'the namespace of the plugin, e.g. ns=web.prod'),
    repo: p.required('repo', "the plugin's git URL as the registry lists it (or a built-in plugin's name)"),
  };
}

/**
 * One `param` value is split on whitespace, as the replaced agent did (`param=-v 3` → two
 * arguments); several `param=` values are taken verbatim, one argument each, so an argument
 * may contain spaces. No `param` (or an empty one) means no arguments.
 */
export function runParams(values: readonly string[]): string[] | undefined {
  let params: string[];
  if (values.length === 0) return undefined;
  if (values.length === 1) params = (values[0] as string).split(/\s+/).filter((s) => s !== '');
  else params = [...values];
  if (params.length > MAX_PARAMS) throw new ApiError(400, `at most ${MAX_PARAMS} params are allowed, got ${params.length}`);
  return params.length === 0 ? undefined : params;
}
