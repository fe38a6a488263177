import { randomBytes } from 'node:crypto';
import { Keyring } from '../../src/crypto/keyring.js';

/** Two 256-bit keys and their ids, as a rotation has them: the old one and the new one. */
export function rotationKeys(): { old: { keyId: string; key: Buffer }; current: { keyId: string; key: Buffer } } {
  return { old: { keyId: 'pii-2026-01', key: randomBytes(32) }, current: { keyId: 'pii-2026-02', key: randomBytes(32) } };
}

/** The fields the encrypted-flow tests protect: one in the request and the response each, and both. */
export const SECRET_FIELDS = ['/customer/email', '/card/number'];

export function keyringOf(current: { keyId: string; key: Buffer }, others: Array<{ keyId: string; key: Buffer }> = []): Keyring {
  return new Keyring({ fields: SECRET_FIELDS, current, others });
}
