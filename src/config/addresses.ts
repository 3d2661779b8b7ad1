// "host:port" strings as the config writes them: split, and tell loopback from the rest. Shared
// by the schema (which refuses an unsafe http.listen) and the HTTP server that binds it.

export function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
