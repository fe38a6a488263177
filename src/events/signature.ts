import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AclConfig } from '../config/acl.js';
import type { IdentityConfig, TrustConfig } from '../config/identity.js';
import { effectiveAcl, TopicAcl } from '../acl/rules.js';
import { ConfigError, CutoverError, ErrorCodes } from '../errors.js';
import type { CloudEvent } from './types.js';
import { rpcAttributesProblem } from './wire.js';

/**
 * Agent identity on the wire: who produced an event, proven with an Ed25519 signature that consumers check
 * against public keys only. The signature travels in three extension attributes (CloudEvents names:
 * lowercase, no underscores) and covers {@link signedContent}, which includes the topic, so a signed event
 * copied onto another topic no longer verifies.
 */
export const SignatureAttributes = {
  /** base64url Ed25519 signature of the signed content. */
  signature: 'signature',
  /** Which of the signer's keys made it (rotation: several are valid at once). */
  keyId: 'signaturekeyid',
  /** The agent that signed; must be the event's `source` agent when that is `/agents/<agent>`. */
  agent: 'signatureagent',
} as const;

/** Transport headers covered by the signature: the ones an HTTP replay rebuilds the request from. */
const SIGNED_HEADER_PREFIX = 'cutover-http-';

/** Version tag at the head of the signed content, so a later format cannot be confused with this one. */
const CONTENT_VERSION = 'cutover.signature.v1';

/** What a signer needs: the agent, its key id and private key. */
export interface Signer {
  agent: string;
  keyId: string;
  key: KeyObject;
}

/** Public keys per agent and key id, and the migration and enforcement settings. */
export interface Trust {
  keys: ReadonlyMap<string, ReadonlyMap<string, KeyObject>>;
  allowUnsigned: ReadonlySet<string>;
  enforce: boolean;
}

/** Why an event was not accepted. */
export interface Rejection {
  code: typeof ErrorCodes.AUTH_UNSIGNED | typeof ErrorCodes.AUTH_BAD_SIGNATURE | typeof ErrorCodes.AUTH_UNKNOWN_AGENT | typeof ErrorCodes.AUTH_TOPIC_DENIED;
  reason: string;
}

/**
 * JSON with object keys sorted (by UTF-16 code units) and no whitespace, following JSON.stringify's rules
 * for the rest (toJSON, undefined members left out, undefined in arrays as null), so that the producer's
 * object and the consumer's parsed copy give the same bytes whatever order the keys came in.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value) ?? 'null';
}

function canonical(value: unknown): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v) ?? 'null').join(',')}]`;
  const members: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const text = canonical((value as Record<string, unknown>)[key]);
    if (text !== undefined) members.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${members.join(',')}}`;
}

/**
 * The bytes a signature covers: the canonical JSON of the array
 * `["cutover.signature.v1", id, source, type, topic, time, correlationid, replyto, signatureagent,
 * signaturekeyid, data, data_base64, headers]`, where an absent attribute is null and `headers` holds the
 * message's `cutover-http-*` transport headers (the replayed method, path and request headers).
 */
export function signedContent(event: CloudEvent, topic: string, headers: Readonly<Record<string, string>> = {}): Buffer {
  const signedHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (name.startsWith(SIGNED_HEADER_PREFIX)) signedHeaders[name] = value;
  const fields = [
    CONTENT_VERSION,
    event.id,
    event.source,
    event.type,
    topic,
    event.time ?? null,
    event.correlationid ?? null,
    event.replyto ?? null,
    event[SignatureAttributes.agent] ?? null,
    event[SignatureAttributes.keyId] ?? null,
    event.data ?? null,
    event.data_base64 ?? null,
    signedHeaders,
  ];
  return Buffer.from(canonicalJson(fields), 'utf8');
}

/** A copy of `event` signed for `topic` by `signer`; the input is left as it is. */
export function signEvent<T extends CloudEvent>(event: T, topic: string, signer: Signer, headers?: Readonly<Record<string, string>>): T {
  const unsigned: T = { ...event, [SignatureAttributes.agent]: signer.agent, [SignatureAttributes.keyId]: signer.keyId };
  delete unsigned[SignatureAttributes.signature];
  const signature = sign(null, signedContent(unsigned, topic, headers), signer.key).toString('base64url');
  return { ...unsigned, [SignatureAttributes.signature]: signature };
}

/** The agent an event says produced it: `<agent>` of `/agents/<agent>`, else the whole source. */
export function sourceAgent(source: string): string {
  return source.startsWith('/agents/') ? source.slice('/agents/'.length) : source;
}

/**
 * Checks an event delivered on `topic` against `trust`: `ok`, or why it must not be acted on. An unsigned
 * event passes only when its producer is in `allowUnsigned`. The signer must be a listed agent with a
 * listed key id; when the source is `/agents/<agent>` the signer must be that agent. Cutover's own sources
 * (`/cutover/...`) may be signed by any trusted agent: the signature still names which one.
 */
