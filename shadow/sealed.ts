import type { FieldDiff } from '../src/parity/types.js';
import type { Keyring } from '../src/crypto/keyring.js';
import { encryptedSlots } from '../src/crypto/keyring.js';
import { isCutoverError } from '../src/errors.js';
import { preview } from './diff.js';
import type { Observation } from './observations.js';
import { parsePointer } from './pointer.js';

/** What a parity record shows instead of an encrypted field's value, clear or not. */
export const SEALED_VALUE = '[ENCRYPTED]';

/**
 * How opening an observation's encrypted fields went: `none` had none, `failed` keeps its ciphertext,
 * `deferred` (no keyring) left the body as published and its encrypted values to be found if the pair differs.
 */
export type OpenOutcome = 'none' | 'decrypted' | 'failed' | 'deferred';

const NONE = { outcome: 'none' } as const;
const DEFERRED = { outcome: 'deferred' } as const;

/**
 * Prepares an observation for comparison. With a keyring: records where its body holds encrypted values
 * (`obs.sealed`, body-relative paths) and replaces `obs.data` by a copy whose values are decrypted (bound
 * to the correlation id and `response`, as the sidecar and the bus side encrypt them). A value that does
 * not decrypt leaves the whole body as published (`failed`): the pair is then compared by ciphertext,
 * never on a half-decrypted body. Without a keyring the body is compared as published (by ciphertext), so
 * where it holds encrypted values matters only to the differences of a pair: {@link sealDiffs} finds
 * them then (`deferred`), instead of every observation walking its body for them.
 */
export function openObservation(obs: Observation, keyring: Keyring | undefined): { outcome: OpenOutcome; code?: string } {
  const body = obs.data.body;
  if (body === null || typeof body !== 'object' || obs.data.bodyEncoding !== undefined) return NONE;
  if (!keyring) {
    obs.sealedDeferred = true;
    return DEFERRED;
  }
  const slots = encryptedSlots(body);
  if (slots.length === 0) return NONE;
  obs.sealed = slots.map((s) => s.path);
  const copy = structuredClone(body);
  try {
    keyring.decryptAll(copy, { eventId: obs.correlationId, part: 'response' });
  } catch (err) {
    return { outcome: 'failed', ...(isCutoverError(err) ? { code: err.code } : {}) };
  }
  obs.data = { ...obs.data, body: copy };
  return { outcome: 'decrypted' };
}

/**
 * The differences of a pair as a parity record may carry them: a difference at or inside an encrypted
 * field shows {@link SEALED_VALUE} on both sides, and a difference whose value contains encrypted fields
 * shows that value with those fields replaced by it. Encrypted fields are the ones either side's body
 * held encrypted, plus those `secret` (the configured fields) covers, so a decrypted value never lands in
 * a record, a report or the bus.
 */
export function sealDiffs(diffs: FieldDiff[], direct: Observation, bus: Observation, secret?: (bodyPath: readonly string[]) => boolean): FieldDiff[] {
  if (diffs.length === 0) return diffs;
  const sealed = [...sealedPaths(direct), ...sealedPaths(bus)];
  if (sealed.length === 0 && !secret) return diffs;
  let views: { direct: unknown; bus: unknown } | undefined;
  return diffs.map((d) => {
    if (!d.path.startsWith('/body')) return d;
    const path = parsePointer(d.path).slice(1);
    const inside = sealed.some((s) => isPrefix(s, path)) || (secret?.(path) ?? false);
    if (inside) return withValues(d, () => SEALED_VALUE);
    if (!sealed.some((s) => isPrefix(path, s))) return d;
    views ??= { direct: maskedBody(direct.data.body, sealed), bus: maskedBody(bus.data.body, sealed) };
    const v = views;
    return withValues(d, (side) => {
      const found = valueAt(v[side], path);
      return found.ok ? preview(found.value) : SEALED_VALUE;
    });
  });
}

/** Where an observation's body holds encrypted values, found now when {@link openObservation} deferred it. */
function sealedPaths(obs: Observation): string[][] {
  if (obs.sealedDeferred) {
    obs.sealedDeferred = false;
    const slots = encryptedSlots(obs.data.body);
    if (slots.length > 0) obs.sealed = slots.map((s) => s.path);
  }
  return obs.sealed ?? [];
}

function withValues(d: FieldDiff, value: (side: 'direct' | 'bus') => unknown): FieldDiff {
  const out: FieldDiff = { path: d.path, kind: d.kind };
  if ('direct' in d) out.direct = value('direct');
  if ('bus' in d) out.bus = value('bus');
  return out;
}

function isPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((t, i) => t === path[i]);
}

/** A copy of `body` with every path of `sealed` that exists in it replaced by {@link SEALED_VALUE}. */
function maskedBody(body: unknown, sealed: readonly string[][]): unknown {
  if (body === null || typeof body !== 'object') return body;
  const copy = structuredClone(body) as Record<string, unknown>;
  for (const path of sealed) {
    const parent = valueAt(copy, path.slice(0, -1));
    const name = path[path.length - 1]!;
    if (parent.ok && parent.value !== null && typeof parent.value === 'object' && name in (parent.value as object)) {
      (parent.value as Record<string, unknown>)[name] = SEALED_VALUE;
    }
  }
  return copy;
}

function valueAt(doc: unknown, path: readonly string[]): { ok: true; value: unknown } | { ok: false } {
  let node = doc;
  for (const name of path) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, name)) return { ok: false };
    node = (node as Record<string, unknown>)[name];
  }
  return { ok: true, value: node };
}
