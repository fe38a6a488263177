import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FieldCipher, type EncryptedValue } from '../../src/crypto/field-cipher.js';
import { Keyring, encryptedSlots } from '../../src/crypto/keyring.js';
import { openCallData, sealResult } from '../../src/crypto/body-fields.js';
import { ConfigError } from '../../src/errors.js';
import { SECRET_FIELDS, keyringOf, rotationKeys } from '../helpers/field-keys.js';

const request = { eventId: 'evt-1', part: 'request' as const };

function body() {
  return { customer: { email: 'alice@example.com', name: 'Alice' }, card: { number: '4111111111111111' }, amount: 12.5 };
}

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('Keyring.fromConfig', () => {
  const env = { NEW_KEY: randomBytes(32).toString('hex'), OLD_KEY: randomBytes(32).toString('base64') };

  it('holds the encrypting key first and the decrypt-only keys after it', () => {
    const ring = Keyring.fromConfig({ keyEnv: 'NEW_KEY', keyId: 'k2', fields: SECRET_FIELDS, keys: [{ keyId: 'k1', keyEnv: 'OLD_KEY' }] }, env);
    expect(ring.kids).toEqual(['k2', 'k1']);
    expect(ring.current.kid).toBe('k2');
  });

  it('names the variable and its config path when a decrypt-only key is missing or short', () => {
    const missing = caught(() => Keyring.fromConfig({ keyEnv: 'NEW_KEY', keyId: 'k2', fields: SECRET_FIELDS, keys: [{ keyId: 'k1', keyEnv: 'OLD_KEY' }, { keyId: 'k0', keyEnv: 'GONE_KEY' }] }, env));
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing).toMatchObject({ code: 'CUTOVER_CONFIG_INVALID' });
    expect((missing as Error).message).toMatch(/^encryption\.keys\[1\]\.keyEnv: environment variable GONE_KEY is not set/);
    const short = caught(() => Keyring.fromConfig({ keyEnv: 'NEW_KEY', keyId: 'k2', fields: SECRET_FIELDS, keys: [{ keyId: 'k1', keyEnv: 'SHORT' }] }, { ...env, SHORT: 'abcd' }));
    expect((short as Error).message).toMatch(/^encryption\.keys\[0\]\.keyEnv: environment variable SHORT does not hold a 256-bit key/);
  });

  it('refuses a key id given twice and a malformed section, naming the field', () => {
    const twice = caught(() => Keyring.fromConfig({ keyEnv: 'NEW_KEY', keyId: 'k2', fields: SECRET_FIELDS, keys: [{ keyId: 'k2', keyEnv: 'OLD_KEY' }] }, env));
    expect(twice).toMatchObject({ code: 'CUTOVER_CONFIG_INVALID' });
    expect((twice as Error).message).toContain('encryption.keys[0].keyId: duplicate key id k2');
    const bad = caught(() => Keyring.fromConfig({ keyEnv: 'NEW_KEY', keyId: 'no spaces', fields: SECRET_FIELDS }, env));
    expect((bad as ConfigError).issues).toEqual(['encryption.keyId: expected 1-64 letters, digits, dots, _ or -']);
  });
});

