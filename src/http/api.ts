// The HTTP API's routes. Each route validates its input at the edge and answers JSON; the
// parts it drives are passed in, so the API holds no state of its own.
import Koa from 'koa';
import Router from '@koa/router';

export interface ApiDeps {
  status(): Record<string, unknown>;
}

export function createApi(deps: ApiDeps): Koa {
  const app = new Koa();
  const router = new Router();
  router.get('/health', (ctx) => {
    ctx.body = 'ok';
  });
  router.get('/me/status', (ctx) => {
    ctx.body = deps.status();
  });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}
