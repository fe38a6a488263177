import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus, openBus, type BusConfigInput } from '../../src/bus/index.js';
import { ErrorCodes, type CutoverError } from '../../src/errors.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { rabbitmqUnavailableReason, startTlsRabbit, type TlsRabbit } from '../helpers/tls-brokers.js';
import { refusal, transportSmoke } from './smoke.js';

/**
 * The RabbitMQ adapter against a RabbitMQ node of this test's own that listens only on TLS and requires
 * client certificates, with certificates made for the test.
 */
const unavailable = rabbitmqUnavailableReason();

describe.skipIf(unavailable)(`RabbitMQ over TLS${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let pki: TestPki;
  let node: TlsRabbit;
  const base = (url: string) => ({ kind: 'rabbitmq' as const, url, prefix: `cutover-tls-${randomUUID().slice(0, 8)}`, partitions: 2, publishTimeout: '5s', connectionTimeout: '5s' });
  const mutual = () => ({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key });

  beforeAll(async () => {
    pki = makeTestPki();
    node = await startTlsRabbit(pki);
  }, 90_000);

  afterAll(async () => {
    await node?.stop();
    pki?.remove();
  }, 30_000);

  const startError = (config: BusConfigInput): Promise<CutoverError> => refusal(() => openBus(config));

  it('mutual TLS: with the CA and a client certificate it trusts, publish, subscribe and read from the start work', async () => {
    expect(await transportSmoke({ ...base(node.url), tls: mutual() })).toEqual([1, 2, 3]);
  });

  it('without the CA the handshake fails with a typed, non-retriable error naming TLS and bus.tls', async () => {
    const err = await startError({ ...base(node.url) });
    expect(err.code).toBe(ErrorCodes.BUS_MISCONFIGURED);
    expect(err.retriable).toBe(false);
    expect(err.message).toMatch(/TLS handshake with RabbitMQ at amqps:\/\/guest:\*\*\*@127\.0\.0\.1:\d+\/? failed/);
    expect(err.message).toMatch(/certificate/i);
    expect(err.message).toMatch(/bus\.tls/);
  });

  it('the node refuses a client without a certificate, and one whose certificate another CA signed', async () => {
    for (const tls of [{ caFile: pki.ca.cert }, { caFile: pki.ca.cert, certFile: pki.otherClient.cert, keyFile: pki.otherClient.key }]) {
      const err = await startError({ ...base(node.url), tls });
      expect(err.code, JSON.stringify(tls)).toBe(ErrorCodes.BUS_MISCONFIGURED);
      expect(err.message).toMatch(/TLS handshake/);
    }
  });

  it('config errors name the field: TLS files with a plain amqp:// URL, an unreadable CA file', async () => {
    await expect(createBus({ ...base('amqp://guest:guest@127.0.0.1:5672/'), tls: mutual() })).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, message: expect.stringMatching(/bus\.tls: needs an amqps:\/\/ URL/) });
    await expect(createBus({ ...base(node.url), tls: { caFile: '/nonexistent/ca.pem' } })).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, message: expect.stringMatching(/bus\.tls\.caFile: cannot read \/nonexistent\/ca\.pem/) });
  });
});
