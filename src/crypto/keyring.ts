import { ConfigError, CutoverError, ErrorCodes } from '../errors.js';
import { encryptionSchema, type EncryptionConfigInput } from '../config/sidecar.js';
import { formatIssues } from '../config/load.js';
import { FieldCipher, formatPointer, isEncrypted, loadKey, type EncryptedValue, type FieldContext } from './field-cipher.js';

/** One key of a {@link Keyring}: the 32 bytes and the id values encrypted with it carry (`kid`). */
export interface KeyringKey {
  keyId: string;
  key: Buffer;
}

export interface KeyringOptions {
  /** JSON pointers of the fields the current key encrypts (replies, observations). */
  fields: readonly string[];
  /** The key that encrypts; it decrypts too. */
  current: KeyringKey;
  /** Keys that only decrypt: older ones during a rotation (or a caller's key on a callee). */
  others?: readonly KeyringKey[];
}

/** Where an encrypted value sits in a document: its container, its name there and its concrete path. */
export interface EncryptedSlot {
  container: Record<string, unknown>;
  name: string;
  path: string[];
  value: EncryptedValue;
}

/**
 * Every `{ "$enc", "kid" }` value of `doc`, wherever it is, with its concrete path. Consumers decrypt by
 * what they find rather than by their own `fields` list, so a sidecar that encrypts one field more than
 * the consumer knows of still has its value decrypted (or refused), never passed on as a stray object.
 */
export function encryptedSlots(doc: unknown): EncryptedSlot[] {
  const out: EncryptedSlot[] = [];
  // Runs on every observation the comparator reads: one path array for the whole walk, copied only for a hit.
  const path: string[] = [];
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    const container = node as Record<string, unknown>;
    for (const name of Object.keys(container)) {
      const value = container[name];
      if (value === null || typeof value !== 'object') continue;
      path.push(name);
      if (isEncrypted(value)) out.push({ container, name, path: path.slice(), value });
      else visit(value);
      path.pop();
    }
  };
  visit(doc);
  return out;
}

/**
 * The keys a consumer holds, chosen by `kid`: the current key encrypts (and decrypts), the others only
 * decrypt, so a consumer given both keys of a rotation reads events from before and after the switch.
 */
export class Keyring {
  /** Encrypts what this process publishes (replies, observations). */
  readonly current: FieldCipher;
  private readonly byKid = new Map<string, FieldCipher>();

  constructor(options: KeyringOptions) {
    this.current = new FieldCipher(options.current.key, options.current.keyId, options.fields);
    this.byKid.set(this.current.kid, this.current);
    for (const other of options.others ?? []) {
      if (this.byKid.has(other.keyId)) throw new CutoverError(ErrorCodes.CONFIG_INVALID, `keyring: key id ${other.keyId} is given twice`);
      this.byKid.set(other.keyId, new FieldCipher(other.key, other.keyId, options.fields));
    }
  }

  /**
   * The keyring of an `encryption:` section (validated here too, for SDK callers): `keyEnv` / `keyId` as
   * the current key, `keys` as the ones that only decrypt. Throws a ConfigError (CUTOVER_CONFIG_INVALID)
   * naming the field, or the variable and its config path when a key is missing or not 32 bytes.
   */
  static fromConfig(input: EncryptionConfigInput, env: NodeJS.ProcessEnv): Keyring {
    const parsed = encryptionSchema.safeParse(input);
    if (!parsed.success) {
      const issues = formatIssues(parsed.error).map((issue) => `encryption.${issue}`);
      throw new ConfigError(ErrorCodes.CONFIG_INVALID, issues.join('; '), issues);
    }
    const config = parsed.data;
    const seen = new Set([config.keyId]);
    config.keys.forEach((k, i) => {
      if (seen.has(k.keyId)) {
        const issue = `encryption.keys[${i}].keyId: duplicate key id ${k.keyId} (each kid names one key)`;
        throw new ConfigError(ErrorCodes.CONFIG_INVALID, issue, [issue]);
      }
      seen.add(k.keyId);
    });
    return new Keyring({
      fields: config.fields,
      current: { keyId: config.keyId, key: loadKey(config, env) },
      others: config.keys.map((k, i) => ({ keyId: k.keyId, key: loadKey(k, env, `encryption.keys[${i}].keyEnv`) })),
    });
  }

  /**
   * The cipher that seals an answer to a call encrypted with `kid`: that key when this keyring holds it, so
   * whoever encrypted the call can read the answer (a caller's sidecar holds its own key, not the callee's),
   * else the current key.
   */
  cipherFor(kid: string | undefined): FieldCipher {
    return (kid !== undefined ? this.byKid.get(kid) : undefined) ?? this.current;
  }

  /** Key ids held, the current one first. */
  get kids(): string[] {
    return [...this.byKid.keys()];
  }

  /**
   * Decrypts, in place, every encrypted value of `doc`, each with the key its `kid` names and checked
   * against its own path and `context`. Returns the JSON pointers it decrypted. Throws
   * CUTOVER_CRYPTO_FAILED on the first value with an unknown `kid` or that does not decrypt; `doc` may then
   * be half decrypted, so callers decrypt a copy and drop it on failure.
   */
  decryptAll(doc: unknown, context: FieldContext): string[] {
    const pointers: string[] = [];
    for (const slot of encryptedSlots(doc)) {
      const pointer = formatPointer(slot.path);
      const cipher = this.byKid.get(slot.value.kid);
      if (!cipher) {
        throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `value at ${pointer} of event ${context.eventId} (${context.part}) was encrypted with key ${JSON.stringify(slot.value.kid.slice(0, 64))}, which this keyring does not hold (it holds ${this.kids.join(', ')})`);
      }
      slot.container[slot.name] = cipher.decryptValue(slot.value, context, pointer);
      pointers.push(pointer);
    }
    return pointers;
  }
}
