import { createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FieldCipher, fieldAad, isEncrypted, loadKey } from '../../src/crypto/field-cipher.js';
import { encryptBody } from '../../src/crypto/body-fields.js';
import { encodeBody } from '../../src/events/body.js';
import { ConfigError, ErrorCodes } from '../../src/errors.js';

const key = randomBytes(32);

const ctx = { eventId: 'evt-1', part: 'request' } as const;

describe('FieldCipher', () => {
  const cipher = new FieldCipher(key, 'k1', ['/card/number', '/customer/email', '/lines/*/note', '/a~1b']);

  it('encrypts configured fields in place and round-trips any JSON value', () => {
    const doc = { card: { number: '4111111111111111', brand: 'visa' }, customer: { email: 'a@b.c', id: 7 }, lines: [{ note: { x: 1 } }, { note: 5 }], 'a/b': true };
    expect(cipher.encryptFields(doc, ctx)).toBe(5);
    expect(doc.card.brand).toBe('visa');
    expect(JSON.stringify(doc)).not.toContain('4111111111111111');
    expect(JSON.stringify(doc)).not.toContain('a@b.c');
    expect(isEncrypted(doc.card.number)).toBe(true);
    expect(doc.card.number).toMatchObject({ kid: 'k1' });
    expect(cipher.decryptValue(doc.card.number as never, ctx, '/card/number')).toBe('4111111111111111');
    expect(cipher.decryptValue(doc.lines[0]!.note as never, ctx, '/lines/0/note')).toEqual({ x: 1 });
    expect(cipher.decryptValue(doc['a/b'] as never, ctx, '/a~1b')).toBe(true);
    const copy = structuredClone(doc);
    expect(cipher.decryptFields(copy, ctx)).toBe(5);
    expect(copy).toEqual({ card: { number: '4111111111111111', brand: 'visa' }, customer: { email: 'a@b.c', id: 7 }, lines: [{ note: { x: 1 } }, { note: 5 }], 'a/b': true });
  });

  it('uses a fresh IV per value', () => {
    expect(cipher.encryptValue('same', ctx, '/x').$enc).not.toBe(cipher.encryptValue('same', ctx, '/x').$enc);
  });

  it('skips absent fields and non-objects', () => {
    expect(cipher.encryptFields({ other: 1 }, ctx)).toBe(0);
    expect(cipher.encryptFields('text', ctx)).toBe(0);
    expect(cipher.encryptFields(null, ctx)).toBe(0);
  });

  it('rejects tampered ciphertext and other keys with CUTOVER_CRYPTO_FAILED', () => {
    const v = cipher.encryptValue('x', ctx, '/x');
    const raw = Buffer.from(v.$enc, 'base64');
    raw[raw.length - 1]! ^= 1;
    expect(() => cipher.decryptValue({ $enc: raw.toString('base64'), kid: 'k1' }, ctx, '/x')).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
    expect(() => new FieldCipher(randomBytes(32), 'k1', ['/x']).decryptValue(v, ctx, '/x')).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
    expect(() => cipher.decryptValue({ ...v, kid: 'k2' }, ctx, '/x')).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
  });

  it('a ciphertext moved to another field, body or event does not decrypt', () => {
    const doc = { card: { number: '4111111111111111' }, customer: { email: 'a@b.c' } };
    cipher.encryptFields(doc, ctx);
    const moved = { card: { number: doc.customer.email }, customer: { email: doc.card.number } };
    expect(() => cipher.decryptFields(moved, ctx)).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED, message: expect.stringContaining('moved from another field or event') }));
    expect(() => cipher.decryptValue(doc.card.number as never, { eventId: 'evt-2', part: 'request' }, '/card/number')).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
    expect(() => cipher.decryptValue(doc.card.number as never, { eventId: 'evt-1', part: 'response' }, '/card/number')).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
    expect(cipher.decryptValue(doc.card.number as never, ctx, '/card/number')).toBe('4111111111111111');
  });

  it('matches field names in any case', () => {
    const doc = { Card: { NUMBER: '4111111111111111' }, customer: { Email: 'a@b.c', email: 'c@d.e' } };
    expect(cipher.encryptFields(doc, ctx)).toBe(3);
    expect(JSON.stringify(doc)).not.toMatch(/4111|a@b\.c|c@d\.e/);
    expect(cipher.decryptValue(doc.Card.NUMBER as never, ctx, '/Card/NUMBER')).toBe('4111111111111111');
    expect(cipher.covers(['CUSTOMER', 'Email'])).toBe(true);
  });

  it('derives separate subkeys: the configured key is neither the AES key nor the digest key', () => {
    const v = cipher.encryptValue('secret', ctx, '/x');
    const raw = Buffer.from(v.$enc, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAAD(fieldAad(ctx, '/x'));
    decipher.setAuthTag(raw.subarray(12, 28));
    decipher.update(raw.subarray(28));
    expect(() => decipher.final()).toThrow();
    const rawHmac = 'h-' + createHmac('sha256', key).update('4111').digest('base64url').slice(0, 27);
    expect(cipher.digest('4111')).not.toBe(rawHmac);
    const digestKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'cutover key-digest v1', 32));
    expect(cipher.digest('4111')).toBe('h-' + createHmac('sha256', digestKey).update('4111').digest('base64url').slice(0, 27));
  });

  it('knows which body paths it covers and digests keys stably', () => {
    expect(cipher.covers(['card', 'number'])).toBe(true);
    expect(cipher.covers(['lines', '3', 'note', 'deep'])).toBe(true);
    expect(cipher.covers(['card', 'brand'])).toBe(false);
    expect(cipher.digest('4111')).toBe(cipher.digest('4111'));
    expect(cipher.digest('4111')).not.toContain('4111');
  });
});

