// The built-in plugins by name: a registry entry's `builtin` picks one. A plugin is a folder
// goplugins/<name>/ (code, test, README) plus its one line here; nothing else changes.
import type { BuiltinPluginFn } from '../src/plugins/types.ts';
import { httpProbe } from './http_probe/index.ts';
import { promScrape } from './prom_scrape/index.ts';
import { tcpProbe } from './tcp_probe/index.ts';

export const builtinPlugins: Readonly<Record<string, BuiltinPluginFn>> = Object.freeze({
  http_probe: httpProbe,
  prom_scrape: promScrape,
  tcp_probe: tcpProbe,
});
