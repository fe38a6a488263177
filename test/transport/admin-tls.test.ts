import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAdminServer, loadAdminTls, type AdminOptions } from '../../proxy/admin.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { ErrorCodes, type ConfigError } from '../../src/errors.js';
import { createRegistry } from '../../src/metrics.js';
import { makeTestPki, type CertFiles, type TestPki } from '../helpers/certs.js';
import { adminFixture } from '../helpers/admin-server.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { refusal } from './smoke.js';

/** The admin API over HTTPS: server certificate, client certificates standing for tokens, tokens beside them. */
const OPERATOR_TOKEN = 'operator-token-0123456789';
const CN = 'cutover-operator';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki({ clientCn: CN });
});
afterAll(() => pki?.remove());

const servers: Array<http.Server | https.Server> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
});

const pem = (file: string): string => readFileSync(file, 'utf8');

async function admin(overrides: Partial<AdminOptions>): Promise<{ url: string; server: http.Server | https.Server; flips: string[] }> {
  const { options, flips } = adminFixture({ tokens: [{ token: OPERATOR_TOKEN, scopes: ['read', 'flip'] }], ...overrides });
  const server = createAdminServer(options);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, server, flips };
}

interface Call {
  client?: CertFiles;
  ca?: string;
  token?: string;
  method?: string;
  body?: unknown;
}

