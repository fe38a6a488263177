import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../src/events/cloudevent.js';
import { canonicalJson, loadSigner, loadTrust, signEvent, signedContent, verifyEvent, type Signer, type Trust } from '../../src/events/signature.js';
import { ErrorCodes } from '../../src/errors.js';
import type { CloudEvent } from '../../src/events/types.js';

function keyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

const inventory = keyPair();
const inventoryNext = keyPair();
const stranger = keyPair();

const signer = (key: KeyObject, keyId = 'k1', agent = 'inventory'): Signer => ({ agent, keyId, key });

function trust(extra: Partial<Pick<Trust, 'allowUnsigned' | 'enforce'>> = {}, keys: Record<string, Record<string, KeyObject>> = { inventory: { k1: inventory.publicKey } }): Trust {
  return {
    keys: new Map(Object.entries(keys).map(([agent, byId]) => [agent, new Map(Object.entries(byId))])),
    allowUnsigned: extra.allowUnsigned ?? new Set(),
    enforce: extra.enforce ?? true,
  };
}

const TOPIC = 'commands.agent.inventory.reserve';

function call(source = '/agents/inventory'): CloudEvent {
  return buildEvent({ source, type: 'inventory.reserve', correlationid: 'c-1', replyto: 'cutover.observations', data: { body: { sku: 'a', qty: 2 }, params: {}, query: {} } });
}

