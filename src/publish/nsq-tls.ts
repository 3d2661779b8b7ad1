// NSQ's link options for a hop that can leave the data centre: TLS (CA, client certificate,
// server name), deflate or snappy, and the AUTH secret, for the publisher's Writers and the
// relay's Readers alike. nsqjs 0.13 upgrades to TLS with tls.connect({ socket, ca, cert, key })
// and nothing else, so the certificate is checked against the dialled host only and a refusal
// reads "unable to verify the first certificate". Each connection therefore gets its own upgrade
// (an instance property, nothing global): same steps as nsqjs's, plus the server name and a
// sentence that says which check failed. nsqjs also leaves its deflate/snappy streams without an
// 'error' listener, so a connection cut mid-frame ("unexpected end of file") would crash the
// process: each compressed connection routes those errors to its socket, which nsqjs handles.
import { isIP } from 'node:net';
import tls from 'node:tls';
import type { Reader, Writer } from 'nsqjs';
import type { TlsConfig } from '../config/schema.ts';
import { describeTlsError, loadTlsMaterial, type TlsMaterial } from '../tls.ts';

export interface NsqLinkSecurityConfig {
  tls?: TlsConfig | undefined;
  compression?: 'none' | 'deflate' | 'snappy' | undefined;
  authSecret?: string | undefined;
}

/** Spread into nsqjs Writer / Reader options. */
export interface NsqjsSecurityOptions {
  tls?: boolean;
  deflate?: boolean;
  snappy?: boolean;
  authSecret?: string;
}

export interface NsqConnectionSecurity {
  readonly options: NsqjsSecurityOptions;
  /** Call right after writer.connect(): nsqjs has made the connection, not yet upgraded it. */
  prepareWriter(writer: Writer): void;
  /** Call before reader.connect(): every connection the reader makes gets the upgrade. */
  prepareReader(reader: Reader): void;
}

/** The slice of nsqjs's NSQDConnection the upgrade replaces (nsqjs 0.13, lib/nsqdconnection.js). */
interface NsqjsConnection {
  nsqdHost: string;
  nsqdPort: number;
  conn: import('node:net').Socket;
  outWriter: unknown;
  startTLS(callback?: () => void): void;
  startCompression(inflater: NodeJS.EventEmitter, deflater: NodeJS.EventEmitter): void;
  registerStreamListeners(conn: import('node:net').Socket): void;
}

/** `where` names the config section ("nsq", "relay") for a missing-file sentence. */
export function nsqConnectionSecurity(cfg: NsqLinkSecurityConfig, where: string): NsqConnectionSecurity {
  const options: NsqjsSecurityOptions = {};
  if (cfg.compression === 'deflate') options.deflate = true;
  if (cfg.compression === 'snappy') options.snappy = true;
  if (cfg.authSecret !== undefined) options.authSecret = cfg.authSecret;
  const tlsCfg = cfg.tls;
  const compressed = options.deflate === true || options.snappy === true;
  if (!tlsCfg && !compressed) return { options, prepareWriter: () => {}, prepareReader: () => {} };
  if (tlsCfg) options.tls = true;
  const material = tlsCfg ? loadTlsMaterial(tlsCfg, `${where}.tls`) : undefined;
  const upgrade = (c: NsqjsConnection): void => {
    if (tlsCfg && material) installUpgrade(c, material, tlsCfg);
    if (compressed) guardCompression(c);
  };
  return {
    options,
    prepareWriter(writer) {
      const conn = (writer as unknown as { conn?: NsqjsConnection }).conn;
      if (conn) upgrade(conn);
    },
    prepareReader(reader) {
      const r = reader as unknown as { registerConnectionListeners(conn: NsqjsConnection): void };
      const register = r.registerConnectionListeners.bind(reader);
      // Called for each new nsqd connection before it dials.
      r.registerConnectionListeners = (conn) => {
        upgrade(conn);
        register(conn);
      };
    },
  };
}

function guardCompression(c: NsqjsConnection): void {
  const start = c.startCompression;
  c.startCompression = function startCompression(inflater, deflater): void {
    for (const stream of [inflater, deflater]) stream.on('error', (err: Error) => this.conn.destroy(err));
    start.call(this, inflater, deflater);
  };
}

function installUpgrade(c: NsqjsConnection, material: TlsMaterial, cfg: TlsConfig): void {
  const host = c.nsqdHost;
  const name = material.servername ?? host;
  const peer = `nsqd ${host}:${c.nsqdPort}`;
  c.startTLS = function startTLS(callback?: () => void): void {
    for (const event of ['data', 'error', 'close']) this.conn.removeAllListeners(event);
    const tlsConn = tls.connect(
      {
        socket: this.conn,
        rejectUnauthorized: true,
        ...(material.ca ? { ca: material.ca } : {}),
        ...(material.cert ? { cert: material.cert } : {}),
        ...(material.key ? { key: material.key } : {}),
        // SNI takes host names only.
        ...(isIP(name) ? {} : { servername: name }),
        checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
      },
      () => {
        this.conn = tlsConn;
        callback?.();
      },
    );
    // Before nsqjs's own listener sees it: the sentence replaces Node's code-only message.
    tlsConn.prependListener('error', (err: Error) => {
      const sentence = describeTlsError(err, peer, { ...cfg, serverName: name });
      if (sentence) err.message = sentence;
    });
    this.outWriter = tlsConn;
    this.registerStreamListeners(tlsConn);
  };
}
