import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { ConfigError, CutoverError, ErrorCodes } from '../errors.js';
import type { EncryptionConfig } from '../config/sidecar.js';

/** An encrypted field as it appears in a published body. */
export interface EncryptedValue {
  /** base64 of iv (12 bytes) | auth tag (16 bytes) | ciphertext of the field's JSON text. */
  $enc: string;
  kid: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Reads the 256-bit key from the environment variable `keyEnv`: 64 hex characters or base64 of 32 bytes.
 * Throws a ConfigError naming the variable and the config path (`field`, default `encryption.keyEnv`) when
 * it is missing or unusable.
 */
export function loadKey(config: Pick<EncryptionConfig, 'keyEnv'>, env: NodeJS.ProcessEnv, field = 'encryption.keyEnv'): Buffer {
  const raw = env[config.keyEnv]?.trim();
  const fail = (why: string): never => {
    const issue = `${field}: environment variable ${config.keyEnv} ${why}`;
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

/** The JSON pointer of a concrete path (`['lines', '0', 'note']` → `/lines/0/note`). */
export function formatPointer(tokens: readonly string[]): string {
  return tokens.map((t) => '/' + t.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/**
 * Where an encrypted value belongs: the call (its event id, the correlation id of its observations), the
 * body it is in, and its concrete field path. Bound as AES-GCM additional data, so a ciphertext copied to
 * another field, another body or another event fails to decrypt instead of passing as that field's value.
 */
export interface FieldContext {
  eventId: string;
  part: 'request' | 'response';
}

/** The additional authenticated data of one value: `cutover-field-v1`, event id, part, pointer, NUL-separated. */
export function fieldAad(context: FieldContext, pointer: string): Buffer {
  return Buffer.from(['cutover-field-v1', context.eventId, context.part, pointer].join('\0'), 'utf8');
}

/**
 * One subkey per use, from the configured key (HKDF-SHA-256): the AES key never doubles as the HMAC key of
 * partition keys, so what one use reveals (a digest an attacker can choose inputs for) says nothing
 * about the other.
 */
function subkey(key: Buffer, use: 'field-encryption' | 'key-digest'): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `cutover ${use} v1`, 32));
}

/**
 * AES-256-GCM encryption of configured JSON fields. Each value gets a fresh random IV and is bound to its
 * field and call ({@link FieldContext}); the field's JSON text is encrypted so numbers and objects
 * round-trip. Field names match case-insensitively: a server reading `Email` as `email` must not let the
 * value through in clear. The key id travels with every value and in the event (`cutoverkid`), so
 * consumers can pick the key after a rotation.
 */
export class FieldCipher {
  readonly kid: string;
  private readonly encKey: Buffer;
  private readonly digestKey: Buffer;
  private readonly pointers: string[][];

  constructor(key: Buffer, kid: string, fields: readonly string[]) {
    if (key.length !== 32) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `AES-256-GCM needs a 32-byte key, got ${key.length} bytes`);
    this.encKey = subkey(key, 'field-encryption');
    this.digestKey = subkey(key, 'key-digest');
    this.kid = kid;
    this.pointers = fields.map((f) => parsePointer(f).map((t) => t.toLowerCase()));
  }

  static fromConfig(config: EncryptionConfig, env: NodeJS.ProcessEnv): FieldCipher {
    return new FieldCipher(loadKey(config, env), config.keyId, config.fields);
  }

  /** Encrypts `value` as the field at `pointer` (a concrete JSON pointer) of the call `context`. */
  encryptValue(value: unknown, context: FieldContext, pointer: string): EncryptedValue {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.encKey, iv);
    cipher.setAAD(fieldAad(context, pointer));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return { $enc: Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64'), kid: this.kid };
  }

  /**
   * Decrypts the value found at `pointer` of the call `context`. Throws CUTOVER_CRYPTO_FAILED on a wrong
   * key, another key id, tampered ciphertext, or a value encrypted for another field, body or event.
   */
  decryptValue(value: EncryptedValue, context: FieldContext, pointer: string): unknown {
    if (value.kid !== this.kid) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `value was encrypted with key ${value.kid}, this cipher holds ${this.kid}`);
    const raw = Buffer.from(value.$enc, 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, 'ciphertext too short');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.encKey, raw.subarray(0, IV_BYTES));
      decipher.setAAD(fieldAad(context, pointer));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      return JSON.parse(plain.toString('utf8'));
    } catch (err) {
      throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `value at ${pointer} does not decrypt with this key for event ${context.eventId} (${context.part}): wrong key, tampered, or moved from another field or event`, { cause: err });
    }
  }

  /** Encrypts every configured field present in `doc` (in place). Returns how many values it encrypted. */
  encryptFields(doc: unknown, context: FieldContext): number {
    let count = 0;
    this.walk(doc, (container, name, path) => {
      const value = container[name];
      if (value === undefined || isEncrypted(value)) return;
      container[name] = this.encryptValue(value, context, formatPointer(path));
      count++;
    });
    return count;
  }

  /**
   * Decrypts, in place, every encrypted value at a configured field of `doc`, each checked against its
   * own field path and `context`. Throws CUTOVER_CRYPTO_FAILED on the first that does not decrypt.
   */
  decryptFields(doc: unknown, context: FieldContext): number {
    let count = 0;
    this.walk(doc, (container, name, path) => {
      const value = container[name];
      if (!isEncrypted(value)) return;
      container[name] = this.decryptValue(value, context, formatPointer(path));
      count++;
    });
    return count;
  }

  /** Replaces every configured field of `doc` by `mask` (in place): a view that shows neither value nor ciphertext. */
  maskFields(doc: unknown, mask: string): void {
    this.walk(doc, (container, name) => {
      container[name] = mask;
    });
  }

  /**
   * Whether a body field path (`['card', 'number']`) is, or lies inside, an encrypted field: a partition
   * key taken from it must not travel in clear text.
   */
  covers(path: readonly string[]): boolean {
    return this.pointers.some((tokens) => tokens.length <= path.length && tokens.every((t, i) => t === '*' || t === path[i]!.toLowerCase()));
  }

  /** A stable keyed digest: same input, same partition key, without revealing the value. */
  digest(value: string): string {
    return 'h-' + createHmac('sha256', this.digestKey).update(value).digest('base64url').slice(0, 27);
  }

  private walk(doc: unknown, visit: (container: Record<string, unknown>, name: string, path: string[]) => void): void {
    for (const tokens of this.pointers) this.step(doc, tokens, 0, [], visit);
  }

  private step(node: unknown, tokens: readonly string[], depth: number, path: string[], visit: (container: Record<string, unknown>, name: string, path: string[]) => void): void {
    if (node === null || typeof node !== 'object') return;
    const token = tokens[depth]!;
    const container = node as Record<string, unknown>;
    for (const name of Object.keys(container)) {
      if (token !== '*' && name.toLowerCase() !== token) continue;
      if (depth === tokens.length - 1) visit(container, name, [...path, name]);
      else this.step(container[name], tokens, depth + 1, [...path, name], visit);
    }
  }
}

export function isEncrypted(value: unknown): value is EncryptedValue {
  return typeof value === 'object' && value !== null && typeof (value as EncryptedValue).$enc === 'string' && typeof (value as EncryptedValue).kid === 'string';
}