export function verifyEvent(event: CloudEvent, topic: string, trust: Trust, headers?: Readonly<Record<string, string>>): 'ok' | Rejection {
  const signature = event[SignatureAttributes.signature];
  const agent = event[SignatureAttributes.agent];
  const keyId = event[SignatureAttributes.keyId];
  if (signature === undefined && agent === undefined && keyId === undefined) {
    if (trust.allowUnsigned.has(sourceAgent(event.source))) return 'ok';
    return { code: ErrorCodes.AUTH_UNSIGNED, reason: `event ${event.id} from ${event.source} is not signed` };
  }
  if (typeof signature !== 'string' || typeof agent !== 'string' || typeof keyId !== 'string') {
    return { code: ErrorCodes.AUTH_BAD_SIGNATURE, reason: `event ${event.id}: signature, signatureagent and signaturekeyid must all be strings` };
  }
  const key = trust.keys.get(agent)?.get(keyId);
  if (!key) return { code: ErrorCodes.AUTH_UNKNOWN_AGENT, reason: `event ${event.id} is signed by agent ${JSON.stringify(agent)} key ${JSON.stringify(keyId)}, which trust.agents does not list` };
  if (event.source.startsWith('/agents/') && sourceAgent(event.source) !== agent) {
    return { code: ErrorCodes.AUTH_BAD_SIGNATURE, reason: `event ${event.id} has source ${event.source} but is signed by agent ${agent}` };
  }
  let valid = false;
  try {
    valid = verify(null, signedContent(event, topic, headers), key, Buffer.from(signature, 'base64url'));
  } catch {
    valid = false;
  }
  if (!valid) return { code: ErrorCodes.AUTH_BAD_SIGNATURE, reason: `event ${event.id} on ${topic}: the signature does not verify (altered, moved to another topic, or a wrong key)` };
  // rpcmethod / rpcid are not in the signed content; they must repeat the signed body to be believed.
  const rpc = rpcAttributesProblem(event);
  return rpc ? { code: ErrorCodes.AUTH_BAD_SIGNATURE, reason: `event ${event.id} on ${topic}: ${rpc} (altered after signing)` } : 'ok';
}

/** The identity an event speaks for: the agent that signed it, or for an unsigned one its source's agent. */
export function producerOf(event: CloudEvent): string {
  const agent = event[SignatureAttributes.agent];
  return typeof agent === 'string' ? agent : sourceAgent(event.source);
}

/** The error a consumer dead-letters a rejected event with. */
export function rejectionError(rejection: Rejection): CutoverError {
  return new CutoverError(rejection.code, rejection.reason, { retriable: false });
}

function readKey(inline: string | undefined, file: string | undefined, path: string): string {
  if (inline !== undefined) return inline;
  try {
    return readFileSync(file!, 'utf8');
  } catch (err) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${path}File: cannot read ${file} (${(err as Error).message})`, [`${path}File`], { cause: err });
  }
}

function ed25519(make: () => KeyObject, path: string): KeyObject {
  let key: KeyObject;
  try {
    key = make();
  } catch (err) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${path}: not a PEM key (${(err as Error).message})`, [path], { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${path}: expected an Ed25519 key, got ${key.asymmetricKeyType}`, [path]);
  return key;
}

/**
 * The signer of an `identity:` section; `defaultAgent` is the config's top-level agent. Bad keys fail at boot,
 * named under `path` (another section with the same shape, such as `admin.operatorIdentity`).
 */
export function loadSigner(identity: IdentityConfig, defaultAgent: string, path = 'identity'): Signer {
  const pem = readKey(identity.privateKey, identity.privateKeyFile, `${path}.privateKey`);
  return { agent: identity.agent ?? defaultAgent, keyId: identity.keyId, key: ed25519(() => createPrivateKey(pem), `${path}.privateKey`) };
}

/** The public keys of a `trust:` section, read and checked once. */
export function loadTrust(trust: TrustConfig): Trust {
  const keys = new Map<string, Map<string, KeyObject>>();
  for (const [agent, list] of Object.entries(trust.agents)) {
    const byId = new Map<string, KeyObject>();
    list.forEach((k, i) => {
      const path = `trust.agents.${agent}[${i}].publicKey`;
      const pem = readKey(k.publicKey, k.publicKeyFile, path);
      byId.set(k.keyId, ed25519(() => createPublicKey(pem), path));
    });
    keys.set(agent, byId);
  }
  return { keys, allowUnsigned: new Set(trust.allowUnsigned), enforce: trust.enforce };
}

/**
 * The signer, trust and topic rules of a config file's `identity:`, `trust:` and `acl:` sections (each
 * undefined when absent), and the config's agent: what `signedBus` needs.
 */
export function loadIdentity(config: { agent: string; identity?: IdentityConfig | undefined; trust?: TrustConfig | undefined; acl?: AclConfig | undefined; observationsTopic?: string | undefined }): {
  signer: Signer | undefined;
  trust: Trust | undefined;
  acl: TopicAcl | undefined;
  agent: string;
} {
  return {
    signer: config.identity ? loadSigner(config.identity, config.agent) : undefined,
    trust: config.trust ? loadTrust(config.trust) : undefined,
    acl: config.acl ? new TopicAcl(effectiveAcl(config)!, { observations: config.observationsTopic }) : undefined,
    agent: config.agent,
  };
}
