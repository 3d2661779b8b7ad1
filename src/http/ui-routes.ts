// The operator's page: GET /ui (and / redirecting to it), its script and stylesheet, and
// /me/history, the ring of recent counters the page draws. The page only calls the existing
// JSON routes, so it sits behind the same origin, Host and token rules as any other caller.
// Assets are read from disk per request and never cached in memory: an agent nobody looks at
// pays nothing for them. A strict Content-Security-Policy keeps the page self-contained.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { HistorySnapshot } from '../status-history.ts';
import { sendOk } from './envelope.ts';

export interface UiRoutesOptions {
  /** The counters ring; absent: /me/history is not mounted and the page draws no sparklines. */
  history?: { snapshot(): HistorySnapshot };
  /** Folder holding index.html, ui.js and ui.css; default: found next to this module. */
  assetsDir?: string;
}

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const ASSETS: Record<string, { file: string; type: string }> = {
  '/ui': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/ui.js': { file: 'ui.js', type: 'text/javascript; charset=utf-8' },
  '/ui/ui.css': { file: 'ui.css', type: 'text/css; charset=utf-8' },
};

export function mountUiRoutes(router: Router, opts: UiRoutesOptions = {}): void {
  const dir = opts.assetsDir ?? findAssetsDir();
  router.get('/', (ctx) => {
    ctx.redirect('/ui');
  });
  for (const [route, asset] of Object.entries(ASSETS)) {
    router.get(route, async (ctx) => {
      const body = await readFile(`${dir}/${asset.file}`);
      secureHeaders(ctx);
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = asset.type;
      ctx.body = body;
    });
  }
  const history = opts.history;
  if (history) {
    router.get('/me/history', (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      sendOk(ctx, history.snapshot());
    });
  }
}

function secureHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', UI_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
}

/** From the sources (src/http/ui) or from the compiled tree (dist/src/http → src/http/ui). */
function findAssetsDir(): string {
  const candidates = [new URL('./ui/', import.meta.url), new URL('../../../src/http/ui/', import.meta.url)];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(`${dir}index.html`)) return dir.replace(/\/$/, '');
  }
  throw new Error('the /ui page assets (src/http/ui/index.html) are missing from this installation');
}