describe('Keyring.decryptAll', () => {
  it('decrypts values of both keys of a rotation, each chosen by its kid', () => {
    const { old, current } = rotationKeys();
    const doc = body();
    new FieldCipher(old.key, old.keyId, ['/customer/email']).encryptFields(doc, request);
    new FieldCipher(current.key, current.keyId, ['/card/number']).encryptFields(doc, request);
    expect((doc.customer.email as unknown as EncryptedValue).kid).toBe(old.keyId);
    expect((doc.card.number as unknown as EncryptedValue).kid).toBe(current.keyId);
    expect(keyringOf(current, [old]).decryptAll(doc, request)).toEqual(['/customer/email', '/card/number']);
    expect(doc).toEqual(body());
  });

  it('fails with CUTOVER_CRYPTO_FAILED on a kid it does not hold, naming the kid and the field', () => {
    const { old, current } = rotationKeys();
    const doc = body();
    new FieldCipher(old.key, old.keyId, SECRET_FIELDS).encryptFields(doc, request);
    const err = caught(() => keyringOf(current).decryptAll(structuredClone(doc), request));
    expect(err).toMatchObject({ code: 'CUTOVER_CRYPTO_FAILED' });
    expect((err as Error).message).toContain(`/customer/email of event evt-1 (request) was encrypted with key "${old.keyId}"`);
  });

  it('fails on a tampered value, a value moved to another field, and a value of another event', () => {
    const { current } = rotationKeys();
    const ring = keyringOf(current);
    const sealed = () => {
      const doc = body();
      ring.current.encryptFields(doc, request);
      return doc as unknown as { customer: { email: EncryptedValue }; card: { number: EncryptedValue } };
    };
    const tampered = sealed();
    const raw = Buffer.from(tampered.card.number.$enc, 'base64');
    raw[raw.length - 1]! ^= 1;
    tampered.card.number.$enc = raw.toString('base64');
    const moved = sealed();
    moved.card.number = moved.customer.email;
    for (const [doc, context] of [[tampered, request], [moved, request], [sealed(), { ...request, eventId: 'evt-2' }], [sealed(), { ...request, part: 'response' as const }]] as const) {
      expect(caught(() => ring.decryptAll(doc, context))).toMatchObject({ code: 'CUTOVER_CRYPTO_FAILED' });
    }
  });

  it('finds encrypted values wherever they are, inside arrays too', () => {
    const cipher = new FieldCipher(randomBytes(32), 'k', ['/lines/*/note']);
    const doc = { lines: [{ note: 'a' }, { note: 'b' }], other: { $enc: 'x' } };
    cipher.encryptFields(doc, request);
    expect(encryptedSlots(doc).map((s) => s.path)).toEqual([['lines', '0', 'note'], ['lines', '1', 'note']]);
  });
});

describe('openCallData and sealResult', () => {
  it('opens a copy of the call data and leaves the event as published', () => {
    const { current } = rotationKeys();
    const ring = keyringOf(current);
    const data = { body: body(), params: {}, query: {} };
    ring.current.encryptFields(data.body, request);
    const published = structuredClone(data);
    const open = openCallData(ring, 'evt-1', data);
    expect(open.body).toEqual(body());
    expect(data).toEqual(published);
    const clear = { body: { plain: true }, params: {}, query: {} };
    expect(openCallData(ring, 'evt-1', clear)).toBe(clear);
    expect(openCallData(undefined, 'evt-1', data)).toBe(data);
  });

  it('turns a value that does not decrypt into CUTOVER_CRYPTO_FAILED, not retriable', () => {
    const { old, current } = rotationKeys();
    const data = { body: body() };
    new FieldCipher(old.key, old.keyId, SECRET_FIELDS).encryptFields(data.body, request);
    expect(caught(() => openCallData(keyringOf(current), 'evt-1', data))).toMatchObject({ code: 'CUTOVER_CRYPTO_FAILED', retriable: false });
  });

  it('seals the configured response fields bound to the correlation id, like a direct observation', () => {
    const { current } = rotationKeys();
    const ring = keyringOf(current);
    const result = { status: 201, body: body() };
    const sealed = sealResult(ring, result, 'evt-1');
    expect(result.body).toEqual(body());
    expect(JSON.stringify(sealed)).not.toContain('alice@example.com');
    expect(JSON.stringify(sealed)).not.toContain('4111111111111111');
    expect(sealed.body.customer.name).toBe('Alice');
    expect(() => ring.decryptAll(structuredClone(sealed.body), { eventId: 'evt-1', part: 'request' })).toThrow(expect.objectContaining({ code: 'CUTOVER_CRYPTO_FAILED' }));
    const open = structuredClone(sealed.body);
    ring.decryptAll(open, { eventId: 'evt-1', part: 'response' });
    expect(open).toEqual(body());
  });

  it('withholds a reply body it cannot find fields in, and leaves results alone without a keyring', () => {
    const ring = keyringOf(rotationKeys().current);
    expect(sealResult(ring, { status: 200, body: 'email alice@example.com', bodyEncoding: 'utf8' as const }, 'evt-1')).toEqual({ status: 200, bodySkipped: 'unencryptable' });
    const result = { status: 200, body: body() };
    expect(sealResult(undefined, result, 'evt-1')).toBe(result);
  });
});
