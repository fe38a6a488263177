import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBus, type BusConfigInput } from '../../src/bus/index.js';
import { ErrorCodes, type CutoverError } from '../../src/errors.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { kafkaUnavailableReason, startTlsKafka, type TlsKafka } from '../helpers/tls-brokers.js';
import { refusal, transportSmoke } from './smoke.js';

/**
 * The Kafka adapter against a broker of this test's own that speaks only TLS (ports 28092-28094, below the ephemeral port range so that no outgoing connection holds one), with
 * certificates made for the test: verified with the test CA, refused without it, and mutual TLS.
 */
const skip = kafkaUnavailableReason();

describe.skipIf(skip !== undefined)(`Kafka over TLS${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let pki: TestPki;
  let kafka: TlsKafka;
  const base = { kind: 'kafka' as const, partitions: 2, sessionTimeout: '6s', topicRefreshInterval: '1s', connectionTimeout: '2s', publishTimeout: '5s' };

  beforeAll(async () => {
    pki = makeTestPki();
    kafka = await startTlsKafka(pki);
  }, 180_000);

  afterAll(async () => {
    await kafka?.stop();
    pki?.remove();
  });

  const startError = (config: BusConfigInput): Promise<CutoverError> => refusal(() => openBus(config));

  it('publishes, delivers and reads from the start over TLS verified with the CA in ssl.caFile', async () => {
    expect(await transportSmoke({ ...base, brokers: kafka.tlsBrokers, ssl: { caFile: pki.ca.cert } })).toEqual([1, 2, 3]);
  });

  it('without the CA the handshake fails with a typed, non-retriable error naming TLS and the certificate', async () => {
    const err = await startError({ ...base, brokers: kafka.tlsBrokers, ssl: true });
    expect(err.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
    expect(err.retriable).toBe(false);
    expect(err.message).toMatch(/TLS handshake with Kafka brokers 127\.0\.0\.1:28092 failed/);
    expect(err.message).toMatch(/certificate/i);
    expect(err.message).toMatch(/bus\.ssl/);
  });

  it('a CA that did not sign the broker certificate is refused the same way', async () => {
    const err = await startError({ ...base, brokers: kafka.tlsBrokers, ssl: { caFile: pki.otherCa.cert } });
    expect(err.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
    expect(err.message).toMatch(/TLS handshake/);
  });

  it('a listener that requires a client certificate refuses a client without one', async () => {
    const err = await startError({ ...base, brokers: kafka.mtlsBrokers, ssl: { caFile: pki.ca.cert } });
    expect(err.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
    expect(err.message).toMatch(/TLS handshake with Kafka brokers 127\.0\.0\.1:28094 failed \(.*; the server refused the client certificate or its absence: set certFile and keyFile/);
  });

  it('and refuses a client certificate from another CA', async () => {
    const err = await startError({ ...base, brokers: kafka.mtlsBrokers, ssl: { caFile: pki.ca.cert, certFile: pki.otherClient.cert, keyFile: pki.otherClient.key } });
    expect(err.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
  });

  it('mutual TLS: with certFile/keyFile from the CA the broker trusts, everything works', async () => {
    expect(await transportSmoke({ ...base, brokers: kafka.mtlsBrokers, ssl: { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key } })).toEqual([1, 2, 3]);
  });

  it('rejectUnauthorized: false on a loopback broker connects without the CA (development only)', async () => {
    const bus = await openBus({ ...base, brokers: kafka.tlsBrokers, ssl: { rejectUnauthorized: false } });
    await bus.close();
  });
});