describe('encryptBody fails closed', () => {
  const cipher = new FieldCipher(key, 'k1', ['/email']);
  const cases: Array<[string, Buffer, string | undefined]> = [
    ['malformed JSON', Buffer.from('{"email": "a@b.c",'), 'application/json'],
    ['a form', Buffer.from('email=a%40b.c&name=x'), 'application/x-www-form-urlencoded'],
    ['text', Buffer.from('email a@b.c'), 'text/plain'],
    ['bytes that are not UTF-8', Buffer.concat([Buffer.from('{"email":"a@b.c"'), Buffer.from([0xff])]), 'application/json'],
  ];
  for (const [what, raw, type] of cases) {
    it(`withholds ${what}: no body, bodySkipped unencryptable`, () => {
      const encoded = encodeBody(raw, type);
      expect(encryptBody(cipher, encoded, ctx)).toBeUndefined();
      expect(encoded).toMatchObject({ bodySkipped: 'unencryptable' });
      expect(encoded.body).toBeUndefined();
      expect(JSON.stringify(encoded)).not.toContain('a@b.c');
    });
  }

  it('parses JSON behind a byte-order mark and encrypts its fields', () => {
    const encoded = encodeBody(Buffer.from('\uFEFF{"email":"a@b.c","n":1}'), 'application/json');
    expect(encoded.bodyEncoding).toBe('utf8');
    expect(encryptBody(cipher, encoded, ctx)).toBe('k1');
    expect(encoded.bodyEncoding).toBeUndefined();
    expect((encoded.body as { n: number }).n).toBe(1);
    expect(JSON.stringify(encoded)).not.toContain('a@b.c');
  });

  it('leaves bodies alone without a cipher', () => {
    const encoded = encodeBody(Buffer.from('email a@b.c'), 'text/plain');
    expect(encryptBody(undefined, encoded)).toBeUndefined();
    expect(encoded.body).toBe('email a@b.c');
  });
});

describe('loadKey', () => {
  const config = { keyEnv: 'PII_KEY', keyId: 'k1', fields: ['/x'] };

  it('accepts hex and base64 keys', () => {
    expect(loadKey(config, { PII_KEY: key.toString('hex') })).toEqual(key);
    expect(loadKey(config, { PII_KEY: key.toString('base64') })).toEqual(key);
  });

  it('names the variable when it is missing or not 256 bits', () => {
    const missing = (() => {
      try {
        loadKey(config, {});
      } catch (err) {
        return err;
      }
    })();
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).code).toBe(ErrorCodes.CONFIG_INVALID);
    expect((missing as ConfigError).issues[0]).toMatch(/^encryption\.keyEnv: environment variable PII_KEY is not set/);
    expect(() => loadKey(config, { PII_KEY: 'c2hvcnQ=' })).toThrow(/PII_KEY does not hold a 256-bit key/);
  });
});