/** One HTTPS request with a fresh connection (no agent reuse), trusting `ca` (default: the test CA). */
function call(url: string, path: string, c: Call = {}): Promise<{ status: number; body: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = c.body === undefined ? undefined : JSON.stringify(c.body);
    const req = https.request(
      `${url}${path}`,
      {
        method: c.method ?? 'GET',
        agent: false,
        ca: c.ca ?? pem(pki.ca.cert),
        ...(c.client ? { cert: pem(c.client.cert), key: pem(c.client.key) } : {}),
        headers: { ...(c.token ? { authorization: `Bearer ${c.token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const tlsOf = (extra: { clientCa?: boolean; requireClientCert?: boolean } = {}) => ({
  cert: pem(pki.server.cert),
  key: pem(pki.server.key),
  ...(extra.clientCa ? { clientCa: pem(pki.ca.cert) } : {}),
  requireClientCert: extra.requireClientCert ?? false,
});

describe('admin API over HTTPS, client certificate required (mutual TLS)', () => {
  const options = (scopes: Array<'read' | 'flip'>): Partial<AdminOptions> => ({ tls: tlsOf({ clientCa: true, requireClientCert: true }), clientCerts: [{ cn: CN, scopes }] });

  it('a client without a certificate is refused in the handshake; so is one whose certificate another CA signed', async () => {
    const { url } = await admin(options(['read']));
    await expect(call(url, '/flows')).rejects.toThrow(/certificate required|socket hang up|ECONNRESET/i);
    await expect(call(url, '/flows', { client: pki.otherClient })).rejects.toThrow(/unknown ca|socket hang up|ECONNRESET/i);
    // A token does not open the handshake either: the certificate is required of every client.
    await expect(call(url, '/flows', { token: OPERATOR_TOKEN })).rejects.toThrow();
  });

  it('a verified certificate whose CN is listed gets its scopes: read reads, flipping needs flip', async () => {
    const { url, flips } = await admin(options(['read']));
    expect((await call(url, '/flows', { client: pki.client })).status).toBe(200);
    const denied = await call(url, '/flows/inventory.reserve/flip', { client: pki.client, method: 'POST', body: { to: 'shadow' } });
    expect(denied.status).toBe(403);
    expect(denied.body.error).toEqual({ code: ErrorCodes.AUTH_FORBIDDEN, message: `this client certificate lacks the flip scope for POST /flows/inventory.reserve/flip (it has: read)` });
    expect(flips).toEqual([]);
  });

  it('a certificate mapped to flip flips', async () => {
    const { url, flips } = await admin(options(['read', 'flip']));
    expect((await call(url, '/flows/inventory.reserve/flip', { client: pki.client, method: 'POST', body: { to: 'shadow' } })).status).toBe(200);
    expect(flips).toEqual(['inventory.reserve->shadow']);
  });

  it('a token still works beside the certificate, and a wrong token is refused even with a good certificate', async () => {
    const { url, flips } = await admin(options(['read']));
    expect((await call(url, '/flows/inventory.reserve/flip', { client: pki.client, token: OPERATOR_TOKEN, method: 'POST', body: { to: 'bus' } })).status).toBe(200);
    expect(flips).toEqual(['inventory.reserve->bus']);
    const wrong = await call(url, '/flows', { client: pki.client, token: 'wrong-token-0123456789' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error?.code).toBe(ErrorCodes.UNAUTHORIZED);
  });

  it('a verified certificate whose CN is not listed is refused with 401', async () => {
    const { url } = await admin({ tls: tlsOf({ clientCa: true, requireClientCert: true }), clientCerts: [{ cn: 'someone-else', scopes: ['read', 'flip'] }] });
    const res = await call(url, '/flows', { client: pki.client });
    expect(res.status).toBe(401);
    expect(res.body.error).toEqual({ code: ErrorCodes.UNAUTHORIZED, message: 'missing or wrong bearer token or client certificate' });
  });
});

describe('admin API over HTTPS, client certificate optional', () => {
  const options = (): Partial<AdminOptions> => ({ tls: tlsOf({ clientCa: true }), clientCerts: [{ cn: CN, scopes: ['read'] }] });

  it('without certificate or token: 401 naming both; with the token alone: served', async () => {
    const { url } = await admin(options());
    const res = await call(url, '/flows');
    expect(res.status).toBe(401);
    expect(res.body.error).toEqual({ code: ErrorCodes.UNAUTHORIZED, message: 'missing or wrong bearer token or client certificate' });
    expect((await call(url, '/flows', { token: OPERATOR_TOKEN })).status).toBe(200);
    expect((await call(url, '/flows', { client: pki.client })).status).toBe(200);
  });

  it('a certificate from another CA with the listed CN is no credential (401), whatever its subject says', async () => {
    const { url } = await admin(options());
    const res = await call(url, '/flows', { client: pki.otherClient });
    expect(res.status).toBe(401);
    expect(res.body.error?.code).toBe(ErrorCodes.UNAUTHORIZED);
  });

  it('failed certificate authentications count towards the per-address limit like failed tokens', async () => {
    const { url } = await admin({ ...options(), maxAuthFailures: 2 });
    for (let i = 0; i < 2; i++) expect((await call(url, '/flows', { client: pki.otherClient })).status).toBe(401);
    expect((await call(url, '/flows', { client: pki.otherClient })).status).toBe(429);
    // Past the limit a good certificate is refused too, as a correct token would be.
    const limited = await call(url, '/flows', { client: pki.client });
    expect(limited.status).toBe(429);
    expect(limited.body.error?.code).toBe(ErrorCodes.AUTH_RATE_LIMITED);
  });
});

describe('admin API over HTTPS without a client CA', () => {
  it('serves token holders over TLS; client certificates are not asked for and map to nothing', async () => {
    const { url, server } = await admin({ tls: tlsOf(), clientCerts: [{ cn: CN, scopes: ['read', 'flip'] }] });
    expect((await call(url, '/flows', { token: OPERATOR_TOKEN })).status).toBe(200);
    expect((await call(url, '/flows', { client: pki.client })).status).toBe(401);
    // supertest over the same HTTPS server, trusting the test CA.
    const res = await request(server).get('/healthz').ca(pem(pki.ca.cert)).set('authorization', `Bearer ${OPERATOR_TOKEN}`);
    expect(res.status).toBe(200);
  });

  it('a client that does not trust the server certificate fails the handshake', async () => {
    const { url } = await admin({ tls: tlsOf() });
    await expect(call(url, '/healthz', { ca: pem(pki.otherCa.cert), token: OPERATOR_TOKEN })).rejects.toThrow(/self[- ]signed certificate|unable to verify/i);
  });
});

describe('admin.tls config', () => {
  const base = { agent: 'inventory', upstream: 'http://127.0.0.1:9' };

  it('validates: requireClientCert needs clientCaFile; clientCerts need clientCaFile; clientCerts alone satisfy the token rule', () => {
    const issues = (admin: unknown) => {
      const r = cutoverConfigSchema.safeParse({ ...base, admin });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues({ tls: { certFile: 'a.pem', keyFile: 'a.key', requireClientCert: true }, token: OPERATOR_TOKEN })).toEqual(['admin.tls.requireClientCert: needs admin.tls.clientCaFile (the CA that signs client certificates)']);
    expect(issues({ tls: { certFile: 'a.pem', keyFile: 'a.key' }, clientCerts: [{ cn: CN, scopes: ['read'] }] })).toEqual(['admin.clientCerts: needs admin.tls.clientCaFile: only certificates signed by that CA are mapped to scopes']);
    expect(issues({ tls: { certFile: 'a.pem', keyFile: 'a.key', clientCaFile: 'ca.pem' }, clientCerts: [{ cn: CN, scopes: ['read'] }] })).toEqual([]);
    expect(issues({ tls: { certFile: 'a.pem' }, token: OPERATOR_TOKEN })).toEqual(['admin.tls.keyFile: Required']);
    expect(issues({ clientCerts: [{ cn: CN, scopes: [] }] })).toContain('admin.clientCerts.0.scopes: expected at least one scope (read, flip)');
  });

  it('files are read at start: an unreadable one is CUTOVER_CONFIG_INVALID naming its field', () => {
    const missing = path.join(pki.dir, 'missing.pem');
    const fail = (tls: Parameters<typeof loadAdminTls>[0]): ConfigError => {
      try {
        loadAdminTls(tls);
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected loadAdminTls to throw');
    };
    expect(fail({ certFile: missing, keyFile: pki.server.key, requireClientCert: false }).message).toBe(`admin.tls.certFile: cannot read ${missing} (ENOENT)`);
    expect(fail({ certFile: pki.server.cert, keyFile: pki.client.key, requireClientCert: false }).message).toMatch(/^admin\.tls\.keyFile: .* is not the private key/);
    const ca = fail({ certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: missing, requireClientCert: false });
    expect(ca.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(ca.message).toBe(`admin.tls.clientCaFile: cannot read ${missing} (ENOENT)`);
  });

  it('the sidecar serves its admin API over HTTPS with mutual TLS and says https:// in its address', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-admin-tls-'));
    const sc = await startSidecar(
      {
        ...base,
        listen: '127.0.0.1:0',
        dataDir,
        admin: { listen: '127.0.0.1:0', tls: { certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: pki.ca.cert, requireClientCert: true }, clientCerts: [{ cn: CN, scopes: ['read'] }] },
      },
      { bus: new MemoryBus(), registry: createRegistry() },
    );
    try {
      expect(sc.admin.url).toBe(`https://127.0.0.1:${sc.admin.port}`);
      expect((await call(sc.admin.url, '/healthz', { client: pki.client })).status).toBe(200);
      await expect(call(sc.admin.url, '/healthz')).rejects.toThrow();
    } finally {
      await sc.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('the sidecar refuses to start when an admin.tls file is unreadable', async () => {
    const err = await refusal(() => startSidecar({ ...base, admin: { token: OPERATOR_TOKEN, tls: { certFile: path.join(pki.dir, 'nope.pem'), keyFile: pki.server.key } } }, { bus: new MemoryBus() }));
    expect(err?.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err?.message).toMatch(/^admin\.tls\.certFile: cannot read/);
  });
});
