import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBus, type BusConfigInput } from '../../src/bus/index.js';
import { ErrorCodes, type CutoverError } from '../../src/errors.js';
import { createDedupeStore } from '../../src/handling/dedupe/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { startTlsRedis, type TlsRedis } from '../helpers/tls-brokers.js';
import { refusal, transportSmoke } from './smoke.js';

/**
 * The Redis adapter against redis-servers of this test's own that speak only TLS, with certificates made
 * for the test: one without client authentication, one with `--tls-auth-clients yes` (mutual TLS).
 */
describe('Redis over TLS', () => {
  let pki: TestPki;
  let plain: TlsRedis;
  let mutual: TlsRedis;
  const base = (url: string) => ({ kind: 'redis' as const, url, prefix: `cutover-tls-${randomUUID().slice(0, 8)}:`, partitions: 2, claimIdle: '2s', blockTime: '200ms', publishTimeout: '3s' });

  beforeAll(async () => {
    pki = makeTestPki();
    [plain, mutual] = await Promise.all([startTlsRedis(pki, { authClients: false }), startTlsRedis(pki, { authClients: true })]);
  });

  afterAll(async () => {
    await Promise.all([plain?.stop(), mutual?.stop()]);
    pki?.remove();
  });

  const startError = (config: BusConfigInput): Promise<CutoverError> => refusal(() => openBus(config));

  it('publishes, delivers and reads from the start over TLS verified with the CA in tls.caFile', async () => {
    expect(await transportSmoke({ ...base(plain.url), tls: { caFile: pki.ca.cert } })).toEqual([1, 2, 3]);
  });

  it('a rediss:// URL with tls.caFile works the same', async () => {
    expect(await transportSmoke({ ...base(plain.url.replace(/^redis:/, 'rediss:')), tls: { caFile: pki.ca.cert } })).toEqual([1, 2, 3]);
  });

  it('without the CA the handshake fails with a typed, non-retriable error naming TLS and the certificate', async () => {
    for (const config of [{ ...base(plain.url), tls: true }, { ...base(plain.url.replace(/^redis:/, 'rediss:')) }]) {
      const err = await startError(config);
      expect(err.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
      expect(err.retriable).toBe(false);
      expect(err.message).toMatch(/TLS handshake with Redis \(rediss?:\/\/127\.0\.0\.1:\d+\/?\) failed/);
      expect(err.message).toMatch(/certificate/i);
      expect(err.message).toMatch(/bus\.tls/);
    }
  });

  it('a server requiring client certificates refuses a client without one, and one from another CA', async () => {
    const none = await startError({ ...base(mutual.url), tls: { caFile: pki.ca.cert } });
    expect(none.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
    expect(none.message).toMatch(/TLS handshake .* failed \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: tlsv13 alert certificate required; the server requires a client certificate: set certFile and keyFile\)/);
    const other = await startError({ ...base(mutual.url), tls: { caFile: pki.ca.cert, certFile: pki.otherClient.cert, keyFile: pki.otherClient.key } });
    expect(other.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
  });

  it('mutual TLS: with certFile/keyFile from the CA the server trusts, everything works', async () => {
    expect(await transportSmoke({ ...base(mutual.url), tls: { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key } })).toEqual([1, 2, 3]);
  });

  it('the shadow side\'s dedupe store follows the bus TLS settings, client certificate included', async () => {
    const store = createDedupeStore(busConfigSchema.parse({ ...base(mutual.url), tls: { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key } }));
    await store.start();
    try {
      const id = randomUUID();
      expect(await store.claim('tls-test', id, 5_000)).toBe('acquired');
    } finally {
      await store.close();
    }
  });
});
