// TLS settings shared by the hops that can leave a data centre (agent → remote nsqd, relay →
// nsqd, sender → backends): reading the PEM files a config names, and turning Node's terse
// handshake errors into a sentence that says which check failed and what to change.
import { readFileSync } from 'node:fs';
import type { TlsConfig } from './config/schema.ts';

/** PEM contents for tls.connect / https.Agent; `servername` only when a name was configured. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
}

/**
 * Reads the files once, at composition time (they are small and a missing one must stop the
 * start with a clear sentence, not fail every connection later). `where` names the config key.
 */
export function loadTlsMaterial(tls: TlsConfig, where: string): TlsMaterial {
  const read = (file: string | undefined, key: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${where}.${key}: cannot read "${file}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const material: TlsMaterial = {};
  const ca = read(tls.caFile, 'caFile');
  const cert = read(tls.certFile, 'certFile');
  const key = read(tls.keyFile, 'keyFile');
  if (ca) material.ca = ca;
  if (cert) material.cert = cert;
  if (key) material.key = key;
  if (tls.serverName) material.servername = tls.serverName;
  return material;
}

/** Node's verification codes that mean "signed by nobody the CA list trusts". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * A sentence for a TLS handshake failure with `peer` ("nsqd host:port", "backend \"x\""), or
 * undefined when the error is not one. Which check failed: the CA, the name, the dates, or the
 * server refusing our client certificate.
 */
export function describeTlsError(err: unknown, peer: string, tls: TlsConfig): string | undefined {
  const e = err as (Error & { code?: string; reason?: string; host?: string }) | undefined;
  const code = e?.code ?? '';
  if (!code) return undefined;
  const caSource = tls.caFile ? `the CA file "${tls.caFile}"` : "the system's CA store (set tls.caFile)";
  if (UNTRUSTED.has(code)) {
    return `${peer}: TLS certificate not trusted: it is not signed by ${caSource} (${code})`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const name = tls.serverName ?? e?.host ?? 'the host of the address';
    return `${peer}: TLS certificate does not hold the name "${name}" (${e?.reason ?? e?.message}); set tls.serverName to a name it holds, or address the server by one`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `${peer}: TLS certificate is outside its validity dates (${code}); renew it or check the clocks`;
  }
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE)/.test(code)) {
    const have = tls.certFile ? `the client certificate "${tls.certFile}"` : 'a missing client certificate (set tls.certFile and tls.keyFile)';
    return `${peer}: the server refused ${have} during the TLS handshake (${code})`;
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    return `${peer}: TLS handshake failed (${code}: ${e?.message}); is the server speaking TLS with these settings?`;
  }
  return undefined;
}
