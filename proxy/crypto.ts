import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { ConfigError, CutoverError, ErrorCodes } from '../src/errors.js';
import type { EncryptionConfig } from '../src/config/sidecar.js';

/** An encrypted field as it appears in a published body. */
export interface EncryptedValue {
  /** base64 of iv (12 bytes) | auth tag (16 bytes) | ciphertext of the field's JSON text. */
  $enc: string;
  kid: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Reads the 256-bit key from the environment variable the config names: 64 hex characters or base64 of
 * 32 bytes. Throws a ConfigError naming the variable (and the config path) when it is missing or unusable.
 */
export function loadKey(config: EncryptionConfig, env: NodeJS.ProcessEnv): Buffer {
  const raw = env[config.keyEnv]?.trim();
  const fail = (why: string): never => {
    const issue = `encryption.keyEnv: environment variable ${config.keyEnv} ${why}`;
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, issue, [issue]);
  };
  if (!raw) return fail('is not set (it must hold the 256-bit AES key: 64 hex characters or base64 of 32 bytes)');
  const key = /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) return fail(`does not hold a 256-bit key (got ${key.length} bytes; expected 64 hex characters or base64 of 32 bytes)`);
  return key;
}

/** A JSON pointer split into unescaped tokens (`*` stands for every element or property). */
export function parsePointer(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * AES-256-GCM encryption of configured JSON fields. Each value gets a fresh random IV; the field's JSON
 * text is encrypted so numbers and objects round-trip. The key id travels with every value and in the
 * event (`cutoverkid`), so consumers can pick the key after a rotation.
 */
export class FieldCipher {
  readonly kid: string;
  private readonly key: Buffer;
  private readonly pointers: string[][];

  constructor(key: Buffer, kid: string, fields: readonly string[]) {
    if (key.length !== 32) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `AES-256-GCM needs a 32-byte key, got ${key.length} bytes`);
    this.key = key;
    this.kid = kid;
    this.pointers = fields.map(parsePointer);
  }

  static fromConfig(config: EncryptionConfig, env: NodeJS.ProcessEnv): FieldCipher {
    return new FieldCipher(loadKey(config, env), config.keyId, config.fields);
  }

  encryptValue(value: unknown): EncryptedValue {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return { $enc: Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64'), kid: this.kid };
  }

  /** Throws CUTOVER_CRYPTO_FAILED on a wrong key, another key id, or tampered ciphertext. */
  decryptValue(value: EncryptedValue): unknown {
    if (value.kid !== this.kid) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `value was encrypted with key ${value.kid}, this cipher holds ${this.kid}`);
    const raw = Buffer.from(value.$enc, 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, 'ciphertext too short');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      return JSON.parse(plain.toString('utf8'));
    } catch (err) {
      throw new CutoverError(ErrorCodes.CRYPTO_FAILED, 'ciphertext does not decrypt with this key', { cause: err });
    }
  }

  /** Encrypts every configured field present in `doc` (in place). Returns how many values it encrypted. */
  encryptFields(doc: unknown): number {
    let count = 0;
    for (const tokens of this.pointers) count += this.apply(doc, tokens, 0);
    return count;
  }

  /**
   * Whether a body field path (`['card', 'number']`) is, or lies inside, an encrypted field: a partition
   * key taken from it must not travel in clear text.
   */
  covers(path: readonly string[]): boolean {
    return this.pointers.some((tokens) => tokens.length <= path.length && tokens.every((t, i) => t === '*' || t === path[i]));
  }

  /** A stable keyed digest: same input, same partition key, without revealing the value. */
  digest(value: string): string {
    return 'h-' + createHmac('sha256', this.key).update(value).digest('base64url').slice(0, 27);
  }

  private apply(node: unknown, tokens: readonly string[], depth: number): number {
    if (node === null || typeof node !== 'object') return 0;
    const token = tokens[depth]!;
    const last = depth === tokens.length - 1;
    const container = node as Record<string, unknown>;
    const names = token === '*' ? Object.keys(container) : Object.prototype.hasOwnProperty.call(container, token) ? [token] : [];
    let count = 0;
    for (const name of names) {
      if (last) {
        const value = container[name];
        if (value === undefined || isEncrypted(value)) continue;
        container[name] = this.encryptValue(value);
        count++;
      } else {
        count += this.apply(container[name], tokens, depth + 1);
      }
    }
    return count;
  }
}

export function isEncrypted(value: unknown): value is EncryptedValue {
  return typeof value === 'object' && value !== null && typeof (value as EncryptedValue).$enc === 'string' && typeof (value as EncryptedValue).kid === 'string';
}
