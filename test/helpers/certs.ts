// Throwaway certificates for TLS tests, made with the openssl command line: a CA, a server
// certificate for 127.0.0.1 and "localhost" signed by it, a client certificate signed by it,
// and a second CA that signed nothing here (the "wrong CA").

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './servers.ts';

export interface TestCerts {
  dir: string;
  caFile: string;
  /** A CA that did not sign the server's certificate. */
  otherCaFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  /** A client certificate signed by the other CA (a server trusting caFile refuses it). */
  strangerCertFile: string;
  strangerKeyFile: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** EC P-256 keys: fast to make, accepted by Go (nsqd, influxd) and Node. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '3', '-subj', `/CN=ns-agent test ${name}`]);
}

function signed(dir: string, name: string, ca: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ['req', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=ns-agent test ${name}`]);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '3', '-extfile', `${name}.ext`,
  ]);
}

export function makeTestCerts(): TestCerts {
  const dir = tempDir('certs-');
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  signed(dir, 'server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  signed(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth\n');
  signed(dir, 'stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  const f = (name: string): string => join(dir, name);
  return {
    dir,
    caFile: f('ca.crt'),
    otherCaFile: f('other-ca.crt'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
    strangerCertFile: f('stranger.crt'),
    strangerKeyFile: f('stranger.key'),
  };
}
