import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { loadConfig } from '../../bin/io.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { loadIdentity, signEvent, verifyEvent } from '../../src/events/signature.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out, err };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-keygen-'));

describe('cutover keygen', () => {
  it('writes a 0600 private key and prints identity and trust snippets that make a working config', async () => {
    const keyFile = path.join(dir, 'inventory.key');
    const c = capture();
    expect(await runCli(['keygen', '--agent', 'inventory', '--key-id', 'inv-1', '--out', keyFile], c.io)).toBe(0);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const snippets = c.out.join('\n');
    const configFile = path.join(dir, 'config.yaml');
    writeFileSync(configFile, `agent: inventory\nadmin: { auth: false }\n${snippets}\n`);
    const config = loadConfig(configFile, { env: {} });
    expect(config.trust?.enforce).toBe(true);
    const { signer, trust } = loadIdentity(config);
    const event = signEvent(buildEvent({ source: '/agents/inventory', type: 't', data: { a: 1 } }), 'events.inventory.t', signer!);
    expect(verifyEvent(event, 'events.inventory.t', trust!)).toBe('ok');
    // never overwrites a key that may be in use
    expect(await runCli(['keygen', '--agent', 'inventory', '--key-id', 'inv-2', '--out', keyFile], capture().io)).toBe(2);
  });

  it('prints the private key PEM without --out, and refuses a missing agent or key id', async () => {
    const c = capture();
    expect(await runCli(['keygen', '--agent', 'checkout', '--key-id', 'c1'], c.io)).toBe(0);
    expect(c.out[0]).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----$/);
    expect(c.out.join('\n')).toContain('-----BEGIN PUBLIC KEY-----');
    expect(await runCli(['keygen', '--key-id', 'c1'], capture().io)).toBe(2);
    expect(await runCli(['keygen', '--agent', 'checkout'], capture().io)).toBe(2);
  });
});

describe('identity and trust config', () => {
  const base = { agent: 'inventory', admin: { auth: false } };

  it('enforce defaults to true with trusted agents, false without; no trust section means no verification', () => {
    expect(cutoverConfigSchema.parse({ ...base, trust: { agents: { inventory: [{ keyId: 'k', publicKey: 'x' }] } } }).trust?.enforce).toBe(true);
    expect(cutoverConfigSchema.parse({ ...base, trust: { allowUnsigned: ['inventory'] } }).trust?.enforce).toBe(false);
    expect(cutoverConfigSchema.parse({ ...base, trust: { agents: { inventory: [{ keyId: 'k', publicKey: 'x' }] }, enforce: false } }).trust?.enforce).toBe(false);
    const none = cutoverConfigSchema.parse(base);
    expect(none.trust).toBeUndefined();
    expect(loadIdentity(none)).toEqual({ signer: undefined, trust: undefined, acl: undefined, agent: base.agent });
  });

  it('needs exactly one of privateKey and privateKeyFile, with paths in the message', () => {
    const both = cutoverConfigSchema.safeParse({ ...base, identity: { keyId: 'k', privateKey: 'a', privateKeyFile: 'b' } });
    expect(both.success).toBe(false);
    expect(both.error!.issues[0]!.path).toEqual(['identity', 'privateKey']);
    expect(cutoverConfigSchema.safeParse({ ...base, identity: { keyId: 'k' } }).success).toBe(false);
    expect(cutoverConfigSchema.safeParse({ ...base, trust: { agents: { inventory: [{ keyId: 'k' }] } } }).success).toBe(false);
  });
});
