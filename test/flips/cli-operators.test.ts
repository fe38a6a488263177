import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { busTargets, cli } from './fixtures.js';

/** `cutover flip` under a trust with operators: it signs with the config's identity, and refuses to write a flip nobody would apply. */

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

const pem = () => generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });

describe('cutover flip with trust.operators', () => {
  it('exits 2 with CUTOVER_FLIP_NOT_OPERATOR for a non-operator identity and writes nothing; an operator\u2019s flip is signed and applied', async () => {
    const { config: bus, dir, cleanup } = await busTargets[0]!.setup(randomUUID());
    cleanups.push(cleanup);
    const alice = pem();
    const orders = pem();
    const trust = { agents: { alice: [{ keyId: 'a1', publicKey: alice.publicKey }], orders: [{ keyId: 'o1', publicKey: orders.publicKey }] }, operators: ['alice'] };
    const write = async (name: string, identity: Record<string, unknown> | undefined) => {
      const file = path.join(dir, name);
      const flows = [{ name: 'orders.create', match: { method: 'POST', path: '/orders' }, topic: 'commands.agent.orders.create', mode: 'shadow' }];
      await writeFile(file, JSON.stringify({ agent: 'orders', admin: { auth: false }, bus, dataDir: dir, log: { level: 'warn' }, flows, trust, ...(identity ? { identity } : {}) }));
      return file;
    };
    const sidecarKey = await write('orders.json', { keyId: 'o1', privateKey: orders.privateKey });
    const noKey = await write('nokey.json', undefined);
    const operator = await write('alice.json', { agent: 'alice', keyId: 'a1', privateKey: alice.privateKey });

    const refused = await cli('flip', 'orders.create', '--to', 'direct', '--config', sidecarKey);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/^CUTOVER_FLIP_NOT_OPERATOR: flip orders.create shadow -> direct not written: "orders" is not in trust.operators \(alice\)/);
    const unsigned = await cli('flip', 'orders.create', '--to', 'direct', '--config', noKey);
    expect([unsigned.code, unsigned.err]).toEqual([2, expect.stringMatching(/^CUTOVER_FLIP_NOT_OPERATOR: .*no signing key/)]);
    expect((await cli('history', 'orders.create', '--config', operator)).out).toBe('orders.create: no flips yet (mode as configured)');

    expect((await cli('flip', 'orders.create', '--to', 'direct', '--who', 'alice', '--config', operator)).code).toBe(0);
    const history = await cli('history', 'orders.create', '--config', sidecarKey);
    expect(history.out).toMatch(/shadow -> direct {2}by alice {2}signed by alice$/);
    const status = JSON.parse((await cli('status', '--json', '--config', noKey)).out) as Array<{ flow: string; mode: string }>;
    expect(status.map((s) => [s.flow, s.mode])).toEqual([['orders.create', 'direct']]);
  });
});
