// Read-mostly routes: /health, /metrics (Prometheus text), /me/ns, /me/status, and /update
// (poll the registry now). Concurrent /update calls share one poll instead of stacking them.
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Registry } from 'prom-client';
import type { PollerStatus, RegistryView } from '../registry/types.ts';
import { sendOk } from './envelope.ts';

export interface InfoRoutesOptions {
  /** Absent in the relay role without a registry: /me/ns and /update are not mounted. */
  registry?: RegistryView;
  status(): Record<string, unknown>;
  metrics: Registry;
  auth: Middleware;
  body: Middleware;
}

export function mountInfoRoutes(router: Router, opts: InfoRoutesOptions): void {
  router.get('/health', (ctx) => {
    ctx.type = 'text/plain';
    ctx.body = 'ok';
  });

  router.get('/metrics', async (ctx) => {
    const text = await opts.metrics.metrics();
    ctx.type = opts.metrics.contentType;
    ctx.body = text;
  });

  const status = (ctx: Context) => {
    sendOk(ctx, opts.status());
  };
  router.get('/me/status', status);
  router.post('/me/status', status);

  const registry = opts.registry;
  if (!registry) return;
  const ns = (ctx: Context) => {
    sendOk(ctx, { namespaces: registry.current().namespaces, pollers: registry.status() });
  };
  router.get('/me/ns', ns);
  router.post('/me/ns', ns);

  let polling: Promise<PollerStatus[]> | undefined;
  const update = async (ctx: Context) => {
    polling ??= registry.pollNow().finally(() => {
      polling = undefined;
    });
    const pollers = await polling;
    sendOk(ctx, { namespaces: registry.current().namespaces, pollers });
  };
  router.get('/update', opts.auth, opts.body, update);
  router.post('/update', opts.auth, opts.body, update);
}
