import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus, type BusConfigInput } from '../../src/bus/index.js';
import { KafkaSockets } from '../../src/bus/kafka/client.js';
import { ErrorCodes, type ConfigError } from '../../src/errors.js';
import { busTlsOptions, readTlsFiles, tlsFailure } from '../../src/tls.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { waitFor } from '../helpers/wait-for.js';
import { refusal } from './smoke.js';

/** TLS settings of the buses: what the schema accepts, what start reads, how handshake failures read. No broker needed. */
let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki?.remove());

async function configError(config: BusConfigInput): Promise<ConfigError> {
  const err = (await refusal(() => createBus(config))) as ConfigError;
  expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
  return err;
}

const kafka = (ssl: unknown, brokers = ['kafka-0.example.internal:9093']): BusConfigInput => ({ kind: 'kafka', brokers, ssl }) as BusConfigInput;
const redis = (tls: unknown): BusConfigInput => ({ kind: 'redis', url: 'redis://redis.example.internal:6380', tls }) as BusConfigInput;

describe('bus TLS settings', () => {
  it('true keeps meaning TLS verified against Node\'s CAs; false and absent mean no TLS', () => {
    expect(busTlsOptions(true, 'bus.ssl')).toEqual({});
    expect(busTlsOptions(false, 'bus.ssl')).toBeUndefined();
    expect(busTlsOptions(undefined, 'bus.ssl')).toBeUndefined();
  });

  it('an object reads the CA, the client certificate and its key, and passes servername on', () => {
    const options = busTlsOptions({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key, servername: 'kafka.internal' }, 'bus.ssl')!;
    expect(options.ca).toMatch(/BEGIN CERTIFICATE/);
    expect(options.cert).toMatch(/BEGIN CERTIFICATE/);
    expect(options.key).toMatch(/BEGIN PRIVATE KEY/);
    expect(options.servername).toBe('kafka.internal');
    expect(options.rejectUnauthorized).toBeUndefined();
  });

  it.each([
    ['kafka', (files: unknown) => kafka(files), 'bus.ssl'],
    ['redis', (files: unknown) => redis(files), 'bus.tls'],
  ] as const)('%s: files are read when the bus is created, and each problem names its field', async (_kind, make, field) => {
    expect((await configError(make({ caFile: path.join(pki.dir, 'missing.pem') }))).message).toBe(`${field}.caFile: cannot read ${path.join(pki.dir, 'missing.pem')} (ENOENT)`);
    expect((await configError(make({ caFile: pki.ca.key }))).message).toMatch(new RegExp(`^${field.replace('.', '\\.')}\\.caFile: .* holds no PEM certificate`));
    expect((await configError(make({ certFile: pki.client.cert, keyFile: pki.server.key }))).message).toMatch(new RegExp(`^${field.replace('.', '\\.')}\\.keyFile: .* is not the private key of the certificate`));
    const garbage = path.join(pki.dir, 'garbage.key');
    writeFileSync(garbage, 'not a key');
    expect((await configError(make({ certFile: pki.client.cert, keyFile: garbage }))).message).toMatch(new RegExp(`^${field.replace('.', '\\.')}\\.keyFile: .* holds no usable PEM private key`));
    expect((await configError(make({ certFile: pki.client.cert }))).message).toBe(`${field}.keyFile: required with certFile`);
    expect((await configError(make({ keyFile: pki.client.key }))).message).toBe(`${field}.certFile: required with keyFile`);
    expect((await configError(make({ caFile: pki.ca.cert, password: 'x' }))).message).toMatch(new RegExp(`^${field.replace('.', '\\.')}: Unrecognized key\\(s\\) in object: 'password'`));
  });

  it('readTlsFiles refuses a certificate without its key even when called directly', () => {
    expect(() => readTlsFiles({ certFile: pki.client.cert }, 'admin.tls')).toThrow(/admin\.tls\.keyFile: certFile and keyFile go together/);
  });

  it('ssl.rejectUnauthorized: false is refused unless every broker is on loopback', async () => {
    const err = await configError(kafka({ rejectUnauthorized: false }, ['127.0.0.1:9093', 'kafka-1.example.internal:9093']));
    expect(err.message).toBe('bus.ssl.rejectUnauthorized: false is accepted only when every broker is on loopback (not kafka-1.example.internal:9093): give ssl.caFile to trust a private CA instead');
    for (const brokers of [['127.0.0.1:9093'], ['localhost:9093', '127.0.0.2:9093']]) {
      const bus = await createBus(kafka({ rejectUnauthorized: false }, brokers));
      await bus.close();
    }
  });

  it('ssl.rejectUnauthorized: false is logged as a warning when the bus is created', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const stream = new Writable({ write: (chunk: Buffer, _enc, done) => void (lines.push(JSON.parse(chunk.toString())), done()) });
    const bus = await createBus(kafka({ rejectUnauthorized: false }, ['127.0.0.1:9093']), { logger: pino({ level: 'info' }, stream) });
    await bus.close();
    expect(lines.filter((l) => l.level === 40 && /rejectUnauthorized is false: the brokers' certificates are NOT verified/.test(l.msg))).toHaveLength(1);
  });
});

describe('tlsFailure', () => {
  it('recognizes handshake failures through wrapped causes and says what to change', () => {
    const socket = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    expect(tlsFailure({ name: 'KafkaJSNonRetriableError', message: 'x', cause: { name: 'KafkaJSConnectionError', message: `Connection error: ${socket.message}`, code: socket.code } })).toBe(
      'SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain',
    );
    const alert = Object.assign(new Error('80FC0D94867F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n'), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
    expect(tlsFailure(alert)).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: tlsv13 alert certificate required; the server requires a client certificate: set certFile and keyFile');
    expect(tlsFailure(Object.assign(new Error("Hostname/IP does not match certificate's altnames"), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }))).toMatch(/^ERR_TLS_CERT_ALTNAME_INVALID: Hostname/);
    // kafkajs keeps only the message of some socket errors; Kafka answers a missing client certificate so.
    expect(tlsFailure({ name: 'KafkaJSConnectionError', message: 'Connection error: sslv3 alert bad certificate' })).toBe(
      'sslv3 alert bad certificate; the server refused the client certificate or its absence: set certFile and keyFile to a certificate from a CA the server trusts',
    );
  });

  it('leaves other connection errors alone', () => {
    expect(tlsFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }))).toBeUndefined();
    expect(tlsFailure(new Error('Connection is closed.'))).toBeUndefined();
    expect(tlsFailure(undefined)).toBeUndefined();
  });
});

