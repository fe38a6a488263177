import type { EncodedBody } from '../events/body.js';
import { CutoverError, ErrorCodes } from '../errors.js';
import type { FieldCipher, FieldContext } from './field-cipher.js';
import { encryptedSlots, type Keyring } from './keyring.js';

/** A body whose fields cannot be found is not published when fields must be encrypted. */
export type WithheldBody = EncodedBody & { bodySkipped?: string };

/**
 * Fail closed: a body that is not JSON cannot have its fields encrypted, and publishing it raw would
 * publish them in clear (malformed JSON, a form, text with the e-mail address in it). Such a body is
 * removed and marked `bodySkipped: 'unencryptable'`. JSON behind a byte-order mark is parsed instead (the
 * mark dropped). Returns whether the body was withheld.
 */
export function withholdUnencryptable(encoded: WithheldBody): boolean {
  if (encoded.body === undefined || encoded.bodyEncoding === undefined) return false;
  if (encoded.bodyEncoding !== 'base64' && typeof encoded.body === 'string' && encoded.body.startsWith('\uFEFF')) {
    try {
      encoded.body = JSON.parse(encoded.body.slice(1)) as unknown;
      delete encoded.bodyEncoding;
      return false;
    } catch {
      // Not JSON after all: withheld below.
    }
  }
  delete encoded.body;
  delete encoded.bodyEncoding;
  encoded.bodySkipped = 'unencryptable';
  return true;
}

/**
 * Encrypts the configured fields of a JSON body in place (call events, observations and bus replies
 * alike), each bound to its field and `context`, after withholding a body that cannot be encrypted
 * ({@link withholdUnencryptable}). Returns the key id when any field was encrypted, so the event can name it.
 * Without a context the values are bound to their fields only: give the call's event id.
 */
export function encryptBody(cipher: FieldCipher | undefined, encoded: WithheldBody, context: FieldContext = { eventId: '', part: 'response' }): string | undefined {
  if (!cipher) return undefined;
  withholdUnencryptable(encoded);
  if (encoded.body === null || typeof encoded.body !== 'object') return undefined;
  return cipher.encryptFields(encoded.body, context) > 0 ? cipher.kid : undefined;
}

/**
 * A bus-side result (a replay's answer, an SDK agent's reply) as it may be published: a copy whose
 * configured response fields are encrypted, bound exactly like the sidecar binds the direct observation
 * (the call's correlation id, `response`), so clear values never reach the bus and a comparator holding
 * the key decrypts both sides alike. The key is the one the call was encrypted with (`callKid`, the call
 * event's `cutoverkid`) when the keyring holds it, else the current one. Without a keyring, `result`.
 */
export function sealResult<T extends WithheldBody>(keyring: Keyring | undefined, result: T, correlationId: string, callKid?: string): T {
  if (!keyring || result.body === undefined) return result;
  const sealed = { ...result, body: structuredClone(result.body) };
  encryptBody(keyring.cipherFor(callKid), sealed, { eventId: correlationId, part: 'response' });
  return sealed;
}

/**
 * A bus reply's body with its encrypted response values decrypted (bound to `correlationId` and
 * `response`), for a caller that is answered with it. A reply without encrypted values is returned as it
 * is. Throws CUTOVER_CRYPTO_FAILED when a value does not decrypt or when there is no keyring to decrypt
 * with: a caller never gets `{ "$enc" }` objects in place of its answer's fields.
 */
export function openReplyData<T>(keyring: Keyring | undefined, correlationId: string, data: T): T {
  if (data === null || typeof data !== 'object') return data;
  const body = (data as EncodedBody).body;
  if (body === null || typeof body !== 'object' || (data as EncodedBody).bodyEncoding !== undefined) return data;
  if (encryptedSlots(body).length === 0) return data;
  if (!keyring) throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `the reply to ${correlationId} carries encrypted fields and this process holds no encryption key (configure encryption: with the key they were sealed with)`);
  const copy = structuredClone(body);
  try {
    keyring.decryptAll(copy, { eventId: correlationId, part: 'response' });
  } catch (err) {
    if (err instanceof CutoverError) throw err;
    throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `the reply to ${correlationId} could not be decrypted`, { cause: err });
  }
  return { ...data, body: copy };
}

/**
 * A copy of a call event's `data` with every encrypted request-body value decrypted (bound to the event's
 * `id` and `request`). Without a keyring, or without encrypted values, `data` itself. Throws
 * CUTOVER_CRYPTO_FAILED (not retriable) when a value does not decrypt: a replay never runs on a half
 * decrypted body.
 */
export function openCallData<T>(keyring: Keyring | undefined, eventId: string, data: T): T {
  if (!keyring || data === null || typeof data !== 'object') return data;
  const body = (data as EncodedBody).body;
  if (body === null || typeof body !== 'object' || (data as EncodedBody).bodyEncoding !== undefined) return data;
  const copy = structuredClone(body);
  try {
    if (keyring.decryptAll(copy, { eventId, part: 'request' }).length === 0) return data;
  } catch (err) {
    if (err instanceof CutoverError) throw err;
    throw new CutoverError(ErrorCodes.CRYPTO_FAILED, `event ${eventId}: the request body could not be decrypted`, { cause: err });
  }
  return { ...data, body: copy };
}
