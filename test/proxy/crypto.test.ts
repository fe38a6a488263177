import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FieldCipher, isEncrypted, loadKey } from '../../proxy/crypto.js';
import { ConfigError, ErrorCodes } from '../../src/errors.js';

const key = randomBytes(32);

describe('FieldCipher', () => {
  const cipher = new FieldCipher(key, 'k1', ['/card/number', '/customer/email', '/lines/*/note', '/a~1b']);

  it('encrypts configured fields in place and round-trips any JSON value', () => {
    const doc = { card: { number: '4111111111111111', brand: 'visa' }, customer: { email: 'a@b.c', id: 7 }, lines: [{ note: { x: 1 } }, { note: 5 }], 'a/b': true };
    expect(cipher.encryptFields(doc)).toBe(5);
    expect(doc.card.brand).toBe('visa');
    expect(JSON.stringify(doc)).not.toContain('4111111111111111');
    expect(JSON.stringify(doc)).not.toContain('a@b.c');
    expect(isEncrypted(doc.card.number)).toBe(true);
    expect(doc.card.number).toMatchObject({ kid: 'k1' });
    expect(cipher.decryptValue(doc.card.number as never)).toBe('4111111111111111');
    expect(cipher.decryptValue(doc.lines[0]!.note as never)).toEqual({ x: 1 });
    expect(cipher.decryptValue(doc['a/b'] as never)).toBe(true);
  });

  it('uses a fresh IV per value', () => {
    expect(cipher.encryptValue('same').$enc).not.toBe(cipher.encryptValue('same').$enc);
  });

  it('skips absent fields and non-objects', () => {
    expect(cipher.encryptFields({ other: 1 })).toBe(0);
    expect(cipher.encryptFields('text')).toBe(0);
    expect(cipher.encryptFields(null)).toBe(0);
  });

  it('rejects tampered ciphertext and other keys with CUTOVER_CRYPTO_FAILED', () => {
    const v = cipher.encryptValue('x');
    const raw = Buffer.from(v.$enc, 'base64');
    raw[raw.length - 1]! ^= 1;
    expect(() => cipher.decryptValue({ $enc: raw.toString('base64'), kid: 'k1' })).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
    expect(() => new FieldCipher(randomBytes(32), 'k1', ['/x']).decryptValue(v)).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
    expect(() => cipher.decryptValue({ ...v, kid: 'k2' })).toThrow(expect.objectContaining({ code: ErrorCodes.CRYPTO_FAILED }));
  });

  it('knows which body paths it covers and digests keys stably', () => {
    expect(cipher.covers(['card', 'number'])).toBe(true);
    expect(cipher.covers(['lines', '3', 'note', 'deep'])).toBe(true);
    expect(cipher.covers(['card', 'brand'])).toBe(false);
    expect(cipher.digest('4111')).toBe(cipher.digest('4111'));
    expect(cipher.digest('4111')).not.toContain('4111');
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
