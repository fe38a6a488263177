import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError, ErrorCodes } from './errors.js';

/**
 * TLS material named by file in the config (bus connections, the admin listener). Files are read once, at
 * start, and checked there: an unreadable file, a file that holds no certificate or key, or a key that does
 * not belong to its certificate stops the start with CUTOVER_CONFIG_INVALID naming the field, instead of
 * failing on the first handshake minutes later.
 */
export interface TlsFiles {
  /** PEM certificates to trust instead of Node's bundled CAs. */
  caFile?: string | undefined;
  /** PEM certificate (chain) this side presents. */
  certFile?: string | undefined;
  /** PEM private key of `certFile`. */
  keyFile?: string | undefined;
}

/** What {@link readTlsFiles} read: PEM text ready for `tls.connect` / `https.createServer`. */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
}

function invalid(field: string, message: string, cause?: unknown): ConfigError {
  const issue = `${field}: ${message}`;
  return new ConfigError(ErrorCodes.CONFIG_INVALID, issue, [issue], cause === undefined ? {} : { cause });
}

function readText(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw invalid(field, `cannot read ${file} (${code})`, err);
  }
}

/** The certificates of a PEM bundle; throws naming `field` when it holds none or a malformed one. */
function certificates(pem: string, file: string, field: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw invalid(field, `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw invalid(field, `${file} holds a certificate that does not parse (${(err as Error).message})`, err);
    }
  });
}

/** Reads a PEM file of certificates (a CA bundle), checking that it holds at least one; `field` names it in errors. */
export function readCertificateFile(file: string, field: string): string {
  const pem = readText(file, field);
  certificates(pem, file, field);
  return pem;
}

/**
 * Reads and checks the files of a TLS setting. `field` is the setting's config path (`bus.ssl`,
 * `admin.tls`), used in every message. `certFile` and `keyFile` go together.
 */
export function readTlsFiles(files: TlsFiles, field: string): TlsMaterial {
  const out: TlsMaterial = {};
  if (files.caFile !== undefined) out.ca = readCertificateFile(files.caFile, `${field}.caFile`);
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw invalid(files.certFile === undefined ? `${field}.certFile` : `${field}.keyFile`, 'certFile and keyFile go together: give both or neither');
  }
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    out.cert = readText(files.certFile, `${field}.certFile`);
    const [leaf] = certificates(out.cert, files.certFile, `${field}.certFile`);
    out.key = readText(files.keyFile, `${field}.keyFile`);
    let key: KeyObject;
    try {
      key = createPrivateKey(out.key);
    } catch (err) {
      throw invalid(`${field}.keyFile`, `${files.keyFile} holds no usable PEM private key (${(err as Error).message})`, err);
    }
    if (!leaf!.checkPrivateKey(key)) throw invalid(`${field}.keyFile`, `${files.keyFile} is not the private key of the certificate in ${files.certFile}`);
  }
  return out;
}

/** TLS settings of a bus connection as the config gives them: on with Node's CAs, or with files. */
export interface BusTlsSetting extends TlsFiles {
  servername?: string | undefined;
  rejectUnauthorized?: boolean | undefined;
}

/**
 * Client TLS options for a bus connection, or undefined when TLS is off. `true` is TLS verified against
 * Node's CA bundle (plus NODE_EXTRA_CA_CERTS); an object adds a CA of its own, a client certificate (mutual
 * TLS), a server name to verify, or, on loopback only, no verification.
 */
export function busTlsOptions(setting: boolean | BusTlsSetting | undefined, field: string): ConnectionOptions | undefined {
  if (!setting) return undefined;
  if (setting === true) return {};
  const material = readTlsFiles(setting, field);
  return {
    ...material,
    ...(setting.servername !== undefined ? { servername: setting.servername } : {}),
    ...(setting.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
  };
}

/** Whether a host name or address is this machine's loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * OpenSSL and Node error codes of a failed TLS handshake: a certificate that does not verify, a name that
 * does not match, a peer that refused our certificate (or its absence), or no protocol in common.
 */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_|CERT_|HOSTNAME_MISMATCH|ERR_OSSL_)/;
const TLS_MESSAGE = /self[- ]signed certificate|unable to (get|verify) (local issuer|the first|issuer)|certificate (has expired|is not yet valid|required|unknown|verify failed)|alert (handshake failure|bad certificate|unknown ca|certificate required)|Hostname\/IP does not match|wrong version number|tlsv1 alert|sslv3 alert/i;

/**
 * Why a connection error is a TLS failure, in words for the error message, or undefined when it is not
 * one. Looks through wrapped causes (clients wrap socket errors once or twice). These failures do not heal
 * by retrying: the certificates or the settings must change.
 */
export function tlsFailure(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 10 && current && typeof current === 'object'; depth++) {
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown[]; lastError?: unknown };
    const code = typeof e.code === 'string' ? e.code : undefined;
    const message = typeof e.message === 'string' ? e.message : '';
    if ((code && TLS_CODE.test(code)) || TLS_MESSAGE.test(message)) return describeTls(code, message);
    current = e.cause ?? e.originalError ?? e.lastError ?? (Array.isArray(e.errors) ? e.errors[0] : undefined);
  }
  return undefined;
}

/** What the peer's TLS alerts mean for the one configuring the client. */
const ALERT_HINTS: ReadonlyArray<[RegExp, string]> = [
  [/alert certificate required/i, 'the server requires a client certificate: set certFile and keyFile'],
  // Servers send these for a missing client certificate as well as for one they do not trust (Kafka does).
  [/alert (unknown ca|bad certificate|certificate unknown|handshake failure)/i, 'the server refused the client certificate or its absence: set certFile and keyFile to a certificate from a CA the server trusts'],
];

/** `CODE: reason` without OpenSSL's source locations, plus a hint for alerts the peer sent. */
function describeTls(code: string | undefined, message: string): string {
  // OpenSSL's text: "<id>:error:<hex>:SSL routines:<function>:<reason>:<file>:<line>:SSL alert number N".
  const openssl = /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/.exec(message);
  const reason = (openssl ? openssl[1]! : message.replace(/^Connection error: /, '')).trim();
  const hint = ALERT_HINTS.find(([re]) => re.test(reason))?.[1];
  return `${code ? `${code}: ` : ''}${reason}${hint ? `; ${hint}` : ''}`;
}
