// How the built-in probes name a failed connection or request: one word per cause, written as a
// tag (`result`, `error`), so a dashboard can tell a refused port from a bad certificate. Shared
// by http_probe, prom_scrape and tcp_probe so the same failure reads the same in all of them.

export type NetFailure = 'timeout' | 'connection_refused' | 'dns_error' | 'tls_error' | 'connection_failed';

/**
 * TLS failures by `err.code`: Node's own (ERR_TLS_…, ERR_SSL_…) and OpenSSL's certificate checks
 * (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE for a
 * certificate from a CA the probe does not trust, INVALID_CA, …). An untrusted certificate is a
 * TLS failure: the connection was made, the server was not believed.
 */
const TLS_CODE = /CERT|CRL|TLS|SSL|UNABLE_TO_|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH_EXCEEDED/;

/** The cause of a network error, from its name (aborts) or its code. */
export function classifyNetError(err: unknown): NetFailure {
  const e = err as NodeJS.ErrnoException;
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'timeout';
  if (e.code === 'ECONNREFUSED') return 'connection_refused';
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return 'dns_error';
  if (typeof e.code === 'string' && TLS_CODE.test(e.code)) return 'tls_error';
  return 'connection_failed';
}