describe('signing and verifying events', () => {
  it('a signed event verifies, also after a JSON round trip (what a consumer sees)', () => {
    const signed = signEvent(call(), TOPIC, signer(inventory.privateKey));
    expect(signed).toMatchObject({ signatureagent: 'inventory', signaturekeyid: 'k1' });
    expect(signed.signature).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(verifyEvent(signed, TOPIC, trust())).toBe('ok');
    expect(verifyEvent(JSON.parse(JSON.stringify(signed)) as CloudEvent, TOPIC, trust())).toBe('ok');
  });

  it('rejects tampered data, id, type and replyto', () => {
    const signed = signEvent(call(), TOPIC, signer(inventory.privateKey));
    const tampered: CloudEvent[] = [
      { ...signed, data: { body: { sku: 'a', qty: 2000 }, params: {}, query: {} } },
      { ...signed, id: 'other' },
      { ...signed, type: 'inventory.cancel' },
      { ...signed, replyto: 'attacker.inbox' },
    ];
    for (const e of tampered) expect(verifyEvent(e, TOPIC, trust())).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE });
  });

  it('holds rpcmethod / rpcid to the signed JSON-RPC body: a changed copy is refused', () => {
    const rpcCall = buildEvent({ source: '/agents/travel', type: 'travel.get', data: { body: { jsonrpc: '2.0', id: 7, method: 'GetTask', params: { id: 't' } }, params: {}, query: {} } });
    const signed = signEvent({ ...rpcCall, rpcmethod: 'GetTask', rpcid: '7' }, TOPIC, signer(inventory.privateKey, 'k1', 'travel'));
    const travel = trust({}, { travel: { k1: inventory.publicKey } });
    expect(verifyEvent(signed, TOPIC, travel)).toBe('ok');
    expect(verifyEvent({ ...signed, rpcmethod: 'CancelTask' }, TOPIC, travel)).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE, reason: expect.stringContaining('rpcmethod') });
    expect(verifyEvent({ ...signed, rpcid: '8' }, TOPIC, travel)).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE, reason: expect.stringContaining('rpcid') });
  });

  it('rejects a signed event replayed onto another topic', () => {
    const signed = signEvent(call(), TOPIC, signer(inventory.privateKey));
    expect(verifyEvent(signed, 'commands.agent.inventory.cancel', trust())).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE });
  });

  it('covers the replay headers: a changed HTTP target fails', () => {
    const headers = { 'cutover-http-method': 'POST', 'cutover-http-target': '/reservations', 'x-other': 'free' };
    const signed = signEvent(call(), TOPIC, signer(inventory.privateKey), headers);
    expect(verifyEvent(signed, TOPIC, trust(), headers)).toBe('ok');
    expect(verifyEvent(signed, TOPIC, trust(), { ...headers, 'x-other': 'changed' })).toBe('ok');
    expect(verifyEvent(signed, TOPIC, trust(), { ...headers, 'cutover-http-target': '/reservations/all' })).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE });
  });

  it('rejects a signature made with another key under a trusted key id', () => {
    const forged = signEvent(call(), TOPIC, signer(stranger.privateKey));
    expect(verifyEvent(forged, TOPIC, trust())).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE });
  });

  it('rejects an unknown agent and an unknown key id', () => {
    expect(verifyEvent(signEvent(call('/agents/mallory'), TOPIC, signer(stranger.privateKey, 'k1', 'mallory')), TOPIC, trust())).toMatchObject({ code: ErrorCodes.AUTH_UNKNOWN_AGENT });
    expect(verifyEvent(signEvent(call(), TOPIC, signer(stranger.privateKey, 'k9')), TOPIC, trust())).toMatchObject({ code: ErrorCodes.AUTH_UNKNOWN_AGENT });
  });

  it('rejects a trusted agent signing as another agent', () => {
    const keys = { inventory: { k1: inventory.publicKey }, checkout: { k1: stranger.publicKey } };
    const asInventory = signEvent(call('/agents/inventory'), TOPIC, signer(stranger.privateKey, 'k1', 'checkout'));
    expect(verifyEvent(asInventory, TOPIC, trust({}, keys))).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE });
    // cutover's own sources are signed by the process identity that published them
    expect(verifyEvent(signEvent(call('/cutover/shadow'), TOPIC, signer(stranger.privateKey, 'k1', 'checkout')), TOPIC, trust({}, keys))).toBe('ok');
  });

  it('accepts both keys of an agent during a rotation, and only listed ones after', () => {
    const both = trust({}, { inventory: { k1: inventory.publicKey, k2: inventoryNext.publicKey } });
    const old = signEvent(call(), TOPIC, signer(inventory.privateKey, 'k1'));
    const next = signEvent(call(), TOPIC, signer(inventoryNext.privateKey, 'k2'));
    expect(verifyEvent(old, TOPIC, both)).toBe('ok');
    expect(verifyEvent(next, TOPIC, both)).toBe('ok');
    const retired = trust({}, { inventory: { k2: inventoryNext.publicKey } });
    expect(verifyEvent(old, TOPIC, retired)).toMatchObject({ code: ErrorCodes.AUTH_UNKNOWN_AGENT });
    expect(verifyEvent(next, TOPIC, retired)).toBe('ok');
  });

  it('rejects unsigned events unless their producer is in allowUnsigned', () => {
    expect(verifyEvent(call(), TOPIC, trust())).toMatchObject({ code: ErrorCodes.AUTH_UNSIGNED });
    expect(verifyEvent(call(), TOPIC, trust({ allowUnsigned: new Set(['inventory']) }))).toBe('ok');
    expect(verifyEvent(call('/agents/checkout'), TOPIC, trust({ allowUnsigned: new Set(['inventory']) }))).toMatchObject({ code: ErrorCodes.AUTH_UNSIGNED });
    // a stripped signature with the other attributes left is not "unsigned": it is a broken signature
    const { signature: _dropped, ...stripped } = signEvent(call(), TOPIC, signer(inventory.privateKey));
    expect(verifyEvent(stripped as CloudEvent, TOPIC, trust({ allowUnsigned: new Set(['inventory']) }))).toMatchObject({ code: ErrorCodes.AUTH_BAD_SIGNATURE });
  });

  it('canonical JSON sorts keys at every depth and follows JSON.stringify for the rest', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: undefined }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"z":1}]},"b":1}');
    expect(canonicalJson([undefined, new Date(0)])).toBe('[null,"1970-01-01T00:00:00.000Z"]');
    const a = { ...call(), data: { x: 1, y: { p: 1, q: 2 } } };
    const b = { ...a, data: { y: { q: 2, p: 1 }, x: 1 } };
    expect(signedContent(a, TOPIC).equals(signedContent(b, TOPIC))).toBe(true);
    expect(verifyEvent({ ...signEvent(a, TOPIC, signer(inventory.privateKey)), data: b.data }, TOPIC, trust())).toBe('ok');
  });

  it('loads PEM keys from config and refuses keys that are not Ed25519', () => {
    const pair = generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const s = loadSigner({ keyId: 'k1', privateKey: pair.privateKey }, 'inventory');
    const t = loadTrust({ agents: { inventory: [{ keyId: 'k1', publicKey: pair.publicKey }] }, allowUnsigned: [], enforce: true });
    expect(verifyEvent(signEvent(call(), TOPIC, s), TOPIC, t)).toBe('ok');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    expect(() => loadSigner({ keyId: 'k1', privateKey: rsa.privateKey }, 'inventory')).toThrow(/expected an Ed25519 key/);
    expect(() => loadSigner({ keyId: 'k1', privateKeyFile: '/nonexistent/key.pem' }, 'inventory')).toThrow(/cannot read/);
  });
});
