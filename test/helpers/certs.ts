import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A PEM certificate and its unencrypted PKCS#8 key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
}

/**
 * A throwaway public key infrastructure in a temp dir, made with openssl: a CA, a server certificate for
 * 127.0.0.1 / ::1 / localhost (usable as a client certificate too, as brokers talk to themselves), a client
 * certificate, and a second CA with a client certificate of its own, which the first CA's holders must
 * refuse. P-256 keys: quick to make, and Node, Redis and Kafka's PEM key stores all read them.
 */
export interface TestPki {
  dir: string;
  ca: CertFiles;
  server: CertFiles;
  /** Client certificate from `ca`, subject CN = `clientCn`. */
  client: CertFiles;
  clientCn: string;
  /** A CA nobody trusts, and a client certificate it signed with the same CN as `client`. */
  otherCa: CertFiles;
  otherClient: CertFiles;
  /** Removes the directory. Idempotent. */
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(dir: string, name: string): string {
  const file = path.join(dir, `${name}.key`);
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  return file;
}

function selfSignedCa(dir: string, name: string): CertFiles {
  const k = key(dir, name);
  const cert = path.join(dir, `${name}.pem`);
  openssl(dir, ['req', '-x509', '-new', '-key', k, '-sha256', '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', cert]);
  return { cert, key: k };
}

function issue(dir: string, ca: CertFiles, name: string, cn: string, extensions: string): CertFiles {
  const k = key(dir, name);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  const cert = path.join(dir, `${name}.pem`);
  writeFileSync(ext, extensions);
  openssl(dir, ['req', '-new', '-key', k, '-subj', `/CN=${cn}`, '-out', csr]);
  openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', cert]);
  return { cert, key: k };
}

const SERVER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n';
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';

/** Makes the certificates (a second or so); call `remove()` when done. Needs openssl on PATH. */
export function makeTestPki(options: { clientCn?: string } = {}): TestPki {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-pki-'));
  try {
    const clientCn = options.clientCn ?? 'cutover-test-client';
    const ca = selfSignedCa(dir, 'ca');
    const otherCa = selfSignedCa(dir, 'other-ca');
    return {
      dir,
      ca,
      server: issue(dir, ca, 'server', 'localhost', SERVER_EXT),
      client: issue(dir, ca, 'client', clientCn, CLIENT_EXT),
      clientCn,
      otherCa,
      otherClient: issue(dir, otherCa, 'other-client', clientCn, CLIENT_EXT),
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