describe('the Kafka socket factory over TLS', () => {
  /** Server names a TLS server saw in client hellos (undefined: none sent), and the port it listens on. */
  async function sniServer(): Promise<{ port: number; names: Array<string | undefined>; close(): Promise<void> }> {
    const names: Array<string | undefined> = [];
    const context = tls.createSecureContext({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) });
    const server = tls.createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key), SNICallback: (name, cb) => cb(null, context) });
    server.on('secureConnection', (socket) => {
      names.push(socket.servername || undefined);
      socket.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, names, close: () => new Promise((r) => server.close(() => r())) };
  }

  it('sends the broker host as SNI, the configured servername instead when given, and none for an IP address', async () => {
    const server = await sniServer();
    const sockets = new KafkaSockets();
    try {
      const connect = (host: string, ssl: tls.ConnectionOptions) =>
        new Promise<void>((resolve, reject) => {
          const socket = sockets.factory({ host, port: server.port, ssl, onConnect: () => resolve() } as never);
          socket.once('error', reject);
        });
      const ca = readFileSync(pki.ca.cert, 'utf8');
      await connect('localhost', { ca });
      await waitFor(() => server.names.length === 1, { what: 'first connection' });
      await connect('127.0.0.1', { ca });
      await waitFor(() => server.names.length === 2, { what: 'second connection' });
      await connect('127.0.0.1', { ca, servername: 'localhost' });
      await waitFor(() => server.names.length === 3, { what: 'third connection' });
      expect(server.names).toEqual(['localhost', undefined, 'localhost']);
      await expect(connect('localhost', { ca, servername: 'kafka.example.internal' })).rejects.toThrow(/does not match certificate's altnames/);
    } finally {
      sockets.destroy();
      await server.close();
    }
  });
});
